"""Invisible milestones: the thresholds customers cross without anyone noticing, so playbooks can mark them.

Found in the data (Ibis group-bys over events, then small per-journey / per-customer tables):

* **nth journey**: ``journey_<n>`` when a customer completes their n-th journey (n in ``counts``: 1, 2, 3, 5,
  10, 25, 50, 100), journeys numbered by their last event (a trip booked early still counts when it is taken);
  only when some customer has a second journey (where every customer has one, a journey is no milestone);
* **nth purchase**: ``purchase_<n>`` when a customer makes their n-th purchase (an event with ``value > 0``;
  n in ``purchase_counts``: 2, 3, 5, 10, 25, 50, 100), where purchases are not one per journey (purchase logs,
  whose journey is the customer): the 2nd and 3rd purchase are where retail's milestones are;
* **tenure anniversaries**: ``anniversary_<k>y``, k years after the customer's start (the ``signup_date`` /
  ``customer_since`` / ``first_seen`` attribute when loaded, else their first event), when it falls inside the
  data's time range and the customer's own history spans it: events on two days or more, and the anniversary
  no later than a year after their last event (a customer is still one between visits; a one-off reviewer has
  no anniversaries);
* **cumulative spend**: ``spend_<x>`` when the running total of positive ``value`` first reaches x
  (``spend_thresholds``; by default chosen from the data: the median, 75th, 90th and 99th percentile of the
  customers' total spend, rounded to two significant digits);
* **firsts**: ``first_channel_<c>`` and ``first_<touchpoint>`` when a customer first uses a channel or reaches a
  touchpoint after their first journey (what every first journey has is no milestone).

A crossing is *marked* when an event of the crossing journey (nth journey) or within ``mark_window_days``
after it carries a marking in ``attrs`` (a ``"milestone"`` or ``"marked"`` key), as playbooks record it.

Per milestone: customers crossing, crossings per week (mean over the weeks of the data, and the weekly series),
and, for an outcome, the rate among crossers marked, crossers not marked and customers who did not cross, with
CIs: which milestones, marked or not, go with better outcomes. Also the **time to the second purchase** (or the
second journey, without purchases): how many customers make one, and the median days it takes.

**Filters** (see :mod:`keymoments.analyze.filters`). ``segment`` and ``channel`` narrow the events milestones
are found in (``channel="app"``: the 5th journey in the app, the first 1,000 spent in it). A date range
selects the milestones *crossed* in it, counted over the whole history before ``until``: a customer's 10th
journey in the range is their 10th, not the 10th inside the range. Outcomes are per customer and not
filtered, but only customers with events under the filters are compared (crossed or not).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Unpack

import ibis
import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, mean_ci, proportion_ci
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table, journey_key
from keymoments.analyze.peak_end import outcome_frame
from keymoments.analyze.sample import customer_share, fit_limit
from keymoments.exceptions import KeymomentsWarning, NotEnoughDataError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Milestones", "milestone_crossings", "spend_thresholds_from", "time_to_second"]

_START_ATTRS = ("signup_date", "customer_since", "first_seen", "signup")


def _marked_expr(t: Any) -> Any:
    if "attrs" not in t.columns:
        return t.customer_id.isnull()  # all False
    a = t.attrs.cast("string")
    return (a.contains('"milestone"') | a.contains('"marked"')).fill_null(False)


COUNTS = (1, 2, 3, 5, 10, 25, 50, 100)
PURCHASE_COUNTS = (2, 3, 5, 10, 25, 50, 100)
YEARS = (1, 2, 3, 5, 10)
#: the percentiles of customers' total spend the default spend thresholds sit at
SPEND_QUANTILES = (0.5, 0.75, 0.9, 0.99)


def nice(x: float) -> float:
    """``x`` rounded to two significant digits (1234 -> 1200, 0.0456 -> 0.046): a threshold people can read."""
    if not np.isfinite(x) or x <= 0:
        return float("nan")
    return float(f"{x:.2g}")


def spend_thresholds_from(
    totals: np.ndarray, quantiles: tuple[float, ...] = SPEND_QUANTILES
) -> tuple[float, ...]:
    """Spend thresholds from the customers' total spend: its ``quantiles``, rounded (:func:`nice`), distinct."""
    totals = np.asarray(totals, dtype=float)
    totals = totals[np.isfinite(totals) & (totals > 0)]
    if len(totals) == 0:
        return ()
    out = [nice(float(np.quantile(totals, q))) for q in quantiles]
    return tuple(sorted({x for x in out if np.isfinite(x)}))


