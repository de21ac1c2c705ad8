"""The service recovery paradox: is a customer whose problem was fixed well more loyal than one who never had one?

Per journey (one Ibis group-by): a *crisis* is an event whose ``outcome`` is in the crisis set (journey model,
or ``events.CRISIS_OUTCOMES``). A crisis journey is *recovered* when a resolution (``outcome`` in the resolved
set) comes after its last crisis event and the rated moments after that last crisis are positive on average
(when none is rated, the resolution alone counts). Per customer: *unrecovered* if any crisis journey was not
recovered, *recovered* if all were, *none* without a crisis (the same for journey-keyed outcomes, per journey).

For each group: the outcome rate (Wilson CI) or mean (t CI) with n, and the differences recovered − none and
unrecovered − none with normal-approximation CIs. The paradox holds when recovered − none is positive and its CI
excludes zero. When ``value`` records compensation (negative values), the cost of recovery per retained
recovered customer and per customer saved (relative to the unrecovered rate) is reported.

**Filters.** ``segment`` and a date range (``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow
the events: with a date range the crises and resolutions are those inside it (a crisis before ``since`` does
not count, and a journey cut by ``until`` ends there, so a resolution after it is not seen). Outcomes are per
customer or journey and are not filtered, but customers with no event left drop out of every group. A
``channel`` filter is refused: a crisis and its resolution usually happen on different channels (a flight
delayed at the airport, a call to support), so one channel's events cannot tell recovered from unrecovered.
"""

from __future__ import annotations

import warnings
from typing import Any, Unpack

import ibis
import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, mean_ci, proportion_ci, warn_small_sample
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table, journey_key
from keymoments.analyze.peak_end import fit_outcome_frame
from keymoments.analyze.sample import fit_limit
from keymoments.events import CRISIS_OUTCOMES, RESOLVED_OUTCOMES, JourneyModel
from keymoments.exceptions import KeymomentsWarning, NotEnoughDataError

__all__ = ["GROUPS", "Recovery", "recovery_groups"]

GROUPS = ("recovered", "unrecovered", "none")


def recovery_groups(data: Any, journey: JourneyModel | None = None, key: str = "customer_id") -> pd.DataFrame:
    """Per customer (or journey): group, crises, compensation paid (a positive amount)."""
    crisis = sorted(journey.crisis_outcomes if journey else CRISIS_OUTCOMES)
    resolved = sorted(journey.resolved_outcomes if journey else RESOLVED_OUTCOMES)
    t = events_table(data)
    t = t.mutate(_jid=journey_key(t))
    is_crisis = t.outcome.isin(crisis).fill_null(False)
    is_res = t.outcome.isin(resolved).fill_null(False)
    val = t.valence if "valence" in t.columns else ibis.null().cast("float64")
    value = t.value if "value" in t.columns else ibis.null().cast("float64")
    t = t.mutate(_c=is_crisis, _r=is_res, _v=val, _comp=ibis.ifelse(value < 0, -value, 0.0).fill_null(0.0))
    per_j = t.group_by("_jid").aggregate(
        customer_id=t.customer_id.arbitrary(),
        crises=t._c.cast("int64").sum(),
        last_crisis=t.step.max(where=t._c),
        last_resolution=t.step.max(where=t._r),
        compensation=t._comp.sum(),
    )
    after = t.join(per_j.select("_jid", "last_crisis"), "_jid")
    after = after.filter(after.step > after.last_crisis)
    v_after = after.group_by("_jid").aggregate(valence_after=after._v.mean())
    j = per_j.left_join(v_after, "_jid").drop("_jid_right")
    has_crisis = j.crises.fill_null(0) > 0
    resolved_after = j.last_resolution.notnull() & (j.last_resolution > j.last_crisis).fill_null(False)
    positive = j.valence_after.isnull() | (j.valence_after > 0).fill_null(False)
    j = j.mutate(
        crises=j.crises.fill_null(0).cast("int64"), compensation=j.compensation.cast("float64").fill_null(0.0),
        journey_group=ibis.cases((~has_crisis, "none"), (resolved_after & positive, "recovered"), else_="unrecovered"),
    )  # fmt: skip
    if key == "journey_id":  # the units are journeys: their frame is what the fit needs
        out = j.execute().sort_values("_jid", kind="stable").reset_index(drop=True)
        out = out.rename(columns={"_jid": "journey_id", "journey_group": "group"})
        out["crises"] = pd.to_numeric(out["crises"]).astype("int64")
        out["compensation"] = pd.to_numeric(out["compensation"]).astype(float)
        return out[["journey_id", "customer_id", "group", "crises", "compensation"]]
    # per customer, in the engine: only the customers' frame reaches this process, never the journeys'
    c = j.group_by("customer_id").aggregate(
        crises=j.crises.sum(), compensation=j.compensation.sum(),
        any_unrec=(j.journey_group == "unrecovered").any(), any_rec=(j.journey_group == "recovered").any(),
    ).execute()  # fmt: skip
    c = c.sort_values("customer_id", kind="stable").reset_index(drop=True)
    c["crises"] = pd.to_numeric(c["crises"]).fillna(0).astype("int64")
    c["compensation"] = pd.to_numeric(c["compensation"]).astype(float).fillna(0.0)
    c["group"] = np.select([c["any_unrec"].astype(bool), c["any_rec"].astype(bool)], ["unrecovered", "recovered"], "none")
    return c[["customer_id", "group", "crises", "compensation"]]


