"""Fits on a stratified sample when the customer-level frame would be larger than a stated limit.

A statistical fit (moments of truth and the roadmap built on it, peak-end) needs one row per customer (or
journey) on the driver. Above :func:`fit_limit` units (default :data:`DEFAULT_MAX_FIT_CUSTOMERS`, setting
``KM_MAX_FIT_CUSTOMERS``, or an analysis's ``max_fit_customers``), the fit draws a stratified sample instead, the
same way on every engine:

* the strata are the outcome the fit explains: its values for a yes/no outcome, its deciles (by rank) for a
  numeric one; units without the outcome are not fitted anyway and are not counted;
* each stratum gets its share of the limit by largest remainder, so every stratum's size is within 1 of its
  proportional share and the sizes add up to the limit;
* within a stratum, the units with the smallest seeded hash of their key are drawn (the analysis's ``seed``):
  the same data and seed draw the same units, whatever order the engine returns them in;
* the engine then aggregates only the sampled units' events (a semi-join on the keys), so the experience frame
  that reaches the driver has at most ``limit`` rows.

The result says so in its ``warnings`` (:attr:`FitSample.warning`), and its intervals are the sample's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["DEFAULT_MAX_FIT_CUSTOMERS", "FitSample", "fit_limit", "stratified_sample"]

#: the most customers (or journeys) a fit takes whole (issue 18: 2M)
DEFAULT_MAX_FIT_CUSTOMERS = 2_000_000
_DECILES = 10


def fit_limit(value: int | None, owner: str = "the analysis") -> int:
    """The limit a fit uses: ``value`` when given, else the setting ``KM_MAX_FIT_CUSTOMERS``."""
    if value is None:
        from keymoments.config import Settings

        value = Settings().max_fit_customers
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidParameterError(
            f"The 'max_fit_customers' parameter of {owner} must be a whole number >= 1. Got {value!r} instead."
        )
    return int(value)


@dataclass(frozen=True)
class FitSample:
    """The units a fit is drawn on: ``keys`` (strings), ``n`` of ``total``, and the strata's sizes."""

    keys: pd.Index
    n: int
    total: int
    unit: str
    by: str
    strata: pd.DataFrame  # stratum, total, sampled

    @property
    def warning(self) -> str:
        return (
            f"fitted on a stratified sample of {self.n:,} of {self.total:,} {self.unit}s; the intervals are the "
            f"sample's (strata: {self.by}; the limit is max_fit_customers, or KM_MAX_FIT_CUSTOMERS)"
        )

    def take(self, frame: pd.DataFrame, key: str) -> pd.DataFrame:
        """The rows of ``frame`` whose ``key`` was drawn."""
        return frame[frame[key].astype(str).isin(self.keys)]

    def restrict(self, t: ir.Table, key: Any) -> ir.Table:
        """The events ``t`` of the drawn units only (``key``: the unit's key expression on ``t``), a semi-join
        that runs in the engine holding the events."""
        import ibis

        drawn = ibis.memtable(pd.DataFrame({"_km_unit": self.keys.to_numpy(dtype=object)}))
        return t.filter(key.cast("string").isin(drawn._km_unit))


def _strata(y: pd.Series) -> tuple[pd.Series, str]:
    """Each unit's stratum: the outcome's value (yes/no) or its decile by rank (numeric)."""
    values = set(pd.unique(y))
    if len(values) <= 2:
        return y.astype(float).map(lambda v: f"{v:g}"), "the outcome's values"
    ranks = y.rank(method="first").to_numpy()
    return pd.Series((ranks - 1) * _DECILES // len(y), index=y.index).astype(int).map(
        str
    ), "the outcome's deciles"


def _allocate(sizes: pd.Series, limit: int) -> pd.Series:
    """Largest-remainder allocation of ``limit`` over strata of ``sizes`` (ties to the earlier stratum)."""
    quota = sizes * limit / sizes.sum()
    n = np.floor(quota).astype(int)
    rest = int(limit - n.sum())
    if rest:
        order = (quota - n).sort_values(ascending=False, kind="stable").index[:rest]
        n[order] += 1
    return n


def stratified_sample(
    frame: pd.DataFrame, key: str, outcome: str, limit: int, seed: int = 0
) -> FitSample | None:
    """The units of ``frame`` (``key``, ``outcome``) to fit on, or None when those with the outcome are at most
    ``limit`` (the fit takes them all, unchanged)."""
    known = frame.loc[frame[outcome].notna(), [key, outcome]]
    if len(known) <= limit:
        return None
    keys = known[key].astype(str).reset_index(drop=True)
    stratum, by = _strata(known[outcome].reset_index(drop=True))
    salt = f"km{int(seed) % 10**14:014d}"  # 16 bytes: siphash's key
    h = pd.util.hash_pandas_object(keys, index=False, hash_key=salt).to_numpy()
    order = np.lexsort((keys.to_numpy(), h, stratum.to_numpy()))  # by stratum, then hash (then key: no ties)
    ranked = pd.DataFrame({"key": keys.to_numpy()[order], "stratum": stratum.to_numpy()[order]})
    sizes = ranked.groupby("stratum", sort=True).size()
    quota = _allocate(sizes, limit)
    drawn = ranked[
        ranked.groupby("stratum").cumcount().to_numpy() < quota.reindex(ranked["stratum"]).to_numpy()
    ]
    table = pd.DataFrame({"stratum": sizes.index, "total": sizes.to_numpy(), "sampled": quota.to_numpy()})
    unit = "journey" if key == "journey_id" else "customer"
    return FitSample(pd.Index(drawn["key"]), len(drawn), len(keys), unit, by, table)