def milestone_crossings(
    data: Any,
    *,
    counts: tuple[int, ...] = COUNTS,
    purchase_counts: tuple[int, ...] = PURCHASE_COUNTS,
    years: tuple[int, ...] = YEARS,
    spend_thresholds: tuple[float, ...] | None = None,
    mark_window_days: float = 7.0,
    events: ir.Table | None = None,
) -> pd.DataFrame:
    """One row per (customer, milestone) crossing: customer_id, milestone, kind, ts, marked.

    ``events``: the events to read (e.g. filtered ones) when not all of ``data``'s; ``data`` still gives the
    customers' start dates (attributes) when it is a Store. ``spend_thresholds`` None: chosen from the data
    (:func:`spend_thresholds_from`); the ones used are in ``.attrs["spend_thresholds"]``."""
    from keymoments.store.store import Store

    t = events_table(data if events is None else events)
    t = t.mutate(_jid=journey_key(t), _mk=_marked_expr(t))
    span = t.aggregate(lo=t.ts.min(), hi=t.ts.max()).execute()
    # in UTC whatever the engine hands back (DuckDB: aware; Spark: naive UTC)
    lo, hi = pd.to_datetime(span["lo"], utc=True).iloc[0], pd.to_datetime(span["hi"], utc=True).iloc[0]
    parts: list[pd.DataFrame] = []

    # nth journey (ranked per customer by its first event), marked when the journey carries a marking; only
    # where some customer has a second journey
    per_j = t.group_by(["customer_id", "_jid"]).aggregate(
        start=t.ts.min(), end=t.ts.max(), seq0=t.seq.min(), marked=t._mk.any()
    )
    w = ibis.window(group_by=per_j.customer_id, order_by=[per_j.end, per_j.start, per_j.seq0])
    ranked = per_j.mutate(n=ibis.row_number().over(w) + 1)
    nth = ranked.filter(ranked.n.isin(list(counts))).select("customer_id", "n", "end", "marked").execute()
    if len(nth) and (nth["n"] > 1).any():
        parts.append(pd.DataFrame({"customer_id": nth["customer_id"], "milestone": "journey_" + nth["n"].astype(str),
                                   "kind": "count", "ts": nth["end"], "marked": nth["marked"].astype(bool)}))  # fmt: skip

    # nth purchase, where purchases are not one per journey (a purchase log, whose journey is the customer)
    has_value = "value" in t.columns
    if has_value and purchase_counts:
        pay = t.filter(t.value > 0)
        per_jp = pay.group_by("_jid").aggregate(n=pay.count())
        several = per_jp.aggregate(m=per_jp.n.max()).execute()["m"].iloc[0]
        if pd.notna(several) and int(several) > 1:
            wp = ibis.window(group_by=pay.customer_id, order_by=[pay.ts, pay.seq])
            pn = pay.mutate(n=ibis.row_number().over(wp) + 1, _mkp=pay._mk)
            hit = (
                pn.filter(pn.n.isin(list(purchase_counts))).select("customer_id", "n", "ts", "_mkp").execute()
            )
            if len(hit):
                parts.append(pd.DataFrame({"customer_id": hit["customer_id"], "milestone": "purchase_" + hit["n"].astype(str),
                                           "kind": "count", "ts": hit["ts"], "marked": hit["_mkp"].astype(bool)}))  # fmt: skip

    # per customer: first and last event and the days with events, for anniversaries and firsts
    cust = (
        t.group_by("customer_id")
        .aggregate(first=t.ts.min(), last=t.ts.max(), days=t.ts.date().nunique())
        .execute()
        .set_index("customer_id")
    )
    start = pd.to_datetime(cust["first"], utc=True)
    if isinstance(data, Store):
        names = set(data.query("SELECT DISTINCT name FROM attributes WHERE key_kind = 'customer_id'")["name"])
        attr = next((a for a in _START_ATTRS if a in names), None)
        if attr:
            a = data.query(
                "SELECT key AS customer_id, value FROM attributes WHERE key_kind='customer_id' AND name = ?",
                [attr],
            )
            s = pd.to_datetime(a.set_index("customer_id")["value"], utc=True, errors="coerce").dropna()
            start = s.reindex(start.index).fillna(start) if len(s) else start
    last = pd.to_datetime(cust["last"], utc=True)
    history = cust["days"] > 1  # a one-off customer (or respondent) has no tenure to mark
    for k in years:
        when = start + pd.DateOffset(years=k)
        ok = (when >= lo) & (when <= hi) & history & (when <= last + pd.DateOffset(years=1))
        if ok.any():
            parts.append(pd.DataFrame({"customer_id": start.index[ok], "milestone": f"anniversary_{k}y",
                                       "kind": "tenure", "ts": when[ok].to_numpy(), "marked": False}))  # fmt: skip

    # cumulative spend: running total over paying events
    used: tuple[float, ...] = ()
    if has_value:
        pay = t.filter(t.value > 0)
        if spend_thresholds is None:
            totals = pay.group_by("customer_id").aggregate(total=pay.value.sum()).execute()["total"]
            spend_thresholds = spend_thresholds_from(totals.to_numpy(dtype=float))
        used = tuple(spend_thresholds)
        wc = ibis.window(group_by=pay.customer_id, order_by=[pay.ts, pay.seq], preceding=None, following=0)
        cum = pay.mutate(cum=pay.value.sum().over(wc)).select("customer_id", "ts", "cum", "value")
        for x in used:
            hit = cum.filter((cum.cum >= x) & (cum.cum - cum.value < x)).select("customer_id", "ts").execute()
            if len(hit):
                parts.append(pd.DataFrame({"customer_id": hit["customer_id"], "milestone": f"spend_{x:g}",
                                           "kind": "spend", "ts": hit["ts"], "marked": False}))  # fmt: skip

    # firsts: a channel first used after the customer's first event; a touchpoint first reached after journey 1
    first_j = ranked.filter(ranked.n == 1).select("customer_id", j1="_jid")
    tj = t.join(first_j, "customer_id")
    if "channel" in t.columns:
        ch = tj.filter(tj.channel.notnull())
        fc = ch.group_by(["customer_id", "channel"]).aggregate(
            ts=ch.ts.min(), in_first=(ch._jid == ch.j1).any()
        )
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
        empty = pd.DataFrame(columns=["customer_id", "milestone", "kind", "ts", "marked"])
        empty.attrs["spend_thresholds"] = list(used)
        return empty
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
    out = out.sort_values(["ts", "customer_id", "milestone"], kind="mergesort").reset_index(drop=True)
    out.attrs["spend_thresholds"] = list(used)
    return out


