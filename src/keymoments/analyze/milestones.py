"""Invisible milestones: the thresholds customers cross without anyone noticing, so playbooks can mark them.

Found in the data (Ibis group-bys over events, then small per-journey / per-customer tables):

* **nth journey**: ``journey_<n>`` when a customer completes their n-th journey (n in ``counts``: 1, 5, 10,
  25, 50, 100), journeys numbered by their last event (a trip booked early still counts when it is taken);
* **tenure anniversaries**: ``anniversary_<k>y``, k years after the customer's start (the ``signup_date`` /
  ``customer_since`` / ``first_seen`` attribute when loaded, else their first event), when it falls inside the
  data's time range;
* **cumulative spend**: ``spend_<x>`` when the running total of positive ``value`` first reaches x
  (``spend_thresholds``);
* **firsts**: ``first_channel_<c>`` and ``first_<touchpoint>`` when a customer first uses a channel or reaches a
  touchpoint after their first journey (what every first journey has is no milestone).

A crossing is *marked* when an event of the crossing journey (nth journey) or within ``mark_window_days``
after it carries a marking in ``attrs`` (a ``"milestone"`` or ``"marked"`` key), as playbooks record it.

Per milestone: customers crossing, crossings per week (mean over the weeks of the data, and the weekly series),
and, for an outcome, the rate among crossers marked, crossers not marked and customers who did not cross, with
CIs: which milestones, marked or not, go with better outcomes.

**Filters** (see :mod:`keymoments.analyze.filters`). ``segment`` and ``channel`` narrow the events milestones
are found in (``channel="app"``: the 5th journey in the app, the first 1,000 spent in it). A date range
selects the milestones *crossed* in it, counted over the whole history before ``until``: a customer's 10th
journey in the range is their 10th, not the 10th inside the range. Outcomes are per customer and not
filtered, but only customers with events under the filters are compared (crossed or not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Unpack

import ibis
import pandas as pd

from keymoments.analyze.base import Analysis, mean_ci, proportion_ci
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table, journey_key
from keymoments.analyze.peak_end import outcome_frame
from keymoments.exceptions import NotEnoughDataError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Milestones", "milestone_crossings"]

_START_ATTRS = ("signup_date", "customer_since", "first_seen", "signup")


def _marked_expr(t: Any) -> Any:
    if "attrs" not in t.columns:
        return t.customer_id.isnull()  # all False
    a = t.attrs.cast("string")
    return (a.contains('"milestone"') | a.contains('"marked"')).fill_null(False)


def milestone_crossings(
    data: Any,
    *,
    counts: tuple[int, ...] = (1, 5, 10, 25, 50, 100),
    years: tuple[int, ...] = (1, 2, 3, 5, 10),
    spend_thresholds: tuple[float, ...] = (1_000, 5_000, 10_000, 50_000),
    mark_window_days: float = 7.0,
    events: ir.Table | None = None,
) -> pd.DataFrame:
    """One row per (customer, milestone) crossing: customer_id, milestone, kind, ts, marked.

    ``events``: the events to read (e.g. filtered ones) when not all of ``data``'s; ``data`` still gives the
    customers' start dates (attributes) when it is a Store."""
    from keymoments.store.store import Store

    t = events_table(data if events is None else events)
    t = t.mutate(_jid=journey_key(t), _mk=_marked_expr(t))
    span = t.aggregate(lo=t.ts.min(), hi=t.ts.max()).execute()
    lo, hi = pd.Timestamp(span["lo"].iloc[0]), pd.Timestamp(span["hi"].iloc[0])
    parts: list[pd.DataFrame] = []

    # nth journey (ranked per customer by its first event), marked when the journey carries a marking
    per_j = t.group_by(["customer_id", "_jid"]).aggregate(
        start=t.ts.min(), end=t.ts.max(), seq0=t.seq.min(), marked=t._mk.any()
    )
    w = ibis.window(group_by=per_j.customer_id, order_by=[per_j.end, per_j.start, per_j.seq0])
    ranked = per_j.mutate(n=ibis.row_number().over(w) + 1)
    nth = ranked.filter(ranked.n.isin(list(counts))).select("customer_id", "n", "end", "marked").execute()
    if len(nth):
        parts.append(pd.DataFrame({"customer_id": nth["customer_id"], "milestone": "journey_" + nth["n"].astype(str),
                                   "kind": "count", "ts": nth["end"], "marked": nth["marked"].astype(bool)}))  # fmt: skip

    # per customer: first event and first journey end, for anniversaries and firsts
    cust = t.group_by("customer_id").aggregate(first=t.ts.min()).execute()
    start = cust.set_index("customer_id")["first"]
    if isinstance(data, Store):
        names = set(data.query("SELECT DISTINCT name FROM attributes WHERE key_kind = 'customer_id'")["name"])
        attr = next((a for a in _START_ATTRS if a in names), None)
        if attr:
            a = data.query("SELECT key AS customer_id, value FROM attributes WHERE key_kind='customer_id' AND name = ?", [attr])
            s = pd.to_datetime(a.set_index("customer_id")["value"], utc=True, errors="coerce").dropna()
            start = s.reindex(start.index).fillna(start) if len(s) else start
    for k in years:
        when = start + pd.DateOffset(years=k)
        ok = (when >= lo) & (when <= hi)
        if ok.any():
            parts.append(pd.DataFrame({"customer_id": start.index[ok], "milestone": f"anniversary_{k}y",
                                       "kind": "tenure", "ts": when[ok].to_numpy(), "marked": False}))  # fmt: skip

    # cumulative spend: running total over paying events
    if "value" in t.columns:
        pay = t.filter(t.value > 0)
        wc = ibis.window(group_by=pay.customer_id, order_by=[pay.ts, pay.seq], preceding=None, following=0)
        cum = pay.mutate(cum=pay.value.sum().over(wc)).select("customer_id", "ts", "cum", "value")
        for x in spend_thresholds:
            hit = cum.filter((cum.cum >= x) & (cum.cum - cum.value < x)).select("customer_id", "ts").execute()
            if len(hit):
                parts.append(pd.DataFrame({"customer_id": hit["customer_id"], "milestone": f"spend_{x:g}",
                                           "kind": "spend", "ts": hit["ts"], "marked": False}))  # fmt: skip

    # firsts: a channel first used after the customer's first event; a touchpoint first reached after journey 1
    first_j = ranked.filter(ranked.n == 1).select("customer_id", j1="_jid")
    tj = t.join(first_j, "customer_id")
    if "channel" in t.columns:
        ch = tj.filter(tj.channel.notnull())
        fc = ch.group_by(["customer_id", "channel"]).aggregate(ts=ch.ts.min(), in_first=(ch._jid == ch.j1).any())
        fc = fc.filter(~fc.in_first).select("customer_id", "channel", "ts").execute()
        if len(fc):
            parts.append(pd.DataFrame({"customer_id": fc["customer_id"], "milestone": "first_channel_" + fc["channel"],
                                       "kind": "first", "ts": fc["ts"], "marked": False}))  # fmt: skip
    ft = tj.group_by(["customer_id", "touchpoint"]).aggregate(
        ts=tj.ts.min(), in_first=(tj._jid == tj.j1).any()
    )
    ft = ft.filter(~ft.in_first).select("customer_id", "touchpoint", "ts").execute()
    if len(ft):
        parts.append(pd.DataFrame({"customer_id": ft["customer_id"], "milestone": "first_" + ft["touchpoint"],
                                   "kind": "first", "ts": ft["ts"], "marked": False}))  # fmt: skip

    if not parts:
        return pd.DataFrame(columns=["customer_id", "milestone", "kind", "ts", "marked"])
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    # non-journey milestones are marked when a marking event follows within the window
    marks = t.filter(t._mk).select("customer_id", "ts").execute()
    if len(marks) and (out["kind"] != "count").any():
        m = marks.rename(columns={"ts": "mark_ts"})
        m["mark_ts"] = pd.to_datetime(m["mark_ts"], utc=True)
        o = out[out["kind"] != "count"].reset_index().merge(m, on="customer_id")
        d = (o["mark_ts"] - o["ts"]).dt.total_seconds() / 86400
        hit = o.loc[(d >= 0) & (d <= mark_window_days), "index"].unique()
        out.loc[hit, "marked"] = True
    return out.sort_values(["ts", "customer_id", "milestone"], kind="mergesort").reset_index(drop=True)


