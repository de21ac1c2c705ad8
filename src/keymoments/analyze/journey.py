"""The journey map: per touchpoint volume, reach, emotion with its uncertainty, failures, pits and peaks;
the directly-follows transitions, the most common paths and where journeys stop.

**Method.** The (filtered) events are compiled once and read by five DuckDB group-bys, none of which sorts
events; everything else is arithmetic on their small results:

1. per (touchpoint, step): events, failures (a crisis outcome) and last events. The touchpoints' volumes,
   failure rates and drop-offs, and the journey order (by median step), come from this histogram;
2. per (touchpoint, next touchpoint, gap bucket), the events followed by another one: the transitions with
   their median gaps, and the median gap per touchpoint. Transitions use the ``next_touchpoint`` / ``next_ts``
   columns the store materialises at ingest (equal timestamps keep source order, as process-mining tools do);
3. per (touchpoint, valence bucket), the rated events: the valence histogram behind the CIs, with the sums
   behind the mean and the share negative;
4. and 5. per journey, then per path fingerprint, and per customer (:mod:`keymoments.analyze.paths`): journeys
   and customers per touchpoint and the most common paths.

On 10M events the fit is dominated by the per-journey group-by and the gap histogram (a logarithm per
event); the rest is a few hundredths of a second.

**Pit / peak rule.** Let ``overall`` be the mean valence of every rated event in the (filtered) data. A
touchpoint is a *pit* when its whole 95% CI lies below ``overall`` and its mean is at least ``margin`` (0.2,
a tenth of the valence range, about 0.4 points on a 5-point scale) below it; a *peak* when its whole CI lies above ``overall`` and its mean is at least ``margin`` above; otherwise
*neutral*. Touchpoints with fewer than ``min_rated`` (10) rated events are always neutral. The margin keeps
statistically real but negligible differences on big data from being called pits.

**Median gaps** (time to the next touchpoint) come from a histogram of the gaps on a log scale, 2000 buckets
per e-fold, so they are within 0.025% (and a millisecond) of the exact median at the cost of a group-by.

**The CI** of a touchpoint's mean valence is a percentile bootstrap over its rated events, computed exactly
from the histogram of valences at 0.005 resolution (a multinomial resample of the histogram is a resample of
the events), so it costs the same on 10 million events as on 1,000.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, warn_small_sample
from keymoments.analyze.filters import check_filters, filter_events
from keymoments.analyze.order import (
    merge_order,
    no_touchpoints,
    order_from_histogram,
    precedence_order,
    time_order,
)
from keymoments.analyze.paths import journey_counts
from keymoments.analyze.sql import EventsSQL, sql_str
from keymoments.events import CRISIS_OUTCOMES, JourneyModel
from keymoments.exceptions import InvalidParameterError

__all__ = ["JourneyMap", "filter_events", "multinomial_bootstrap_ci"]

_BIN = 200  # valence histogram resolution: 1/200 = 0.005
_GAP_RES = 2000  # gap histogram: buckets of ln(1 + ms) * 2000, so medians are within 0.025% (and 1 ms)
# (round() rounds half away from zero, as ROUND(x, 0) does, at a fraction of its cost; ms is whole milliseconds)

# 1. events, failures and last events (no next touchpoint) per (touchpoint, step): the volumes, the drop-offs
#    and the journey order
_STEPS = """
SELECT touchpoint, step, count(*) AS n, count(*) FILTER (WHERE _failed) AS failures,
       count(*) FILTER (WHERE next_touchpoint IS NULL) AS ends
FROM ev GROUP BY ALL
"""
# 2. the transitions: events followed by another one per (touchpoint, next touchpoint, gap bucket), numbered
#    by pair and by touchpoint for the medians
_TRANSITIONS = f"""
WITH h AS (
    SELECT touchpoint, next_touchpoint,
           CAST(round(ln(greatest(floor((epoch_us(next_ts) - epoch_us(ts)) / 1000), 0) + 1) * {_GAP_RES}) AS INTEGER)
               AS gap_bucket,
           count(*) AS n
    FROM ev WHERE next_ts IS NOT NULL GROUP BY ALL
)
SELECT *, dense_rank() OVER (ORDER BY touchpoint, next_touchpoint) - 1 AS pair,
       dense_rank() OVER (ORDER BY touchpoint) - 1 AS tp
