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
* the draw runs where the outcomes are, in SQL (the store's DuckDB file, whichever engine holds the events),
  and only the drawn units and their outcome reach the driver; the engine then aggregates only their events (a
  semi-join on the keys), so the experience frame that reaches the driver has at most ``limit`` rows.

The result says so in its ``warnings`` (:attr:`FitSample.warning`), and its intervals are the sample's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keymoments.exceptions import InvalidParameterError
from keymoments.quoting import quote_ident, quote_literal

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from keymoments.store.store import Store

__all__ = [
    "DEFAULT_MAX_FIT_CUSTOMERS",
    "CustomerShare",
    "FitSample",
    "customer_share",
    "fit_limit",
    "stratified_sample",
]

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
    """The units a fit is drawn on: ``frame`` (the key and the outcome of each), ``n`` of ``total``, and the
    strata's sizes (``strata``: stratum, total, sampled)."""

    frame: pd.DataFrame
    n: int
    total: int
    unit: str
    by: str
    strata: pd.DataFrame

    @property
    def keys(self) -> pd.Index:
        return pd.Index(self.frame.iloc[:, 0])

    @property
    def warning(self) -> str:
        return (
            f"fitted on a stratified sample of {self.n:,} of {self.total:,} {self.unit}s; the intervals are the "
            f"sample's (strata: {self.by}; the limit is max_fit_customers, or KM_MAX_FIT_CUSTOMERS)"
        )

    def restrict(self, t: ir.Table, key: Any) -> ir.Table:
        """The events ``t`` of the drawn units only (``key``: the unit's key expression on ``t``), a semi-join
        that runs in the engine holding the events."""
        import ibis

        drawn = ibis.memtable(pd.DataFrame({"_km_unit": self.keys.to_numpy(dtype=object)}))
        return t.filter(key.cast("string").isin(drawn._km_unit))


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
    source: Store | pd.DataFrame, key: str, outcome: str, limit: int, seed: int = 0
) -> FitSample | None:
    """The units to fit on, drawn where the outcomes are (the store's DuckDB file, whichever engine holds the
    events; or a frame of ``key`` and ``outcome``), or None when those with the outcome are at most ``limit``
    (the fit takes them all, unchanged). Only the drawn units and their outcome reach the caller.

    ``source`` a store: ``key`` is the outcome's key kind (``customer_id`` or ``journey_id``)."""
    import duckdb

    from keymoments.store.store import Store

    if isinstance(source, Store):
        rel = "SELECT key AS k, value AS y FROM outcomes WHERE key_kind = ? AND name = ?"
        params: list[Any] = [key, outcome]

        def run(sql: str) -> pd.DataFrame:
            return source.query(sql, params)
    else:
        con = duckdb.connect()
        con.register("km_units", source)
        rel, params = f"SELECT {quote_ident(key)} AS k, {quote_ident(outcome)} AS y FROM km_units", []

        def run(sql: str) -> pd.DataFrame:
            return con.execute(sql, params).df()

    units = f"(SELECT CAST(k AS VARCHAR) AS k, CAST(y AS DOUBLE) AS y FROM ({rel}) WHERE NOT isnan(CAST(y AS DOUBLE)))"
    head = run(f"SELECT count(*) AS n, count(DISTINCT y) AS v FROM {units} u")
    total, values = int(head["n"].iloc[0]), int(head["v"].iloc[0])
    if total <= limit:
        return None
    if values <= 2:
        stratum, by = "CAST(y AS VARCHAR)", "the outcome's values"
    else:
        stratum, by = (
            f"CAST((row_number() OVER (ORDER BY y, k) - 1) * {_DECILES} // {total} AS VARCHAR)",
            ("the outcome's deciles"),
        )
    strata = f"strata AS (SELECT k, y, {stratum} AS s FROM {units} u)"
    sizes = run(f"WITH {strata} SELECT s AS stratum, count(*) AS total FROM strata GROUP BY s ORDER BY s")
    quota = _allocate(sizes.set_index("stratum")["total"], limit)
    quotas = ", ".join(f"({quote_literal(s)}, {int(q)})" for s, q in quota.items())
    salt = quote_literal(f"km-sample:{int(seed)}:")
    drawn = run(
        f"WITH {strata}, quota(s, q) AS (VALUES {quotas}) "
        f"SELECT k AS {quote_ident(key)}, y AS {quote_ident(outcome)} FROM ("
        f"  SELECT k, y, s, row_number() OVER (PARTITION BY s ORDER BY hash({salt} || k), k) AS r FROM strata"
        f") JOIN quota USING (s) WHERE r <= q ORDER BY k"
    )
    table = sizes.assign(sampled=quota.to_numpy())
    unit = "journey" if key == "journey_id" else "customer"
    return FitSample(drawn, len(drawn), total, unit, by, table)


