"""Recognition: the employees behind the peaks, with the moments and quotes that show it.

Recognition should be personal, not a leaderboard, and one lucky day should not win. So each employee is
judged against the touchpoints they serve and adjusted for volume:

1. every rated event an employee served gets a *lift*: its valence minus the mean valence of its touchpoint
   (baggage staff are not blamed for baggage being a pit);
2. each employee's mean lift is shrunk toward zero by empirical Bayes (normal-normal, method of moments):
   ``shrunk = n * mean / (n + k)`` with ``k = within-employee variance / between-employee variance``, with a
   posterior interval ``shrunk ± z * sqrt(within / (n + k))``;
3. employees whose whole interval is above zero are *recognised*; each comes with their peak moments (events
   at or above ``peak_valence``), the customers and the quotes (``text``) of the best of them.

**Filters** (``segment``, ``channel``, ``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow the
events judged, touchpoint means included: ``channel="phone"`` recognises the phone team against the phone
touchpoints, a date range the peaks of that quarter.
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, warn_small_sample
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError

__all__ = ["Recognition"]


class Recognition(EventFilters, Analysis):
    """Employees whose customers have peaks, adjusted for touchpoint and volume, with the evidence.

    ``segment``, ``channel``, ``since``, ``until`` narrow the events judged (see the module docstring)."""

    title = "Recognition: the employees behind the peaks"

    def __init__(
        self,
        *,
        top: int = 10,
        peak_valence: float = 0.5,
        evidence: int = 3,
        min_events: int = 5,
        level: float = 0.95,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.top = top
        self.peak_valence = peak_valence
        self.evidence = evidence
        self.min_events = min_events
        self.level = level
        self._set_filters(filters)

    def _lacking(self, t: Any) -> NotEnoughDataError:
        """What the data lacks when no rated event names an employee: events, employees, or ratings."""
        if self.filters:
            return NotEnoughDataError("No rated event names an employee after the filters; loosen them.")
        if int(t.count().execute()) == 0:
            return NotEnoughDataError("No events in the store to recognise employees in; ingest events first (`keymoments ingest FILE`).")
        named = t.filter(t.employee_id.notnull() & (t.employee_id != "")) if "employee_id" in t.columns else None
        if named is None or int(named.count().execute()) == 0:
            return NotEnoughDataError(
                "No event names an employee: recognition needs the employee who served each moment; load an "
                "employee_id column with the events (`--map COLUMN=employee_id`)."
            )
        return NotEnoughDataError(
            "Events name employees, but none of them is rated: recognition needs how customers felt at those "
            "moments; load a rating or text column with the events."
        )

    def fit(self, data: Any) -> Recognition:
        from scipy import stats

        if not (-1 <= self.peak_valence <= 1):
            raise InvalidParameterError(
                f"The 'peak_valence' parameter of Recognition must be in [-1, 1]. Got {self.peak_valence!r} instead."
            )
        t = self._events(data)
        if "employee_id" not in t.columns or "valence" not in t.columns:
            raise self._lacking(t)
        r = t.filter(t.valence.notnull())
        tpm = r.group_by("touchpoint").aggregate(_tpm=r.valence.mean())
        e = r.filter(r.employee_id.notnull() & (r.employee_id != "")).left_join(tpm, "touchpoint")
        e = e.mutate(_lift=e.valence - e._tpm, _peak=(e.valence >= self.peak_valence).cast("int64"))
        per = e.group_by("employee_id").aggregate(
            events=e.count(),
            peaks=e._peak.sum(),
            mean_valence=e.valence.mean(),
            mean_lift=e._lift.mean(),
            var_lift=e._lift.var(how="sample"),
            customers=e.customer_id.nunique(),
        ).execute()
        # each employee's most common touchpoint (ties: the first by name), from a per (employee, touchpoint)
        # count, so every engine picks the same one
        tp = e.group_by(["employee_id", "touchpoint"]).aggregate(_n=e.count()).execute()
        tp = tp.sort_values(["employee_id", "_n", "touchpoint"], ascending=[True, False, True], kind="mergesort")
        per["touchpoint"] = per["employee_id"].map(tp.drop_duplicates("employee_id").set_index("employee_id")["touchpoint"])
        if per.empty:
            raise self._lacking(t)
        per["peaks"] = pd.to_numeric(per["peaks"]).astype("int64")
        n = per["events"].to_numpy(float)
        m = per["mean_lift"].to_numpy(float)
        v = per["var_lift"].to_numpy(float)
        ok = (n > 1) & np.isfinite(v)
        within = float(np.average(v[ok], weights=n[ok] - 1)) if ok.any() else float("nan")
        tau2 = float(np.var(m, ddof=1) - np.mean(within / n)) if len(m) > 2 and np.isfinite(within) else 0.0
        warn_small_sample("Recognition", len(per), 10)
        if tau2 <= 0 or not np.isfinite(tau2):
            k = np.inf  # no real differences between employees: everyone shrinks to zero
            shrunk = np.zeros_like(m)
            sd = np.full_like(m, np.sqrt(within / n.clip(min=1)) if np.isfinite(within) else np.nan)
        else:
            k = within / tau2
            shrunk = n * m / (n + k)
            sd = np.sqrt(within / (n + k))
        z = float(stats.norm.ppf(0.5 + self.level / 2))
        per["shrunk_lift"] = shrunk
        per["ci_low"] = shrunk - z * sd
        per["ci_high"] = shrunk + z * sd
        per["peak_rate"] = per["peaks"] / per["events"]
        per["recognised"] = (per["ci_low"] > 0) & (per["events"] >= self.min_events)
        # ties broken by name: same data, same order. Lifts equal but for the last bits of a sum (which engines
        # add in different orders) are ties
        per["_rank"] = per["shrunk_lift"].round(12)
        per = per.sort_values(
            ["_rank", "events", "employee_id", "touchpoint"], ascending=[False, False, True, True], kind="mergesort"
        ).reset_index(drop=True)
        self.employees_ = per[
            ["employee_id", "touchpoint", "events", "customers", "peaks", "peak_rate", "mean_valence", "mean_lift",
             "shrunk_lift", "ci_low", "ci_high", "recognised"]
        ]
        self.shrinkage_k_ = float(k)
        self.evidence_ = self._evidence(e, self.employees_[self.employees_["recognised"]].head(self.top)["employee_id"].tolist())
        return self

    def _evidence(self, e: Any, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not ids:
            return {}
        cols = [c for c in ("employee_id", "customer_id", "journey_id", "ts", "touchpoint", "valence", "text") if c in e.columns]
        ev = e.filter(e.employee_id.isin(ids) & (e.valence >= self.peak_valence)).select(*cols).execute()
        if "text" in ev.columns:
            ev["_has_text"] = ev["text"].notna() & (ev["text"].astype(str).str.len() > 0)
        else:
            ev["_has_text"] = False
        tiebreak = [c for c in ("customer_id", "journey_id", "touchpoint") if c in ev.columns]
        ev = ev.sort_values(
            ["employee_id", "_has_text", "valence", "ts", *tiebreak],
            ascending=[True, False, False, True, *([True] * len(tiebreak))],
            kind="mergesort",
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for emp, g in ev.groupby("employee_id", sort=False):
            out[str(emp)] = g.head(self.evidence).drop(columns="_has_text").to_dict(orient="records")
        return out

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.employees_.head(self.top)

    def print_summary(self) -> None:
        from keymoments.cli.common import print_table

        self._check_fitted()
        rec = self.employees_[self.employees_["recognised"]]
        print_table(self.summary, title=f"{self.title} ({len(rec)} recognised of {len(self.employees_)})")
        for emp, moments in self.evidence_.items():
            print(f"\n{emp}:")
            for mo in moments:
                quote = f' "{mo["text"]}"' if mo.get("text") else ""
                print(f"  {mo.get('ts')} {mo.get('touchpoint')} customer {mo.get('customer_id')} valence {mo['valence']:+.2f}{quote}")

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        emps = self.employees_.head(self.top).to_dict(orient="records")
        for row in emps:
            row["evidence"] = self.evidence_.get(str(row["employee_id"]), [])
        return {
            "employees": emps,
            "recognised": self.employees_.loc[self.employees_["recognised"], "employee_id"].tolist(),
            "shrinkage_k": self.shrinkage_k_,
            "rule": "lift = valence - touchpoint mean; per employee shrunk by empirical Bayes; recognised when the "
                    f"{int(self.level * 100)}% interval is above 0 with at least {self.min_events} rated events",
            "filters": self.filters,
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import recognition_figure

        self._check_fitted()
        return recognition_figure(self.employees_)