FROM h
"""
# 3. rated events per (touchpoint, valence bucket): the valence histogram behind the CIs, and the sums
_VALENCES = f"""
SELECT touchpoint, CAST(round(_val * {_BIN}) AS INTEGER) AS bucket,
       count(*) AS n, sum(_val) AS val_sum, count(*) FILTER (WHERE _val < 0) AS negative
FROM ev WHERE _val IS NOT NULL GROUP BY ALL
"""


def _hist_medians(codes: np.ndarray, buckets: np.ndarray, counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Exact medians (mean of the two middle values), in seconds, of the gaps bucketed in ``buckets`` with
    ``counts``, per group ``codes`` (0 .. n_groups - 1; NaN for a group without gaps): one cumulative sum over
    the histogram sorted by group and bucket, and a binary search for the middle ranks of each group."""
    out = np.full(n_groups, np.nan)
    if len(codes) == 0:
        return out
    o = np.lexsort((buckets, codes))
    codes, b = codes[o], buckets[o].astype(float)
    cum = np.cumsum(counts[o].astype(np.int64))
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    ends = np.r_[starts[1:], len(codes)]
    before = np.r_[0, cum[ends[:-1] - 1]]
    total = cum[ends - 1] - before
    lo = b[np.searchsorted(cum, before + (total - 1) // 2 + 1)]
    hi = b[np.searchsorted(cum, before + total // 2 + 1)]
    ms = (np.expm1(lo / _GAP_RES) + np.expm1(hi / _GAP_RES)) / 2
    out[codes[starts]] = np.round(ms) / 1000.0
    return out


def _human_s(seconds: float) -> str:
    if seconds is None or not np.isfinite(seconds):
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def multinomial_bootstrap_ci(
    values: np.ndarray, counts: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean from a histogram (``values`` with ``counts``)."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)
    means = draws @ np.asarray(values, dtype=float) / n
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _events_sql(t: Any, crisis: list[str]) -> EventsSQL:
    """The events as ``ev`` for the queries, with the journey key ``_jid`` (the journey, or the customer when
    it is missing), the valence ``_val`` (NULL without a valence column) and ``_failed`` (a crisis outcome)."""
    cols = set(t.columns)
    failed = f"CAST(outcome AS VARCHAR) IN ({', '.join(map(sql_str, crisis))})" if "outcome" in cols and crisis else "FALSE"
    return EventsSQL(t, columns={
        "_jid": "coalesce(journey_id, customer_id)" if "journey_id" in cols else "customer_id",
        "_val": "CAST(valence AS DOUBLE)" if "valence" in cols else "CAST(NULL AS DOUBLE)",
        "_failed": failed,
    })  # fmt: skip


def _transitions(q: EventsSQL) -> tuple[pd.DataFrame, pd.Series]:
    """The directly-follows pairs (touchpoint, next_touchpoint: None where the next event has none) with their
    count and median gap, and the median gap to the next touchpoint per touchpoint."""
    raw = q.df(_TRANSITIONS)
    pair, tp = raw["pair"].to_numpy(dtype=np.int64), raw["tp"].to_numpy(dtype=np.int64)
    buckets, n = raw["gap_bucket"].to_numpy(dtype=float), raw["n"].to_numpy(dtype=np.int64)
    pairs = raw.iloc[np.unique(pair, return_index=True)[1]][["touchpoint", "next_touchpoint"]]
    pairs = pairs.reset_index(drop=True)
    pairs["count"] = np.bincount(pair, weights=n, minlength=len(pairs)).astype(np.int64)
    pairs["median_gap_s"] = _hist_medians(pair, buckets, n, len(pairs))
    tps = raw["touchpoint"].to_numpy()[np.unique(tp, return_index=True)[1]]
    return pairs, pd.Series(_hist_medians(tp, buckets, n, len(tps)), index=tps)


def _touchpoint_sums(steps: pd.DataFrame, valences: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per touchpoint, in ``order``: events, failures and last events (from the step histogram); rated events,
    their valence sum and the negative ones (from the valence histogram)."""
    where = pd.Index(order)
    s, v = where.get_indexer(steps["touchpoint"]), where.get_indexer(valences["touchpoint"])

    def total(codes: np.ndarray, values: pd.Series) -> np.ndarray:
        return np.bincount(codes, weights=values.to_numpy(dtype=float), minlength=len(order))

    return pd.DataFrame({
        "touchpoint": order,
        "events": total(s, steps["n"]).astype(np.int64),
        "failures": total(s, steps["failures"]).astype(np.int64),
        "ends_here": total(s, steps["ends"]).astype(np.int64),
        "rated": total(v, valences["n"]).astype(np.int64),
        "val_sum": total(v, valences["val_sum"]),
        "negative": total(v, valences["negative"]).astype(np.int64),
    })  # fmt: skip


def _valence_cis(valences: pd.DataFrame, order: list[str], n_boot: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap CI of the mean valence per touchpoint in ``order`` (NaN without rated events), each
    resampled with its rank as the seed and its buckets in ascending order, so the same data gives the same
    interval whatever order the GROUP BY returned."""
    codes = pd.Index(order).get_indexer(valences["touchpoint"])
    o = np.lexsort((valences["bucket"].to_numpy(), codes))
    codes, values, counts = codes[o], valences["bucket"].to_numpy()[o] / _BIN, valences["n"].to_numpy()[o]
    bounds = np.searchsorted(codes, np.arange(len(order) + 1))
    lows, highs = np.full(len(order), np.nan), np.full(len(order), np.nan)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if b > a:
            lows[i], highs[i] = multinomial_bootstrap_ci(values[a:b], counts[a:b], n_boot=n_boot, level=level, seed=i)
    return lows, highs


def _transition_table(pairs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The transitions (from, to, count, share of the from touchpoint's transitions, median gap), most common
    first, then in journey order (a touchpoint outside the order, e.g. filtered out, last)."""
    t = pairs[pairs["next_touchpoint"].notna()]
    where = pd.Index(order)

    def rank(col: str) -> np.ndarray:
        r = where.get_indexer(t[col])
        return np.where(r < 0, len(order), r)

    count = t["count"].to_numpy(dtype=np.int64)
    o = np.lexsort((rank("next_touchpoint"), rank("touchpoint"), -count))
    out = pd.DataFrame({
        "from": t["touchpoint"].to_numpy()[o], "to": t["next_touchpoint"].to_numpy()[o], "count": count[o],
    }).astype({"from": "str", "to": "str"})  # fmt: skip
    out["share"] = out["count"] / out.groupby("from")["count"].transform("sum")
    out["median_gap_s"] = t["median_gap_s"].to_numpy(dtype=float)[o]
    return out


class JourneyMap(Analysis):
    """The journey map with its emotion curve, pits and peaks, transitions, variants and drop-offs.

    >>> jm = JourneyMap().fit(store)           # doctest: +SKIP
    >>> jm.touchpoints_[["touchpoint", "mean_valence", "kind"]]  # doctest: +SKIP
    """

    title = "Journey map"

    def __init__(
        self,
        journey: JourneyModel | None = None,
        *,
        segment: str | None = None,
        channel: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        margin: float = 0.2,
        min_rated: int = 10,
        n_variants: int = 10,
        n_boot: int = 1000,
        level: float = 0.95,
        variants: bool = True,
    ) -> None:
        self.journey = journey
        self.segment = segment
        self.channel = channel
        self.since = since
        self.until = until
        self.margin = margin
        self.min_rated = min_rated
        self.n_variants = n_variants
        self.n_boot = n_boot
        self.level = level
        self.variants = variants

    # -- fitting ---------------------------------------------------------------------------------------
    def _validate(self) -> None:
        if not (0 <= self.margin < 2):
            raise InvalidParameterError(f"The 'margin' parameter of JourneyMap must be in [0, 2). Got {self.margin!r} instead.")
        if not (0 < self.level < 1):
            raise InvalidParameterError(f"The 'level' parameter of JourneyMap must be in (0, 1). Got {self.level!r} instead.")
        if self.n_boot < 100:
            raise InvalidParameterError(f"The 'n_boot' parameter of JourneyMap must be at least 100. Got {self.n_boot!r} instead.")

    def fit(self, data: Any) -> JourneyMap:
        """Compute the map from a Store, an Ibis events table or a pandas DataFrame of events."""
        self._validate()
        t = filter_events(
            data, segment=self.segment, channel=self.channel, since=self.since, until=self.until
        )
        t = t.filter(t.touchpoint.notnull() & (t.touchpoint != ""))
        crisis = sorted(self.journey.crisis_outcomes if self.journey else CRISIS_OUTCOMES)
        q = _events_sql(t, crisis)  # compiled once; the queries below read it as `ev`

        steps = q.df(_STEPS)
        if steps.empty:
            raise no_touchpoints(data, "map", filtered=bool(self._filters()))
        present = set(steps["touchpoint"])
        timing = time_order(data)
        inferred = order_from_histogram(steps) if timing.ordered else precedence_order(t, steps)
        order = [tp for tp in merge_order(inferred, self.journey) if tp in present]
        pairs, tp_gap = _transitions(q)
        valences = q.df(_VALENCES)
        jc = journey_counts(q, order, self.n_variants if self.variants else None)

        per_tp = _touchpoint_sums(steps, valences, order)
        n_events, n_rated = int(per_tp["events"].sum()), int(per_tp["rated"].sum())
        overall = float(per_tp["val_sum"].sum() / n_rated) if n_rated else float("nan")
        warn_small_sample("The journey map", jc.journeys)
        rated = per_tp["rated"].to_numpy()
        per_tp["journeys"] = np.array([jc.journeys_at[tp] for tp in order], dtype=np.int64)
        per_tp["customers"] = np.array([jc.customers_at[tp] for tp in order], dtype=np.int64)
        per_tp["reach"] = per_tp["journeys"] / jc.journeys
        per_tp["mean_valence"] = np.where(rated > 0, per_tp["val_sum"] / np.clip(rated, 1, None), np.nan)
        per_tp["share_negative"] = np.where(rated > 0, per_tp["negative"] / np.clip(rated, 1, None), np.nan)
        per_tp["failure_rate"] = per_tp["failures"] / per_tp["events"]
        per_tp["median_gap_s"] = tp_gap.reindex(order).to_numpy(dtype=float)
        per_tp["ci_low"], per_tp["ci_high"] = _valence_cis(valences, order, self.n_boot, self.level)
        per_tp["kind"] = [
            self._kind(m, lo, hi, n, overall)
            for m, lo, hi, n in zip(per_tp["mean_valence"], per_tp["ci_low"], per_tp["ci_high"], rated, strict=True)
        ]
        for tp, n in zip(order, rated, strict=True):
            if 0 < n < self.min_rated:
                warn_small_sample(f"The mean valence at {tp!r}", int(n), self.min_rated)

        self.order_ = order
        self.time_ordered_ = timing.ordered
        self.note_ = timing.why_not
        if not timing.ordered:  # no time: no gaps, no transitions, no endings (only the order given)
            per_tp["median_gap_s"] = np.nan
        self.overall_valence_ = overall
        self.n_events_ = n_events
        self.n_journeys_ = jc.journeys
        self.n_customers_ = jc.customers
        self.n_rated_ = n_rated
        cols = [
            "touchpoint", "events", "customers", "journeys", "reach", "rated", "mean_valence", "ci_low", "ci_high",
            "share_negative", "failure_rate", "median_gap_s", "ends_here", "kind",
        ]
        self.touchpoints_ = per_tp[cols]
        self.transitions_ = _transition_table(pairs, order)
        self.drop_offs_ = self._drop_offs(per_tp, order)
        if not timing.ordered:
            self.transitions_, self.drop_offs_ = self.transitions_.iloc[:0], self.drop_offs_.iloc[:0]
        self.variants_ = jc.variants
        return self

    def _filters(self) -> dict[str, Any]:
        return {k: v for k, v in (("segment", self.segment), ("channel", self.channel), ("since", self.since),
                                  ("until", self.until)) if v not in (None, "")}  # fmt: skip

    def _kind(self, mean: float, low: float, high: float, rated: int, overall: float) -> str:
        if rated < self.min_rated or not np.isfinite(overall) or not np.isfinite(low) or not np.isfinite(high):
            return "neutral"
        if high < overall and mean <= overall - self.margin:
            return "pit"
        if low > overall and mean >= overall + self.margin:
            return "peak"
        return "neutral"

    def _drop_offs(self, per_tp: pd.DataFrame, order: list[str]) -> pd.DataFrame:
        """Where journeys end: per touchpoint, how many journeys end there, and whether that is a usual end."""
        endings = {t.name for t in self.journey.touchpoints if t.ending} if self.journey else set()
        if not endings and order:
            # without a model, the usual end is where most journeys end
            endings = {per_tp.loc[per_tp["ends_here"].idxmax(), "touchpoint"]}
        d = per_tp[["touchpoint", "journeys", "ends_here"]].copy()
        d["share_of_journeys_ending"] = d["ends_here"] / max(int(d["ends_here"].sum()), 1)
        d["drop_off_rate"] = d["ends_here"] / d["journeys"]
        d["usual_end"] = d["touchpoint"].isin(endings)
        return d[d["ends_here"] > 0].reset_index(drop=True)

    # -- results ---------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.touchpoints_[
            ["touchpoint", "events", "customers", "reach", "mean_valence", "ci_low", "ci_high",
             "share_negative", "failure_rate", "median_gap_s", "kind"]
        ]

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        self._check_fitted()
        tp = self.touchpoints_
        compact = pd.DataFrame({
            "touchpoint": tp["touchpoint"], "events": tp["events"], "reach": tp["reach"],
            "valence": tp["mean_valence"],
            "95% CI": [f"[{a:+.2f}, {b:+.2f}]" if np.isfinite(a) else "" for a, b in zip(tp["ci_low"], tp["ci_high"], strict=True)],
            "neg": tp["share_negative"], "fail": tp["failure_rate"],
            "gap": [_human_s(x) for x in tp["median_gap_s"]], "kind": tp["kind"],
        })  # fmt: skip
        print_table(
            compact,
            title=f"Journey map: {self.n_journeys_} journeys, {self.n_events_} events, "
            + (f"overall valence {self.overall_valence_:+.3f}" if np.isfinite(self.overall_valence_)
               else "no rated events (no emotion curve; score ratings or text first)"),
        )
        if self.note_:
            console.print(f"Note: {self.note_}; no transitions, gaps or endings are inferred.")
        if len(self.transitions_):
            tr = self.transitions_.head(20).assign(median_gap=lambda d: [_human_s(x) for x in d["median_gap_s"]])
            print_table(tr.drop(columns=["median_gap_s"]), title="Top transitions (directly follows)")
        if len(self.variants_):
            print_table(self.variants_, title="Most common paths" if self.time_ordered_ else "Most common sets of touchpoints")
        if len(self.drop_offs_):
            print_table(self.drop_offs_, title="Where journeys end")

    def _repr_html_(self) -> str:
        if not self.fitted:
            return super()._repr_html_()
        fmt = "{:.3f}".format
        valence = f"overall valence {self.overall_valence_:+.3f}" if np.isfinite(self.overall_valence_) else "no rated events"
        return (
            f"<h4>Journey map ({self.n_journeys_} journeys, {valence})</h4>"
            + self.summary.to_html(index=False, float_format=fmt)
            + "<h5>Transitions</h5>"
            + self.transitions_.head(20).to_html(index=False, float_format=fmt)
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        """touchpoints (the main table), transitions, variants and drop_offs, with their columns even when empty."""
        self._check_fitted()
        return {"touchpoints": self.touchpoints_, "transitions": self.transitions_, "variants": self.variants_,
                "drop_offs": self.drop_offs_}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "touchpoints": self.touchpoints_.to_dict(orient="records"),
            "transitions": self.transitions_.to_dict(orient="records"),
            "variants": self.variants_.to_dict(orient="records"),
            "drop_offs": self.drop_offs_.to_dict(orient="records"),
            "overall_valence": self.overall_valence_,
            "events": self.n_events_,
            "journeys": self.n_journeys_,
            "customers": self.n_customers_,
            "order": self.order_,
            "time_ordered": self.time_ordered_,
            **({"note": self.note_} if self.note_ else {}),
            "rule": (
                f"pit: {int(self.level * 100)}% CI entirely below the overall valence and mean at least "
                f"{self.margin} below it; peak: the mirror image; touchpoints with fewer than {self.min_rated} "
                "rated events are neutral"
            ),
            "filters": check_filters(
                "JourneyMap", segment=self.segment, channel=self.channel, since=self.since, until=self.until
            ),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import journey_map_figure

        self._check_fitted()
        return journey_map_figure(self.touchpoints_, self.overall_valence_)