#: hex digits of the md5 a customer share compares (16^8 buckets: a share's precision is 2.3e-10)
_SHARE_DIGITS = 8


@dataclass(frozen=True)
class CustomerShare:
    """A seeded share of the customers, drawn in the engine that holds the events, for analyses whose frame has
    a row per customer but no single outcome to stratify on (segments, milestones).

    A customer is drawn when the first hex digits of ``md5("km-share:<seed>:" || customer_id)`` fall under
    ``threshold``: a Bernoulli draw with probability ``p``, the same customers on DuckDB and on Spark (both
    compute the same md5), and no customer key ever reaches the driver. ``total`` customers were there to draw
    from; :meth:`scale` turns the sample's counts into estimates for all of them."""

    seed: int
    p: float
    total: int

    @property
    def threshold(self) -> str:
        return f"{min(int(self.p * 16**_SHARE_DIGITS), 16**_SHARE_DIGITS - 1):0{_SHARE_DIGITS}x}"

    def restrict(self, t: ir.Table) -> ir.Table:
        """The events of ``t`` whose customer is drawn (a filter, evaluated in the engine)."""
        import ibis

        digest = (ibis.literal(f"km-share:{int(self.seed)}:") + t.customer_id.cast("string")).hexdigest("md5")
        return t.filter(digest.substr(0, _SHARE_DIGITS) < self.threshold)

    def drawn(self, keys: pd.Series) -> np.ndarray:
        """Which of ``keys`` (customer ids) the share draws: the engine's rule, in Python (for frames that are
        already on the driver, such as a store's outcomes)."""
        import hashlib

        salt, limit = f"km-share:{int(self.seed)}:", self.threshold
        return np.fromiter(
            (hashlib.md5((salt + str(k)).encode()).hexdigest()[:_SHARE_DIGITS] < limit for k in keys),
            dtype=bool,
            count=len(keys),
        )

    def scale(self, drawn: int) -> float:
        """Customers in all per customer drawn: ``total / drawn`` (the ratio estimator)."""
        return self.total / drawn if drawn else float("nan")

    def warning(self, drawn: int, what: str = "figures") -> str:
        return (
            f"computed on a seeded sample of {drawn:,} of {self.total:,} customers (each drawn with probability "
            f"{self.p:.3g}); the {what} are the sample's, counts of customers are scaled to all of them (x "
            f"{self.scale(drawn):.3g}), and the intervals are the sample's (the limit is max_fit_customers, or "
            "KM_MAX_FIT_CUSTOMERS)"
        )


def customer_share(t: ir.Table, limit: int, seed: int = 0) -> CustomerShare | None:
    """A share of about ``limit`` of the customers in the events ``t`` (see :class:`CustomerShare`), or None when
    they are at most ``limit`` (the analysis takes them all). One count of distinct customers runs in the engine."""
    total = int(t.customer_id.nunique().execute())
    if total <= limit:
        return None
    return CustomerShare(int(seed), limit / total, total)
