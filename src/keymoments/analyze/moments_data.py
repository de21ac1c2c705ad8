"""The data a :class:`~keymoments.analyze.moments.MomentsOfTruth` model is fitted on, from any input.

A Store, a long events frame (one row per event) or a wide frame (one row per respondent, one column per
touchpoint) becomes one row per unit (customer, or journey when the outcome is keyed by journey): the mean
valence of the unit's events at each touchpoint (NaN = not met), the outcome, the controls (customer
attributes), the share of units that met each touchpoint and the per-touchpoint statistics the
characteristics are inferred from (:mod:`keymoments.analyze.characteristics`). Nothing is modelled here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keymoments.analyze.sample import FitSample, fit_limit, stratified_sample
from keymoments.events import RATING_SCALES, JourneyModel, did_you_mean
from keymoments.exceptions import InvalidParameterError, KeymomentsWarning, NotEnoughDataError, NotFoundError

if TYPE_CHECKING:
    from keymoments.analyze.moments import MomentsOfTruth

__all__ = ["MONEY_WORDS", "Prepared", "is_money", "prepare"]

#: Outcome names that hold money (their priority is money already; one of them values a retained customer).
MONEY_WORDS = ("spend", "revenue", "value", "sales", "clv", "ltv", "charges", "amount")
_ID_COLUMNS = ("customer_id", "journey_id", "respondent_id", "id")


def is_money(name: str) -> bool:
    return any(w in name.lower() for w in MONEY_WORDS)


@dataclass
class Prepared:
    valence: pd.DataFrame  # units x touchpoints, NaN = not experienced (or not rated)
    y: np.ndarray
    controls: pd.DataFrame | None
    reach: pd.Series  # share of units that met each touchpoint
    stats: pd.DataFrame  # per touchpoint: first_share, last_share, value_share, crisis_rate, recovery_rate
    order: list[str]
    n_dropped: int
    dtype: str = "numeric"
    value_per_customer: float | None = None
    time_ordered: bool = True  # False: the journeys' events share one timestamp (a survey)
    mode: str = (
        "valence"  # "presence": no valence; ``valence`` then holds presence / value / milestone features
    )


def _not_found(what: str, name: str, known: list[str], hint: str = "") -> NotFoundError:
    return NotFoundError(
        f"{what} {name!r} is not in the data; known: {sorted(known)}.{did_you_mean(name, known)}{hint}"
    )


def prepare(
    mot: MomentsOfTruth,
    data: Any,
    journey: JourneyModel | None,
    outcomes: pd.DataFrame | None,
    attributes: pd.DataFrame | None,
) -> Prepared:
    from keymoments.store.store import Store

    if isinstance(data, Store):
        return _from_store(mot, data, journey)
    if isinstance(data, pd.DataFrame):
        if "touchpoint" in data.columns and ("valence" in data.columns or "rating" in data.columns):
            return _from_long(mot, data, journey, outcomes, attributes)
        return _from_wide(mot, data, journey)
    raise InvalidParameterError(
        f"MomentsOfTruth.fit takes a Store or a pandas DataFrame (wide: one row per respondent; long: customer_id, "
        f"touchpoint, valence). Got {type(data).__name__!r} instead."
    )


def _outcome_values(s: pd.Series, name: str) -> tuple[np.ndarray, str]:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64").to_numpy(), "bool"
    num = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & num.isna()
    if bad.any():
        raise InvalidParameterError(
            f"Outcome {name!r} must be numeric or boolean; {int(bad.sum())} value(s) are not, e.g. {s[bad].iloc[0]!r}. "
            "Map it first, e.g. df[col].map({'Yes': 1, 'No': 0})."
        )
    return num.to_numpy(dtype=float), "numeric"


def _select_controls(mot: MomentsOfTruth, attrs: pd.DataFrame | None, key: str) -> pd.DataFrame | None:
    if attrs is None or attrs.empty:
        if mot.controls:
            raise _not_found("Control", mot.controls[0], [], " No customer attributes were found.")
        return None
    marker = ["_by_customer"] if "_by_customer" in attrs.columns else []
    cols = [c for c in attrs.columns if c != key and c not in marker]
    if mot.controls is not None:
        for c in mot.controls:
            if c not in cols:
                raise _not_found("Control", c, cols)
        cols = list(mot.controls)
    return attrs[[key, *cols, *marker]]


def _finish(
    mot: MomentsOfTruth,
    wide: pd.DataFrame,
    key: str,
    tps: list[str],
    counts: pd.DataFrame | None,
    ydf: pd.DataFrame,
    controls: pd.DataFrame | None,
    stats: pd.DataFrame,
    order: list[str],
    dtype: str,
    value_per_customer: float | None = None,
) -> Prepared:
    """Join experiences, outcome and controls on the unit key; drop units without outcome or experience.

    Only the keys are sorted and joined; the experiences are gathered once, by position, from ``wide`` (no copy
    of the whole frame per step: at millions of units each copy is most of the driver's memory)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # rows in key order: a GROUP BY returns them in any order, and the seeded bootstrap and CV folds must not
    # depend on it (same data, same answer); Arrow sorts the strings without making Python objects of them
    # (by UTF-8 bytes, which is code-point order, as Python sorts them)
    keys = wide[key].astype(str)
    by_key = np.asarray(pc.sort_indices(pa.array(keys)))
    pairs = pd.DataFrame({key: keys.iloc[by_key].reset_index(drop=True), "_pos": by_key})
    df = pairs.merge(ydf[[key, mot.outcome]], on=key, how="inner")  # the left order: by key
    del pairs
    rows = df["_pos"].to_numpy()
    y, dt = _outcome_values(df[mot.outcome], mot.outcome)
    values = wide[tps].to_numpy(dtype="float64")[rows]
    met_rows = counts.to_numpy()[rows] > 0 if counts is not None else ~np.isnan(values)
    keep = ~np.isnan(y) & ~np.isnan(values).all(axis=1)
    n_dropped = int(len(wide) + len(ydf) - 2 * len(df) + (~keep).sum())
    V = pd.DataFrame(values[keep], columns=tps)
    del values
    y, met = y[keep], pd.DataFrame(met_rows[keep], columns=tps)
    C = None
    if controls is not None:
        C = df.loc[keep, [key]].merge(controls, on=key, how="left").drop(columns=[key]).reset_index(drop=True)
    return Prepared(
        V,
        y,
        C,
        met.mean().reindex(tps),
        stats,
        order,
        n_dropped,
        "bool" if dtype == "bool" else dt,
        value_per_customer,
    )


def _from_store(mot: MomentsOfTruth, store: Any, journey: JourneyModel | None) -> Prepared:
    defs = store.outcome_names()
    if not defs:
        from keymoments.analyze.base import no_outcomes

        raise no_outcomes(getattr(mot, "_owner", None) or type(mot).__name__, mot.outcome)
    if mot.outcome not in defs:
        raise _not_found(
            "Outcome", mot.outcome, list(defs), " Load outcomes with `keymoments ingest-outcomes`."
        )
    key, dtype = defs[mot.outcome]
    owner = getattr(mot, "_owner", None) or type(mot).__name__
    sample = stratified_sample(store, key, mot.outcome, fit_limit(getattr(mot, "max_fit_customers", None), owner),
                               mot.seed)  # fmt: skip
    if sample is not None:  # only the drawn units' outcomes and experiences reach the driver
        warnings.warn(sample.warning, KeymomentsWarning, stacklevel=2)
    ydf = store.outcomes_wide([mot.outcome], key_kind=key) if sample is None else sample.frame
    drawn = None if sample is None else list(sample.keys)
    vpc = None
    if dtype == "bool" or set(pd.unique(ydf[mot.outcome].dropna())) <= {0.0, 1.0}:
        money = [
            n for n, (k, d) in defs.items() if k == key and d != "bool" and is_money(n) and n != mot.outcome
        ]
        if money:
            both = store.outcomes_wide([mot.outcome, money[0]], key_kind=key, keys=drawn)
            kept = both.loc[both[mot.outcome] == 1, money[0]].dropna()
            vpc = float(kept.mean()) if len(kept) else None
    attrs = store.attributes_wide(key, keys=drawn)
    if key == "journey_id" and len(attrs.columns) <= 1:  # journeys inherit their customer's attributes
        attrs = store.attributes_wide("customer_id")
        if len(attrs.columns) > 1:
            attrs = attrs.rename(columns={"customer_id": "journey_id"}).assign(_by_customer=True)
    return _from_events(
        mot,
        store,
        journey,
        key,
        ydf,
        _select_controls(mot, attrs, key),
        "bool" if dtype == "bool" else "numeric",
        vpc,
        sample,
    )


def _from_events(
    mot: MomentsOfTruth,
    data: Any,
    journey: JourneyModel | None,
    key: str,
    ydf: pd.DataFrame,
    controls: pd.DataFrame | None,
    dtype: str,
    vpc: float | None = None,
    sample: FitSample | None = None,
) -> Prepared:
    """Experiences per unit from an events table (Store or long frame with ts), aggregated by Ibis (over the
    units of ``sample`` only, when the fit is drawn on one)."""
    from keymoments.analyze.order import journey_key, journey_order, no_touchpoints, time_order

    t = mot._events(data)
    t = t.filter(t.touchpoint.notnull() & (t.touchpoint != ""))
    timed = time_order(data).ordered
    order = journey_order(t, journey, time_ordered=timed)
    present = set(t.select("touchpoint").distinct().execute()["touchpoint"])
    tps = [tp for tp in order if tp in present]
    if not tps:
        raise no_touchpoints(data, f"relate to {mot.outcome!r}", filtered=bool(mot.filters))
    units = (
        t if sample is None else sample.restrict(t, journey_key(t) if key == "journey_id" else t.customer_id)
    )
    if "valence" in t.columns and "rating_valence" in t.columns:
        val = units.valence.fill_null(units.rating_valence)
    else:
        val = units.valence if "valence" in t.columns else units.rating_valence
    kexpr = journey_key(units) if key == "journey_id" else units.customer_id
    aggs: dict[str, Any] = {}
    has_value = "value" in t.columns
    # per touchpoint: the mean valence and whether the unit met it (a bool: only that is used); the money spent
    # there is fetched only where no valence is (presence mode, below): a row per unit is what reaches the driver
    for i, tp in enumerate(tps):
        aggs[f"v{i}"] = val.mean(where=units.touchpoint == tp)
        aggs[f"c{i}"] = (units.touchpoint == tp).any()
    by_customer = controls is not None and "_by_customer" in controls.columns
    if by_customer:
        aggs["_cust"] = units.customer_id.cast("string").min()
    raw = units.group_by(_k=kexpr.cast("string")).aggregate(**aggs).execute()
    wide = raw[["_k"]].rename(columns={"_k": key})
    if by_customer:  # controls keyed by customer -> keyed by each of the customer's journeys
        cust = controls.drop(columns="_by_customer").rename(columns={key: "_cust"})
        controls = (
            raw[["_k", "_cust"]]
            .rename(columns={"_k": key})
            .merge(cust, on="_cust", how="left")
            .drop(columns="_cust")
        )
    # copies: a view would keep the engine's whole frame alive through the fit (``del raw`` below)
    wide[tps] = raw[[f"v{i}" for i in range(len(tps))]].to_numpy(dtype=float, copy=True)
    counts = pd.DataFrame(raw[[f"c{i}" for i in range(len(tps))]].to_numpy(dtype=bool), columns=tps)
    del raw  # the engine's frame (a row per unit, two columns per touchpoint): not held through the fit
    spent = None
    if has_value and wide[tps].isna().all().all():  # presence mode: the money spent at each touchpoint
        paid = {f"s{i}": units.value.sum(where=(units.touchpoint == tp) & (units.value > 0)) for i, tp in enumerate(tps)}
        sraw = units.group_by(_k=kexpr.cast("string")).aggregate(**paid).execute()
        sraw = sraw.set_index(sraw["_k"].astype(str)).reindex(wide[key].astype(str))  # the first frame's order
        spent = pd.DataFrame(sraw[list(paid)].to_numpy(dtype=float), columns=tps).fillna(0.0)
        del sraw
    ydf = ydf.assign(**{key: ydf[key].astype(str)})
    stats = _event_stats(t, journey, journey_key(t))
    if wide[tps].isna().all().all():  # no valence anywhere: what presence, money and milestones say instead
        features = presence_features(wide[[key]], counts, spent, _milestone_features(data, t, key, wide[key]))
        prep = _finish(
            mot, features, key, list(features.columns[1:]), None, ydf, controls, stats, order, dtype, vpc
        )
        prep.mode = "presence"
        prep.reach = (prep.valence > 0).mean()
        prep.time_ordered = timed
        return prep
    prep = _finish(mot, wide, key, tps, counts, ydf, controls, stats, order, dtype, vpc)
    prep.time_ordered = timed
    return prep


#: a presence-mode feature's name says what it is: the touchpoint met, the money spent there, a milestone crossed
MET, SPENT, CROSSED = "met: ", "spent at: ", "crossed: "


def presence_features(
    units: pd.DataFrame, counts: pd.DataFrame, spent: pd.DataFrame | None, milestones: pd.DataFrame | None
) -> pd.DataFrame:
    """Per unit, what data without valence supports as predictors: each touchpoint met (0/1), the money spent
    there (log2(1 + amount): the impact is per doubling), and each repeat milestone crossed (0/1). Columns that
    do not vary are left to the model's design to drop."""
    out = units.reset_index(drop=True).copy()
    for tp in counts.columns:
        out[f"{MET}{tp}"] = (counts[tp].to_numpy() > 0).astype(float)
        if spent is not None and (spent[tp] > 0).any():
            out[f"{SPENT}{tp}"] = np.log2(1.0 + spent[tp].to_numpy(dtype=float))
    if milestones is not None:
        for m in milestones.columns:
            out[f"{CROSSED}{m}"] = milestones[m].to_numpy(dtype=float)
    return out


def _milestone_features(data: Any, t: Any, key: str, units: pd.Series) -> pd.DataFrame | None:
    """Per customer (in ``units`` order), the repeat milestones crossed: the 2nd, 3rd, 5th… journey or purchase."""
    from keymoments.analyze.milestones import milestone_crossings

    if key != "customer_id":
        return None
    cr = milestone_crossings(data, years=(), spend_thresholds=(), events=t)
    cr = cr[(cr["kind"] == "count") & ~cr["milestone"].isin(["journey_1"])]
    if cr.empty:
        return None
    ids = units.astype(str).to_numpy()
    cols = {}
    for m, g in cr.groupby("milestone", sort=False):
        cols[str(m)] = np.isin(ids, g["customer_id"].astype(str).to_numpy()).astype(float)
    order = sorted(cols, key=lambda m: (m.rsplit("_", 1)[0], int(m.rsplit("_", 1)[1])))
    return pd.DataFrame({m: cols[m] for m in order})


def _event_stats(t: Any, journey: JourneyModel | None, jk: Any) -> pd.DataFrame:
    """Per touchpoint: opening / closing shares, money share, crisis rate and recovery rate."""
    jm = journey or JourneyModel()
    f64 = "float64"
    aggs: dict[str, Any] = {
        "events": t.count(),
        "first_share": (t.step == 1).cast(f64).mean(),
        "last_share": t.is_last.cast(f64).mean(),
    }
    if "value" in t.columns:
        aggs["value_share"] = (t.value > 0).fill_null(False).cast(f64).mean()
        aggs["_has_value"] = t.value.notnull().cast(f64).mean()
    has_outcome = "outcome" in t.columns
    if has_outcome:
        crisis = t.outcome.lower().isin(jm.crisis_outcomes).fill_null(False)
        aggs["crisis_rate"] = crisis.cast(f64).mean()
        aggs["_has_outcome"] = t.outcome.notnull().cast(f64).mean()
    stats = t.group_by("touchpoint").aggregate(**aggs).execute().set_index("touchpoint")
    # a column the data never fills says nothing: leave the characteristic "not inferable"
    for flag, cols in (("_has_value", ["value_share"]), ("_has_outcome", ["crisis_rate"])):
        if flag in stats.columns:
            if not (stats[flag] > 0).any():
                stats = stats.drop(columns=cols)
            stats = stats.drop(columns=flag)
    has_outcome = "crisis_rate" in stats.columns
    if has_outcome and stats["crisis_rate"].fillna(0).gt(0).any():
        t2 = t.mutate(_j=jk)
        res = t2.filter(t2.outcome.lower().isin(jm.resolved_outcomes).fill_null(False))
        res = res.group_by("_j").aggregate(last_resolved=res.step.max())
        c = t2.filter(t2.outcome.lower().isin(jm.crisis_outcomes).fill_null(False)).select(
            "_j", "touchpoint", "step"
        )
        j = c.left_join(res, "_j")
        rec = j.group_by("touchpoint").aggregate(
            crises=j.count(), recovered=(j.last_resolved > j.step).fill_null(False).cast("int64").sum()
        )
        r = rec.execute().set_index("touchpoint")
        stats["crises"] = r["crises"].reindex(stats.index).fillna(0)
        stats["recovery_rate"] = (r["recovered"] / r["crises"]).reindex(stats.index)
    return stats


def _from_long(
    mot: MomentsOfTruth,
    df: pd.DataFrame,
    journey: JourneyModel | None,
    outcomes: pd.DataFrame | None,
    attributes: pd.DataFrame | None,
) -> Prepared:
    key = next(
        (
            c
            for c in ("journey_id", "customer_id")
            if c in df.columns and (outcomes is None or c in outcomes.columns)
        ),
        None,
    )
    if key is None:
        raise InvalidParameterError(
            "A long frame needs a customer_id (or journey_id) column, one row per event."
        )
    src = outcomes if outcomes is not None else df
    if mot.outcome not in src.columns:
        raise _not_found(
            "Outcome", mot.outcome, [c for c in src.columns if c not in ("touchpoint", "valence", key)]
        )
    ydf = src[[key, mot.outcome]].drop_duplicates(subset=[key]).astype({key: str})
    if "valence" not in df.columns:
        df = df.assign(valence=_ratings_to_valence(df, mot.scale))
    if attributes is not None:
        attrs = attributes.astype({key: str})
    elif mot.controls:
        attrs = df[[key, *mot.controls]].drop_duplicates(subset=[key]).astype({key: str})
    else:
        attrs = None
    controls = _select_controls(mot, attrs, key)
    dtype = "bool" if pd.api.types.is_bool_dtype(ydf[mot.outcome]) else "numeric"
    if "ts" in df.columns and "customer_id" in df.columns:
        keep = {
            "valence",
            str(mot.segment or "").partition("=")[0].strip(),
        }  # the segment filter may name a control
        ev = df.drop(
            columns=[c for c in (mot.outcome, *(mot.controls or [])) if c in df.columns and c not in keep]
        )
        return _from_events(mot, ev, journey, key, ydf, controls, dtype)
    d = mot._rows(df)[[key, "touchpoint", "valence"]].astype({key: str})
    d = d[d["touchpoint"].notna() & (d["touchpoint"] != "")]
    seen = list(dict.fromkeys(d["touchpoint"]))
    order = (journey.order if journey else []) + [tp for tp in seen if not journey or tp not in journey.order]
    tps = [tp for tp in order if tp in set(seen)]
    wide = d.pivot_table(index=key, columns="touchpoint", values="valence", aggfunc="mean", dropna=False)
    wide = wide.reindex(columns=tps).reset_index()
    counts = (
        d.groupby([key, "touchpoint"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=wide[key], columns=tps, fill_value=0)
    )
    return _finish(
        mot, wide, key, tps, counts.reset_index(drop=True), ydf, controls, pd.DataFrame(), order, dtype
    )


def _ratings_to_valence(df: pd.DataFrame, scale: str | None) -> pd.Series:
    if "rating_scale" in df.columns:
        scales = df["rating_scale"].fillna(scale) if scale else df["rating_scale"]
    elif scale:
        scales = pd.Series(scale, index=df.index)
    else:
        raise InvalidParameterError(
            "A long frame with 'rating' but no 'valence' needs a 'rating_scale' column or scale=..."
        )
    out = pd.Series(np.nan, index=df.index)
    r = pd.to_numeric(df["rating"], errors="coerce")
    for name in pd.unique(scales.dropna()):
        sc = RATING_SCALES.get(name)
        if sc is None:
            raise InvalidParameterError(
                f"Unknown rating_scale {name!r}; use one of {sorted(RATING_SCALES)}.{did_you_mean(name, RATING_SCALES)}"
            )
        m = (scales == name) & r.between(sc.low, sc.high)
        out[m] = _scale(r[m].to_numpy(float), name)
    return out


def _scale(v: np.ndarray, scale: str) -> np.ndarray:
    sc = RATING_SCALES[scale]
    out = 2.0 * (v - sc.low) / (sc.high - sc.low) - 1.0
    return -out if sc.inverted else out


def _wide_columns(df: pd.DataFrame, given: Any, what: str, default: list[Any]) -> list[Any]:
    """The columns the caller named (each checked to be in the frame), else ``default``."""
    if given is None:
        return default
    for c in given:
        if c not in df.columns:
            raise _not_found(what, c, [str(x) for x in df.columns])
    return list(given)


def _from_wide(mot: MomentsOfTruth, df: pd.DataFrame, journey: JourneyModel | None) -> Prepared:
    if mot.outcome not in df.columns:
        raise _not_found("Outcome", mot.outcome, [str(c) for c in df.columns])
    key = next((c for c in _ID_COLUMNS if c in df.columns), None)
    df = mot._rows(df).reset_index(drop=True)
    if key is None:
        key = "_row"
        df = df.assign(_row=np.arange(len(df)).astype(str))
    else:
        df = df.astype({key: str})

    def kind(c: Any) -> str:
        t = df[c]
        return (
            "bool"
            if pd.api.types.is_bool_dtype(t)
            else "number"
            if pd.api.types.is_numeric_dtype(t)
            else "text"
        )

    # controls: the text columns unless named; touchpoints: the numeric columns left unless named (yes/no
    # columns are neither)
    ctrl = _wide_columns(
        df,
        mot.controls,
        "Control",
        [c for c in df.columns if c not in (key, mot.outcome) and kind(c) == "text"],
    )
    others = [c for c in df.columns if c not in (key, mot.outcome, *ctrl) and kind(c) == "number"]
    tps = _wide_columns(df, mot.touchpoints, "Touchpoint column", others)
    if not tps:
        raise NotEnoughDataError("The wide frame has no numeric touchpoint columns; pass touchpoints=[...].")
    V = df[tps].apply(pd.to_numeric, errors="coerce").astype("float64")
    scale = mot.scale
    lo, hi = np.nanmin(V.to_numpy()), np.nanmax(V.to_numpy())
    if scale is None and (lo < -1 or hi > 1):
        scale = next(
            (
                s
                for s in ("csat5", "score10", "nps")
                if RATING_SCALES[s].low <= lo and hi <= RATING_SCALES[s].high
            ),
            None,
        )
        if scale is None:
            raise InvalidParameterError(
                f"The touchpoint cells range over [{lo:g}, {hi:g}], which is neither valence [-1, 1] nor a known rating "
                f"scale; pass scale= one of {sorted(RATING_SCALES)} (and blank out 'not applicable' codes)."
            )
        warnings.warn(
            f"The touchpoint cells range over [{lo:g}, {hi:g}]; read as ratings on the {scale!r} scale "
            f"({RATING_SCALES[scale].description}). Pass scale=... to say so.",
            KeymomentsWarning,
            stacklevel=4,
        )
    if scale is not None:
        sc = RATING_SCALES[scale]
        out = (V < sc.low) | (V > sc.high)
        if out.to_numpy().any():
            warnings.warn(
                f"{int(out.to_numpy().sum())} cells lie outside the {scale!r} scale [{sc.low:g}, {sc.high:g}] and are treated as not experienced.",
                KeymomentsWarning,
                stacklevel=4,
            )
        V = V.mask(out)
        V = pd.DataFrame(_scale(V.to_numpy(), scale), columns=tps)
    wide = pd.concat([df[[key]], V], axis=1)
    ydf = df[[key, mot.outcome]]
    controls = df[[key, *ctrl]] if ctrl else None
    order = [tp for tp in (journey.order if journey else []) if tp in tps]
    order += [tp for tp in tps if tp not in order]
    dtype = "bool" if pd.api.types.is_bool_dtype(df[mot.outcome]) else "numeric"
    return _finish(
        mot,
        wide,
        key,
        order,
        None,
        ydf,
        controls,
        pd.DataFrame(index=pd.Index([], name="touchpoint")),
        order,
        dtype,
    )