def _diff_ci(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float, float, float]:
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan"), float("nan")
    d = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    z = float(stats.norm.ppf(0.5 + level / 2))
    return d, d - z * se, d + z * se


class Recovery(EventFilters, Analysis):
    """Outcome after a recovered crisis, an unrecovered crisis and no crisis, with CIs and the cost.

    ``segment``, ``since``, ``until`` narrow the events; ``channel`` is refused (see the module docstring).
    ``max_fit_customers``: above this many units with the outcome, the groups and their intervals are of a
    stratified sample of this many (default ``KM_MAX_FIT_CUSTOMERS``, 2M; :mod:`keymoments.analyze.sample`),
    and ``warnings`` says so."""

    title = "Service recovery paradox"
    channel_unsupported = (
        "a crisis and its resolution usually happen on different channels (a flight delayed at the airport, "
        "a call to support), so the events of one channel cannot tell recovered from unrecovered crises; "
        "filter by segment or date range instead."
    )

    def __init__(
        self,
        outcome: str,
        *,
        journey: JourneyModel | None = None,
        level: float = 0.95,
        max_fit_customers: int | None = None,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.journey = journey
        self.level = level
        self.max_fit_customers = max_fit_customers
        self._set_filters(filters)

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> Recovery:
        events = self._events(data)
        limit = fit_limit(self.max_fit_customers, "Recovery")
        out, key, binary, sample = fit_outcome_frame(data, self.outcome, outcomes, "Recovery", limit)
        self.warnings_: list[str] = []
        if sample is not None:  # only the drawn units' events are grouped, and only their frame reaches the driver
            self.warnings_.append(sample.warning)
            warnings.warn(sample.warning, KeymomentsWarning, stacklevel=2)
            events = sample.restrict(events, journey_key(events) if key == "journey_id" else events.customer_id)
        g = recovery_groups(events, self.journey, key)
        if not (g["crises"] > 0).any():
            raise self._no_crises(events)
        df = g.merge(out, on=key, how="inner").dropna(subset=[self.outcome])
        rows = []
        ys = {}
        for grp in GROUPS:
            y = df.loc[df["group"] == grp, self.outcome].to_numpy(dtype=float)
            ys[grp] = y
            n = len(y)
            if binary:
                p, lo, hi = proportion_ci(int(y.sum()), n, self.level)
            else:
                p, lo, hi, _ = mean_ci(y, self.level)
            comp = df.loc[df["group"] == grp, "compensation"]
            rows.append({"group": grp, "n": n, "rate": p, "ci_low": lo, "ci_high": hi,
                         "compensation_total": float(comp.sum()), "compensation_mean": float(comp.mean()) if n else np.nan})  # fmt: skip
            warn_small_sample(f"The {self.outcome!r} rate of the {grp!r} group", n)
        groups = pd.DataFrame(rows)
        diffs = []
        for a, b in (("recovered", "none"), ("unrecovered", "none"), ("recovered", "unrecovered")):
            d, lo, hi = _diff_ci(ys[a], ys[b], self.level)
            diffs.append({"comparison": f"{a} - {b}", "difference": d, "ci_low": lo, "ci_high": hi})
        diffs = pd.DataFrame(diffs)
        rec = diffs.iloc[0]
        if np.isfinite(rec["ci_low"]) and rec["ci_low"] > 0:
            verdict = "paradox"  # recovered customers do better than those who never had a problem
        elif np.isfinite(rec["ci_high"]) and rec["ci_high"] < 0:
            verdict = "no_paradox"
        else:
            verdict = "inconclusive"
        gi = groups.set_index("group")
        comp_rec = gi.loc["recovered", "compensation_total"]
        retained_rec = gi.loc["recovered", "rate"] * gi.loc["recovered", "n"] if binary else np.nan
        saved = (gi.loc["recovered", "rate"] - gi.loc["unrecovered", "rate"]) * gi.loc["recovered", "n"] if binary else np.nan
        self.groups_ = groups
        self.differences_ = diffs
        self.verdict_ = verdict
        self.binary_ = binary
        self.key_ = key
        self.cost_ = {
            "compensation_recovered": float(comp_rec),
            "per_retained_recovered": float(comp_rec / retained_rec) if binary and retained_rec > 0 and comp_rec > 0 else None,
            "per_customer_saved": float(comp_rec / saved) if binary and saved > 0 and comp_rec > 0 else None,
        }
        return self

    def _no_crises(self, events: Any) -> NotEnoughDataError:
        """The one-line refusal when no event is a crisis: what the events' outcomes are, and what to add."""
        known = self.journey.crisis_outcomes if self.journey else CRISIS_OUTCOMES
        usual = [c for c in ("failed", "cancelled", "delayed", "lost", "damaged", "complaint") if c in known]
        crisis = usual + sorted(set(known) - set(usual))
        seen = []
        if "outcome" in events.columns:
            t = events.filter(events.outcome.notnull() & (events.outcome != ""))
            seen = t.group_by("outcome").aggregate(n=t.count()).order_by(ibis.desc("n")).limit(5).execute()["outcome"].tolist()
        where = " left after the filters" if self.filters else ""
        if not seen:
            return NotEnoughDataError(
                f"No crises in the data{where}: no event has an outcome (the events' `outcome` column, e.g. "
                f"{', '.join(crisis[:4])}), so there is nothing to recover from; load it with the events "
                "(`--map COLUMN=outcome`)."
            )
        return NotEnoughDataError(
            f"No crises in the data{where}: none of the events' outcomes ({', '.join(map(str, seen))}) is a crisis "
            f"outcome ({', '.join(crisis[:6])}…); name yours under crisis_outcomes in a journey.yaml and pass --journey."
        )

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.groups_[["group", "n", "rate", "ci_low", "ci_high", "compensation_total"]]

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        self._check_fitted()
        print_table(self.summary, title=f"Service recovery: {self.outcome} by crisis group")
        print_table(self.differences_, title="Differences")
        verdict = {"paradox": "the recovery paradox holds (recovered customers do better than those without a crisis)",
                   "no_paradox": "no paradox (recovered customers do worse than those without a crisis)",
                   "inconclusive": "inconclusive (the recovered - none interval covers zero, or a group is too small)"}
        console.print(f"Verdict: {verdict[self.verdict_]}.")
        c = self.cost_
        if c["compensation_recovered"]:
            per = [f"{c[k]:,.2f} per {label}" for k, label in (("per_retained_recovered", "retained recovered customer"),
                                                              ("per_customer_saved", "customer saved")) if c[k] is not None]
            console.print(f"Cost of recovery: {c['compensation_recovered']:,.2f} compensation paid to recovered customers"
                          + (f" ({'; '.join(per)})." if per else "."))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "outcome": self.outcome,
            "key": self.key_,
            "groups": self.groups_.to_dict(orient="records"),
            "differences": self.differences_.to_dict(orient="records"),
            "verdict": self.verdict_,
            "cost": self.cost_,
            "filters": self.filters,
            **({"warnings": self.warnings_} if getattr(self, "warnings_", None) else {}),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import recovery_figure

        self._check_fitted()
        return recovery_figure(self.groups_, self.outcome)
