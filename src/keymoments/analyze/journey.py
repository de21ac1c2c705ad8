"""The journey map: per touchpoint volume, reach, emotion with its uncertainty, failures, pits and peaks;
the directly-follows transitions, the most common paths and where journeys stop.

Everything is an Ibis group-by over the events table; transitions use the ``next_touchpoint`` / ``next_ts``
columns the store materialises at ingest (equal timestamps keep source order, as process-mining tools do),
so no query sorts events.

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
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, warn_small_sample
from keymoments.analyze.filters import filter_events
from keymoments.analyze.order import journey_key, merge_order, order_from_histogram
from keymoments.events import CRISIS_OUTCOMES, JourneyModel
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["JourneyMap", "filter_events", "multinomial_bootstrap_ci"]

_BIN = 200  # valence histogram resolution: 1/200 = 0.005
_GAP_RES = 2000  # gap histogram: buckets of ln(1 + ms) * 2000, so medians are within 0.025% (and 1 ms)


def _hist_medians(h: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Exact medians (mean of the two middle values) of the bucketed gaps, in seconds, per group of ``by``."""
    rows = []
    for key, grp in h.groupby(by, sort=False):
        grp = grp.sort_values("_gb")
        b = grp["_gb"].to_numpy(dtype=float)
        c = np.cumsum(grp["n"].to_numpy(dtype=np.int64))
        total = int(c[-1])
        lo = b[np.searchsorted(c, (total - 1) // 2 + 1)]
        hi = b[np.searchsorted(c, total // 2 + 1)]
        ms = (np.expm1(lo / _GAP_RES) + np.expm1(hi / _GAP_RES)) / 2
        rows.append((*(key if isinstance(key, tuple) else (key,)), float(np.round(ms)) / 1000.0))
    return pd.DataFrame(rows, columns=[*by, "median_gap_s"])


def _human_s(seconds: float) -> str:
    if seconds is None or not np.isfinite(seconds):
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@ibis.udf.scalar.builtin
def epoch_us(ts) -> dt.int64:  # noqa: ANN001
    """Microseconds since the epoch (DuckDB's ``epoch_us``): unlike ``epoch_seconds`` it does not cast a
    TIMESTAMPTZ to a local TIMESTAMP first (a time-zone conversion per row), and on 10M rows it is several
    times faster than ``epoch_ms``."""


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
        has_val = "valence" in t.columns
        has_out = "outcome" in t.columns
        jid = journey_key(t)
        val = t.valence if has_val else ibis.null().cast("float64")
        gap_ms = (epoch_us(t.next_ts) - epoch_us(t.ts)) // 1000  # integer milliseconds
        t = t.mutate(_jid=jid, _val=val, _gap=gap_ms)

        # 1. per (touchpoint, next touchpoint, outcome), the last events included (next is NULL): every
        #    additive number; the outcome is a group key so the crisis test runs on a few rows, not every event
        keys = ["touchpoint", "next_touchpoint"] + (["outcome"] if has_out else [])
        raw = t.group_by(keys).aggregate(
            count=t.count(),
            rated=t._val.count(),
            val_sum=t._val.sum(),
            negative=(t._val < 0).cast("int64").sum(),
        ).execute()
        for col in ("count", "rated", "negative"):
            raw[col] = pd.to_numeric(raw[col]).fillna(0).astype("int64")
        raw["val_sum"] = pd.to_numeric(raw["val_sum"]).astype("float64").fillna(0.0)
        if raw.empty:
            raise NotEnoughDataError("No events to map (after filters); ingest events or loosen the filters.")
        raw["failures"] = np.where(raw["outcome"].isin(crisis), raw["count"], 0) if has_out else 0
        raw["next_touchpoint"] = raw["next_touchpoint"].astype(object).where(raw["next_touchpoint"].notna(), None)
        pairs = (
            raw.groupby(["touchpoint", "next_touchpoint"], dropna=False, sort=False)[
                ["count", "rated", "val_sum", "negative", "failures"]
            ].sum().reset_index()
        )
        # 2. gap medians from a log-scale histogram of the gaps (relative precision 1/_GAP_RES): one cheap
        #    group-by serves the medians per transition and per touchpoint
        g = t.filter(t.next_ts.notnull())
        g = g.mutate(_gb=((g._gap.clip(lower=0) + 1).cast("float64").ln() * _GAP_RES).round().cast("int32"))
        gh = g.group_by(["touchpoint", "next_touchpoint", "_gb"]).aggregate(n=g.count()).execute()
        pair_med = _hist_medians(gh, ["touchpoint", "next_touchpoint"])
        tp_med = _hist_medians(gh.groupby(["touchpoint", "_gb"], as_index=False)["n"].sum(), ["touchpoint"])
        pairs = pairs.merge(pair_med, on=["touchpoint", "next_touchpoint"], how="left")
        gaps = tp_med
        step_hist = t.group_by(["touchpoint", "step"]).aggregate(n=t.count()).execute()
        rated_t = t.filter(t._val.notnull())
        hist = (
            rated_t.mutate(_b=(rated_t._val * _BIN).round().cast("int32"))
            .group_by(["touchpoint", "_b"])
            .aggregate(n=lambda x: x.count())
            .execute()
        )
        order = merge_order(order_from_histogram(step_hist), self.journey)
        present = set(pairs["touchpoint"])
        order = [tp for tp in order if tp in present]
        rank = {tp: i for i, tp in enumerate(order)}

        per_tp = pairs.groupby("touchpoint", sort=False).agg(
            events=("count", "sum"), rated=("rated", "sum"), val_sum=("val_sum", "sum"),
            negative=("negative", "sum"), failures=("failures", "sum"),
        ).reset_index()
        last = pairs[pairs["next_touchpoint"].isna()].set_index("touchpoint")["count"]
        per_tp["ends_here"] = per_tp["touchpoint"].map(last).fillna(0).astype("int64")
        per_tp["median_gap_s"] = per_tp["touchpoint"].map(gaps.set_index("touchpoint")["median_gap_s"])
        per_tp["mean_valence"] = np.where(per_tp["rated"] > 0, per_tp["val_sum"] / per_tp["rated"].clip(lower=1), np.nan)

        # 3. journeys and customers per touchpoint, variants: one pass at journey level
        n_journeys, n_customers, jcounts, ccounts, variants = self._journey_level(t, order)
        n_events = int(per_tp["events"].sum())
        n_rated = int(per_tp["rated"].sum())
        overall = float(per_tp["val_sum"].sum() / n_rated) if n_rated else float("nan")
        warn_small_sample("The journey map", n_journeys)
        per_tp["journeys"] = per_tp["touchpoint"].map(jcounts).astype("int64")
        per_tp["customers"] = per_tp["touchpoint"].map(ccounts).astype("int64")

        per_tp["reach"] = per_tp["journeys"] / n_journeys
        per_tp["share_negative"] = np.where(per_tp["rated"] > 0, per_tp["negative"] / per_tp["rated"].clip(lower=1), np.nan)
        per_tp["failure_rate"] = per_tp["failures"] / per_tp["events"]
        lows, highs = [], []
        # bins sorted: a GROUP BY returns them in any order, and the seeded resample must see one order
        hist_by_tp = {k: g.sort_values("_b", kind="stable") for k, g in hist.groupby("touchpoint")}
        for tp in per_tp["touchpoint"]:
            g = hist_by_tp.get(tp)
            if g is None:
                lows.append(np.nan)
                highs.append(np.nan)
                continue
            lo, hi = multinomial_bootstrap_ci(
                g["_b"].to_numpy() / _BIN, g["n"].to_numpy(), n_boot=self.n_boot, level=self.level,
                seed=rank.get(tp, 0),
            )
            lows.append(lo)
            highs.append(hi)
        per_tp["ci_low"] = lows
        per_tp["ci_high"] = highs
        per_tp["kind"] = [
            self._kind(r.mean_valence, r.ci_low, r.ci_high, r.rated, overall) for r in per_tp.itertuples()
        ]
        per_tp["order"] = per_tp["touchpoint"].map(rank)
        per_tp = per_tp.sort_values("order", kind="mergesort").reset_index(drop=True)
        for tp, n in zip(per_tp["touchpoint"], per_tp["rated"], strict=True):
            if 0 < n < self.min_rated:
                warn_small_sample(f"The mean valence at {tp!r}", int(n), self.min_rated)

        transitions = pairs[pairs["next_touchpoint"].notna()].rename(columns={"touchpoint": "from", "next_touchpoint": "to"})
        transitions = transitions[["from", "to", "count", "median_gap_s"]].copy()
        transitions["count"] = transitions["count"].astype("int64")
        transitions = transitions.assign(
            _a=transitions["from"].map(rank), _b=transitions["to"].map(rank)
        ).sort_values(["count", "_a", "_b"], ascending=[False, True, True], kind="mergesort")
        transitions = transitions.drop(columns=["_a", "_b"]).reset_index(drop=True)
        transitions["share"] = transitions["count"] / transitions.groupby("from")["count"].transform("sum")

        self.order_ = order
        self.overall_valence_ = overall
        self.n_events_ = n_events
        self.n_journeys_ = n_journeys
        self.n_customers_ = n_customers
        self.n_rated_ = n_rated
        cols = [
            "touchpoint", "events", "customers", "journeys", "reach", "rated", "mean_valence", "ci_low", "ci_high",
            "share_negative", "failure_rate", "median_gap_s", "ends_here", "kind",
        ]
        self.touchpoints_ = per_tp[cols]
        self.transitions_ = transitions[["from", "to", "count", "share", "median_gap_s"]]
        self.drop_offs_ = self._drop_offs(per_tp, order)
        self.variants_ = variants
        return self

    def _journey_level(
        self, t: ir.Table, order: list[str]
    ) -> tuple[int, int, dict[str, int], dict[str, int], pd.DataFrame]:
        """One group-by per journey: the set of touchpoints it visits (a bit mask) and a fingerprint of its
        path (xor of hashes of (step, touchpoint), which are distinct within a journey). Journeys per
        touchpoint, variants and their counts follow from the (small) table of distinct fingerprints; customers
        per touchpoint from one more group-by per customer over the masks."""
        if len(order) > 62:
            return self._journey_level_distinct(t, order)
        idx = t.touchpoint.cases(*[(tp, i) for i, tp in enumerate(order)], else_=None).cast("int64")
        bit = ibis.literal(1, "int64") << idx
        fp = (idx * 1_000_003 + t.step.cast("int64")).hash()  # (touchpoint, step) pairs are distinct in a journey
        u = t.mutate(_bit=bit, _fp=fp)
        per_j = u.group_by("_jid").aggregate(
            customer_id=u.customer_id.arbitrary(), mask=u._bit.bit_or(), fp=u._fp.bit_xor(), n=u.count()
        )
        try:  # the journey-level table (one row per journey) feeds two queries: materialise it once
            per_j = per_j.cache()
        except Exception:  # noqa: BLE001 - a backend without temp tables just recomputes it
            pass
        per_fp = per_j.group_by("fp").aggregate(
            journeys=per_j.count(), mask=per_j.mask.arbitrary(), example=per_j._jid.min()
        ).execute()
        per_c = per_j.group_by("customer_id").aggregate(mask=per_j.mask.bit_or())
        per_cmask = per_c.group_by("mask").aggregate(customers=per_c.count()).execute()

        def decode(masks: np.ndarray, weights: np.ndarray) -> dict[str, int]:
            masks = masks.astype(np.int64)
            return {tp: int(weights[(masks >> i) & 1 == 1].sum()) for i, tp in enumerate(order)}

        jcounts = decode(per_fp["mask"].to_numpy(), per_fp["journeys"].to_numpy())
        ccounts = decode(per_cmask["mask"].to_numpy(), per_cmask["customers"].to_numpy())
        n_journeys = int(per_fp["journeys"].sum())
        n_customers = int(per_cmask["customers"].sum())
        variants = pd.DataFrame(columns=["path", "journeys", "share"])
        if self.variants:
            top = per_fp.sort_values(["journeys", "example"], ascending=[False, True]).head(self.n_variants)
            variants = self._paths(t, top, n_journeys)
        return n_journeys, n_customers, jcounts, ccounts, variants

    def _journey_level_distinct(
        self, t: ir.Table, order: list[str]
    ) -> tuple[int, int, dict[str, int], dict[str, int], pd.DataFrame]:
        """The same numbers with COUNT(DISTINCT) and ordered string aggregation (many touchpoints)."""
        per = t.group_by("touchpoint").aggregate(j=t._jid.nunique(), c=t.customer_id.nunique()).execute()
        tot = t.aggregate(j=t._jid.nunique(), c=t.customer_id.nunique()).execute()
        variants = pd.DataFrame(columns=["path", "journeys", "share"])
        n_j = int(tot["j"].iloc[0])
        if self.variants:
            paths = t.group_by("_jid").aggregate(path=t.touchpoint.group_concat(" > ", order_by=[t.step]))
            v = paths.group_by("path").aggregate(journeys=paths.count())
            variants = v.order_by([ibis.desc("journeys"), "path"]).limit(self.n_variants).execute()
            variants["share"] = variants["journeys"] / n_j
        return (
            n_j, int(tot["c"].iloc[0]), dict(zip(per["touchpoint"], per["j"], strict=True)),
            dict(zip(per["touchpoint"], per["c"], strict=True)), variants,
        )

    def _paths(self, t: ir.Table, top: pd.DataFrame, n_journeys: int) -> pd.DataFrame:
        """The paths of the example journeys of the top fingerprints."""
        ex = [str(x) for x in top["example"]]
        if not ex:
            return pd.DataFrame(columns=["path", "journeys", "share"])
        ev = t.filter(t._jid.isin(ex)).select("_jid", "step", "touchpoint").execute()
        ev = ev.sort_values(["_jid", "step"], kind="mergesort")
        paths = ev.groupby("_jid", sort=False)["touchpoint"].agg(" > ".join)
        out = pd.DataFrame({"path": [paths[e] for e in ex], "journeys": top["journeys"].astype("int64").to_numpy()})
        out["share"] = out["journeys"] / n_journeys
        return out

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
        from keymoments.cli.common import print_table

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
        tr = self.transitions_.head(20).assign(median_gap=lambda d: [_human_s(x) for x in d["median_gap_s"]])
        print_table(tr.drop(columns=["median_gap_s"]), title="Top transitions (directly follows)")
        if len(self.variants_):
            print_table(self.variants_, title="Most common paths")
        print_table(self.drop_offs_, title="Where journeys end")

    def _repr_html_(self) -> str:
        if not self.fitted:
            return super()._repr_html_()
        fmt = "{:.3f}".format
        return (
            f"<h4>Journey map ({self.n_journeys_} journeys, overall valence {self.overall_valence_:+.3f})</h4>"
            + self.summary.to_html(index=False, float_format=fmt)
            + "<h5>Transitions</h5>"
            + self.transitions_.head(20).to_html(index=False, float_format=fmt)
        )

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
            "rule": (
                f"pit: {int(self.level * 100)}% CI entirely below the overall valence and mean at least "
                f"{self.margin} below it; peak: the mirror image; touchpoints with fewer than {self.min_rated} "
                "rated events are neutral"
            ),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import journey_map_figure

        self._check_fitted()
        return journey_map_figure(self.touchpoints_, self.overall_valence_)
