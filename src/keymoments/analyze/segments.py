"""Segments and the middle: customers in valence tiers, and the value of elevating the middle.

Each customer's valence is the mean of their rated events (one Ibis group-by), shrunk toward the overall mean
by empirical Bayes (customers with few ratings move most; the noise is the spread of their valence around each
touchpoint's mean), so that noise does not decide the tier. Tiers, by default:
**unhappy** below -0.05 (net negative, with a small neutral band), **middling** from -0.05 to 0.30,
**happy** at 0.30 and above (about 3.6 on a 5-point scale); pass ``thresholds`` to change them.

Per tier: customers, spend (mean with t CI), and the rate of each yes/no outcome (Wilson CI). The what-if the
Heaths quote from Forrester: moving ``share`` of the middling tier up to happy gains
``share * n_middling * (spend_happy - spend_middling)``; moving ``share`` of the unhappy up to middling gains
``share * n_unhappy * (spend_middling - spend_unhappy)``; both from the tiers' observed spend, with a
bootstrap CI over customers, and their ratio (Forrester's figure was nearly 9x).

Spend is the ``spend`` outcome when given, else the first numeric outcome whose name contains "spend",
"revenue" or "value", else the money customers paid in events (the sum of positive ``value``).

**Filters** (``segment``, ``channel``, ``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow the
events a customer's valence (and the money paid in events) is measured on: with ``channel="web"`` the tiers are
how customers feel on the web. Outcomes (spend, retention) are per customer and not filtered by date, but
customers with no rated event left drop out of every tier.
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, check_choice, mean_ci, proportion_ci, warn_small_sample
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError

__all__ = ["TIERS", "Segments", "customer_valence", "shrink"]

TIERS = ("unhappy", "middling", "happy")


def customer_valence(data: Any) -> pd.DataFrame:
    """Per customer: rated events, mean valence, money paid (sum of positive value)."""
    t = events_table(data)
    if "valence" not in t.columns:
        raise NotEnoughDataError("The events have no valence; score them first (ratings or text).")
    paid = (t.value.clip(lower=0) if "value" in t.columns else t.valence * 0).fill_null(0)
    tpm = t.group_by("touchpoint").aggregate(_tpm=t.valence.mean())
    t = t.left_join(tpm, "touchpoint")
    res = t.valence - t._tpm
    df = t.group_by("customer_id").aggregate(
        rated=t.valence.count(), raw_valence=t.valence.mean(), var=res.var(how="sample"), paid=paid.sum()
    ).execute()
    df = df.sort_values("customer_id", kind="stable").reset_index(drop=True)  # seeded bootstraps need one order
    df["paid"] = pd.to_numeric(df["paid"]).astype(float)
    df["valence"] = shrink(df["raw_valence"].to_numpy(float), df["rated"].to_numpy(float), df["var"].to_numpy(float))
    return df


def shrink(means: np.ndarray, n: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Empirical-Bayes shrinkage of per-unit means toward the grand mean: ``(n*m + k*grand) / (n + k)`` with
    ``k = within-unit variance / between-unit variance`` (method of moments), so a customer with two ratings is
    not placed in a tier by chance. ``var`` is each unit's within variance (for customers: of the valence
    around each touchpoint's mean, so the pits and peaks of the journey are not counted as noise)."""
    ok = (n > 0) & np.isfinite(means)
    if ok.sum() < 3:
        return means
    w = ok & (n > 1) & np.isfinite(var)
    s2_within = float(np.average(var[w], weights=n[w] - 1)) if w.any() else 0.0
    grand = float(np.average(means[ok], weights=n[ok]))
    tau2 = float(np.var(means[ok], ddof=1) - np.mean(s2_within / n[ok]))
    if tau2 <= 0:
        return np.where(ok, grand, means)
    k = s2_within / tau2
    return np.where(ok, (n * means + k * grand) / (n + k), means)