def time_to_second(data: Any) -> dict[str, Any] | None:
    """How many customers make a second purchase (an event with ``value > 0``; without any, a second journey),
    and how long it takes: ``{"of", "customers", "repeat", "share", "median_days", "p25_days", "p75_days"}``;
    None when there are no events."""
    t = events_table(data)
    if "value" in t.columns:
        pay = t.filter(t.value > 0)
        if int(pay.count().execute()):
            return _second(pay.select("customer_id", "ts", "seq"), "purchase")
    t = t.mutate(_jid=journey_key(t))
    per_j = t.group_by(["customer_id", "_jid"]).aggregate(ts=t.ts.min(), seq=t.seq.min())
    return _second(per_j.select("customer_id", "ts", "seq"), "journey")


def _second(e: Any, of: str) -> dict[str, Any] | None:
    w = ibis.window(group_by=e.customer_id, order_by=[e.ts, e.seq])
    r = e.mutate(n=ibis.row_number().over(w) + 1)
    r = r.filter(r.n <= 2)
    df = r.group_by("customer_id").aggregate(first=r.ts.min(), second=r.ts.max(), k=r.count()).execute()
    if df.empty:
        return None
    rep = df[df["k"] >= 2]
    days = (
        pd.to_datetime(rep["second"], utc=True) - pd.to_datetime(rep["first"], utc=True)
    ).dt.total_seconds() / 86400
    q = days.quantile([0.25, 0.5, 0.75]) if len(days) else pd.Series(np.nan, index=[0.25, 0.5, 0.75])
    return {"of": of, "customers": int(len(df)), "repeat": int(len(rep)), "share": len(rep) / len(df),
            "median_days": float(q[0.5]), "p25_days": float(q[0.25]), "p75_days": float(q[0.75])}  # fmt: skip