class Milestones(EventFilters, Analysis):
    """Milestones customers cross, how often per week, and which go with better outcomes, marked or not.

    ``segment`` and ``channel`` narrow the events; ``since`` / ``until`` select the crossings in that range,
    counted over the whole history before ``until`` (see the module docstring)."""

    title = "Invisible milestones"

    def __init__(
        self,
        outcome: str | None = None,
        *,
        counts: tuple[int, ...] = (1, 5, 10, 25, 50, 100),
        years: tuple[int, ...] = (1, 2, 3, 5, 10),
        spend_thresholds: tuple[float, ...] = (1_000, 5_000, 10_000, 50_000),
        min_customers: int = 5,
        level: float = 0.95,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.counts = counts
        self.years = years
        self.spend_thresholds = spend_thresholds
        self.min_customers = min_customers
        self.level = level
        self._set_filters(filters)

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> Milestones:
        from keymoments.store.store import Store

        events = self._events(data, since=None)  # the whole history before `until`: the 10th journey is the 10th
        cr = milestone_crossings(
            data, counts=self.counts, years=self.years, spend_thresholds=self.spend_thresholds, events=events
        )
        if "since" in self.filters:
            cr = cr[cr["ts"] >= pd.Timestamp(self.filters["since"])].reset_index(drop=True)
        if cr.empty:
            raise NotEnoughDataError(
                "No milestones found: the events are too few or too short"
                + (" (under the filters)." if self.filters else ".")
            )
        outcome = self.outcome
        if outcome is None and isinstance(data, Store):
            bools = [n for n, (k, d) in data.outcome_names().items() if d == "bool" and k == "customer_id"]
            outcome = "retained" if "retained" in bools else (bools[0] if bools else None)
        out = None
        binary = True
        if outcome is not None:
            out, key, binary = outcome_frame(data, outcome, outcomes, "Milestones")
            out = out.rename(columns={key: "customer_id"}) if key == "customer_id" else None
        weeks = cr["ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("W")
        n_weeks = max(1, len(pd.period_range(weeks.min(), weeks.max(), freq="W")))
        all_c = set(out["customer_id"].astype(str)) if out is not None else set()
        if out is not None and self.filters:  # compare only the customers the filters keep
            all_c &= set(events.select("customer_id").distinct().execute()["customer_id"].astype(str))
        rows = []
        weekly = {}
        for (ms, kind), g in cr.groupby(["milestone", "kind"], sort=False):
            n_c = g["customer_id"].nunique()
            if n_c < self.min_customers:
                continue
            w = g.groupby(weeks.loc[g.index]).size()
            weekly[ms] = {str(p.start_time.date()): int(v) for p, v in w.items()}
            row: dict[str, Any] = {"milestone": ms, "kind": kind, "customers": n_c, "per_week": len(g) / n_weeks,
                                   "marked_share": float(g["marked"].mean())}  # fmt: skip
            if out is not None:
                y = out.set_index(out["customer_id"].astype(str))[outcome]
                crossed = set(g["customer_id"].astype(str))
                mk = set(g.loc[g["marked"], "customer_id"].astype(str))
                for label, ids in (("marked", mk), ("unmarked", crossed - mk), ("not_crossed", all_c - crossed)):
                    v = y.reindex(list(ids)).dropna().to_numpy(dtype=float)
                    if binary:
                        p, lo, hi = proportion_ci(int(v.sum()), len(v), self.level)
                    else:
                        p, lo, hi, _ = mean_ci(v, self.level)
                    row[f"{label}_n"], row[f"{label}_rate"] = len(v), p
                    row[f"{label}_ci_low"], row[f"{label}_ci_high"] = lo, hi
            rows.append(row)
        self.crossings_ = cr
        self.milestones_ = pd.DataFrame(rows)
        self.weekly_ = weekly
        self.outcome_ = outcome
        self.weeks_ = n_weeks
        return self

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        cols = ["milestone", "kind", "customers", "per_week", "marked_share"]
        if self.outcome_ is not None:
            cols += ["marked_rate", "unmarked_rate", "not_crossed_rate"]
        return self.milestones_[[c for c in cols if c in self.milestones_.columns]]

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "outcome": self.outcome_,
            "weeks": self.weeks_,
            "milestones": self.milestones_.to_dict(orient="records"),
            "weekly": self.weekly_,
            "filters": self.filters,
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import milestones_figure

        self._check_fitted()
        return milestones_figure(self.milestones_)