class Segments(EventFilters, Analysis):
    """Valence tiers with spend and outcome rates, and the middle-versus-unhappy what-if.

    ``segment``, ``channel``, ``since``, ``until`` narrow the events valence is measured on (module docstring)."""

    title = "Segments and the middle"

    def __init__(
        self,
        *,
        spend: str | None = None,
        share: float = 0.1,
        thresholds: tuple[float, float] = (-0.05, 0.30),
        n_boot: int = 500,
        level: float = 0.95,
        seed: int = 0,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.spend = spend
        self.share = share
        self.thresholds = thresholds
        self.n_boot = n_boot
        self.level = level
        self.seed = seed
        self._set_filters(filters)

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> Segments:
        from keymoments.store.store import Store

        lo_t, hi_t = self.thresholds
        if not (-1 <= lo_t < hi_t <= 1):
            raise InvalidParameterError(
                f"The 'thresholds' parameter of Segments must be two increasing valences in [-1, 1]. Got {self.thresholds!r} instead."
            )
        if not (0 < self.share <= 1):
            raise InvalidParameterError(f"The 'share' parameter of Segments must be in (0, 1]. Got {self.share!r} instead.")
        cv = customer_valence(self._events(data))
        cv = cv[cv["rated"] > 0].copy()
        cv["customer_id"] = cv["customer_id"].astype(str)
        if outcomes is None and isinstance(data, Store):
            defs = {n: d for n, (k, d) in data.outcome_names().items() if k == "customer_id"}
            outcomes = data.outcomes_wide(list(defs), key_kind="customer_id") if defs else None
            bools = [n for n, d in defs.items() if d == "bool"]
            numeric = [n for n, d in defs.items() if d == "numeric"]
        elif outcomes is not None:
            outcomes = outcomes.copy()
            cols = [c for c in outcomes.columns if c != "customer_id"]
            bools = [c for c in cols if pd.api.types.is_bool_dtype(outcomes[c]) or set(pd.unique(outcomes[c].dropna())) <= {0, 1}]
            numeric = [c for c in cols if c not in bools and pd.api.types.is_numeric_dtype(outcomes[c])]
        else:
            bools, numeric = [], []
        if self.spend is not None:
            check_choice("Segments", "spend", self.spend, numeric or ["(no numeric outcomes)"])
            spend_col = self.spend
        else:
            spend_col = next((n for n in numeric if any(w in n.lower() for w in ("spend", "revenue", "value"))), None)
        df = cv
        if outcomes is not None:
            outcomes["customer_id"] = outcomes["customer_id"].astype(str)
            df = cv.merge(outcomes, on="customer_id", how="left")
        if spend_col is None:
            spend_col = "paid"
        df["tier"] = np.select([df["valence"] < lo_t, df["valence"] < hi_t], ["unhappy", "middling"], "happy")
        if df.empty:
            raise NotEnoughDataError(
                "No customer has a rated event"
                + ("; loosen the filters." if self.filters else "; score the events first.")
            )
        rows = []
        for tier in TIERS:
            d = df[df["tier"] == tier]
            n = len(d)
            warn_small_sample(f"The {tier!r} tier", n)
            m, lo, hi, _ = mean_ci(d[spend_col].to_numpy(dtype=float), self.level)
            row: dict[str, Any] = {"tier": tier, "customers": n, "share": n / len(df),
                                   "mean_valence": float(d["valence"].mean()) if n else np.nan,
                                   "mean_spend": m, "spend_ci_low": lo, "spend_ci_high": hi}  # fmt: skip
            for b in bools:
                y = d[b].dropna().to_numpy(dtype=float)
                p, plo, phi = proportion_ci(int(y.sum()), len(y), self.level)
                row[f"{b}_rate"], row[f"{b}_ci_low"], row[f"{b}_ci_high"] = p, plo, phi
            rows.append(row)
        tiers = pd.DataFrame(rows)
        self.tiers_ = tiers
        self.spend_column_ = spend_col
        self.outcomes_ = bools
        self.whatif_ = self._whatif(df, spend_col)
        return self

    def _whatif(self, df: pd.DataFrame, spend_col: str) -> dict[str, Any]:
        spend = {t: df.loc[df["tier"] == t, spend_col].to_numpy(dtype=float) for t in TIERS}
        spend = {t: s[~np.isnan(s)] for t, s in spend.items()}
        n = {t: int((df["tier"] == t).sum()) for t in TIERS}

        def gains(s: dict[str, np.ndarray]) -> tuple[float, float]:
            mu = {t: s[t].mean() if len(s[t]) else np.nan for t in TIERS}
            return (self.share * n["middling"] * (mu["happy"] - mu["middling"]),
                    self.share * n["unhappy"] * (mu["middling"] - mu["unhappy"]))  # fmt: skip

        g_mid, g_low = gains(spend)
        rng = np.random.default_rng(self.seed)
        bm, bl = [], []
        if all(len(spend[t]) >= 2 for t in TIERS):
            for _ in range(self.n_boot):
                s = {t: v[rng.integers(0, len(v), len(v))] for t, v in spend.items()}
                a, b = gains(s)
                bm.append(a)
                bl.append(b)
        a = (1 - self.level) / 2

        def ci(x: list[float]) -> tuple[float, float]:
            return (float(np.quantile(x, a)), float(np.quantile(x, 1 - a))) if x else (np.nan, np.nan)

        ratios = [m / lo for m, lo in zip(bm, bl, strict=True) if lo > 0]
        return {
            "share_moved": self.share,
            "middle_up": {"gain": g_mid, "ci_low": ci(bm)[0], "ci_high": ci(bm)[1], "customers_moved": self.share * n["middling"]},
            "unhappy_up": {"gain": g_low, "ci_low": ci(bl)[0], "ci_high": ci(bl)[1], "customers_moved": self.share * n["unhappy"]},
            "ratio": g_mid / g_low if g_low and g_low > 0 else None,
            "ratio_ci_low": ci(ratios)[0] if len(ratios) > 0.9 * len(bm) and bm else None,
            "ratio_ci_high": ci(ratios)[1] if len(ratios) > 0.9 * len(bm) and bm else None,
        }

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.tiers_

    def print_summary(self) -> None:
        from keymoments.cli.common import print_table

        self._check_fitted()
        print_table(self.tiers_[["tier", "customers", "share", "mean_valence", "mean_spend", "spend_ci_low", "spend_ci_high"]],
                    title=f"Valence tiers (thresholds {self.thresholds}); spend = {self.spend_column_}")  # fmt: skip
        w = self.whatif_
        print(f"Moving {w['share_moved']:.0%} of the middle up one tier: {w['middle_up']['gain']:,.0f} "
              f"[{w['middle_up']['ci_low']:,.0f}, {w['middle_up']['ci_high']:,.0f}]; of the unhappy: "
              f"{w['unhappy_up']['gain']:,.0f} [{w['unhappy_up']['ci_low']:,.0f}, {w['unhappy_up']['ci_high']:,.0f}]; "
              f"ratio {w['ratio'] if w['ratio'] is None else round(w['ratio'], 2)}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "thresholds": {"unhappy_below": self.thresholds[0], "happy_from": self.thresholds[1]},
            "spend": self.spend_column_,
            "tiers": self.tiers_.to_dict(orient="records"),
            "whatif": self.whatif_,
            "ratio": self.whatif_["ratio"],
            "filters": self.filters,
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import segments_figure

        self._check_fitted()
        return segments_figure(self.tiers_)