class Milestones(EventFilters, Analysis):
    """Milestones customers cross, how often per week, and which go with better outcomes, marked or not.

    ``segment`` and ``channel`` narrow the events; ``since`` / ``until`` select the crossings in that range,
    counted over the whole history before ``until`` (see the module docstring)."""

    title = "Invisible milestones"

    def __init__(
        self,
        outcome: str | None = None,
        *,
        counts: tuple[int, ...] = COUNTS,
        purchase_counts: tuple[int, ...] = PURCHASE_COUNTS,
        years: tuple[int, ...] = YEARS,
        spend_thresholds: tuple[float, ...] | None = None,
        min_customers: int = 5,
        level: float = 0.95,
        max_fit_customers: int | None = None,
        seed: int = 0,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.max_fit_customers = max_fit_customers
        self.seed = seed
        self.counts = counts
        self.purchase_counts = purchase_counts
        self.years = years
        self.spend_thresholds = spend_thresholds
        self.min_customers = min_customers
        self.level = level
        self._set_filters(filters)

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> Milestones:
        from keymoments.store.store import Store

        events = self._events(
            data, since=None
        )  # the whole history before `until`: the 10th journey is the 10th
        if int(events.count().execute()) == 0:
            raise NotEnoughDataError(
                "No events left after the filters to find milestones in; loosen them." if self.filters else
                "No events in the store to find milestones in; ingest events first (`keymoments ingest FILE`)."
            )  # fmt: skip
        # above the limit, a seeded share of the customers, drawn in the engine: counts are scaled to all
        share = customer_share(events, fit_limit(self.max_fit_customers, "Milestones"), self.seed)
        scale = 1.0
        notes: list[str] = []  # the result's warnings (set with the rest: a failed fit leaves nothing fitted)
        if share is not None:
            events = share.restrict(events)
            drawn = int(events.customer_id.nunique().execute())
            scale = share.scale(drawn)
            notes.append(
                share.warning(drawn, "rates, their intervals and the numbers behind them (_n)")
            )
            warnings.warn(notes[-1], KeymomentsWarning, stacklevel=2)
        cr = milestone_crossings(
            data, counts=self.counts, purchase_counts=self.purchase_counts, years=self.years,
            spend_thresholds=self.spend_thresholds, events=events,
        )  # fmt: skip
        thresholds = cr.attrs.get("spend_thresholds", [])
        if "since" in self.filters:
            cr = cr[cr["ts"] >= pd.Timestamp(self.filters["since"])].reset_index(drop=True)
        crossers = cr.groupby("milestone")["customer_id"].nunique() if len(cr) else pd.Series(dtype=int)
        if not (crossers >= self.min_customers).any():
            raise NotEnoughDataError(
                "No milestones in the data" + (" under the filters" if self.filters else "")
                + f" that {self.min_customers} customers or more cross: milestones need repeat journeys or purchases "
                "(events with a value), or customers with a history of a year or more."
            )  # fmt: skip
        outcome = self.outcome
        if outcome is None and isinstance(data, Store):
            bools = [n for n, (k, d) in data.outcome_names().items() if d == "bool" and k == "customer_id"]
            outcome = "retained" if "retained" in bools else (bools[0] if bools else None)
        out = None
        binary = True
        if outcome is not None:
            out, key, binary = outcome_frame(data, outcome, outcomes, "Milestones")
            out = out.rename(columns={key: "customer_id"}) if key == "customer_id" else None
            if out is not None and share is not None:
                out = out[share.drawn(out["customer_id"])].reset_index(drop=True)
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
            weekly[ms] = {str(p.start_time.date()): round(v * scale) for p, v in w.items()}
            row: dict[str, Any] = {"milestone": ms, "kind": kind, "customers": round(n_c * scale),
                                   "per_week": len(g) * scale / n_weeks,
                                   "marked_share": float(g["marked"].mean())}  # fmt: skip
            if out is not None:
                y = out.set_index(out["customer_id"].astype(str))[outcome]
                crossed = set(g["customer_id"].astype(str))
                mk = set(g.loc[g["marked"], "customer_id"].astype(str))
                for label, ids in (
                    ("marked", mk),
                    ("unmarked", crossed - mk),
                    ("not_crossed", all_c - crossed),
                ):
                    v = y.reindex(list(ids)).dropna().to_numpy(dtype=float)
                    if binary:
                        p, lo, hi = proportion_ci(int(v.sum()), len(v), self.level)
                    else:
                        p, lo, hi, _ = mean_ci(v, self.level)
                    row[f"{label}_n"], row[f"{label}_rate"] = len(v), p
                    row[f"{label}_ci_low"], row[f"{label}_ci_high"] = lo, hi
            rows.append(row)
        self.crossings_ = cr
        self.warnings_ = notes
        self.spend_thresholds_ = list(thresholds)
        self.second_ = time_to_second(events)
        if self.second_ and share is not None:
            self.second_.update(
                customers=round(self.second_["customers"] * scale),
                repeat=round(self.second_["repeat"] * scale),
            )
        table = pd.DataFrame(rows)
        if len(
            table
        ):  # by kind, then by the number in the name (purchase_2 before purchase_10), then by name
            kinds = {"count": 0, "spend": 1, "tenure": 2, "first": 3}
            num = table["milestone"].str.extract(r"_(\d+(?:\.\d+)?)y?$")[0].astype(float).fillna(0)
            table = table.assign(
                _k=table["kind"].map(kinds).fillna(9),
                _n=num,
                _p=table["milestone"].str.rsplit("_", n=1).str[0],
            )
            table = table.sort_values(["_k", "_p", "_n", "milestone"], kind="mergesort").drop(
                columns=["_k", "_n", "_p"]
            )
        self.milestones_ = table.reset_index(drop=True)
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

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        self._check_fitted()
        print_table(
            self.summary, title=self.title + (f" (outcome: {self.outcome_})" if self.outcome_ else "")
        )
        s = self.second_
        if s and s["repeat"]:
            console.print(
                f"Second {s['of']}: {s['repeat']:,} of {s['customers']:,} customers ({s['share']:.0%}) make one, after a "
                f"median of {s['median_days']:.0f} days (quartiles {s['p25_days']:.0f}-{s['p75_days']:.0f})."
            )
        elif s:
            console.print(f"Second {s['of']}: none of {s['customers']:,} customers makes one yet.")
        if self.spend_thresholds_ and self.spend_thresholds is None:
            console.print("Spend thresholds (from the customers' total spend: median, 75th, 90th, 99th percentile): "
                          + ", ".join(f"{x:,.6g}" for x in self.spend_thresholds_))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "outcome": self.outcome_,
            "weeks": self.weeks_,
            "spend_thresholds": self.spend_thresholds_,
            "time_to_second": self.second_,
            "milestones": self.milestones_.to_dict(orient="records"),
            "weekly": self.weekly_,
            "filters": self.filters,
            **({"warnings": list(self.warnings_)} if getattr(self, "warnings_", None) else {}),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import milestones_figure

        self._check_fitted()
        return milestones_figure(self.milestones_)
