"""Segments and the middle: customers in valence tiers, and the value of elevating the middle.

Each customer's valence is the mean of their rated events (one Ibis group-by), shrunk toward the overall mean
by empirical Bayes (customers with few ratings move most; the noise is the spread of their valence around each
touchpoint's mean), so that noise does not decide the tier. Tiers, by default:
**unhappy** below -0.05 (net negative, with a small neutral band), **middling** from -0.05 to 0.30,
**happy** at 0.30 and above (about 3.6 on a 5-point scale); pass ``thresholds`` to change them.

Per tier: customers, spend (mean with t CI) when there is one, and the rate of each yes/no outcome (Wilson CI;
or only of ``outcome`` when it is named). The what-if the Heaths quote from Forrester: moving ``share`` of the
middling tier up to happy gains ``share * n_middling * (spend_happy - spend_middling)``; moving ``share`` of the
unhappy up to middling gains ``share * n_unhappy * (spend_middling - spend_unhappy)``; both from the tiers'
observed spend, with a bootstrap CI over customers, and their ratio (Forrester's figure was nearly 9x).

**Spend** is the outcome named ``spend`` (numeric, or yes/no: then the what-if counts customers, e.g. more
customers retained); else the first numeric outcome whose name contains "spend", "revenue" or "value"; else the
money customers paid in events (the sum of positive ``value``) when the events carry any. Without any of them
the what-if is on the yes/no ``outcome`` (named, else the first one) in customers, and without that there is no
what-if (``whatif_`` is None); no spend is ever made up.

**Filters** (``segment``, ``channel``, ``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow the
events a customer's valence (and the money paid in events) is measured on: with ``channel="web"`` the tiers are
how customers feel on the web. Outcomes (spend, retention) are per customer and not filtered by date, but
customers with no rated event left drop out of every tier.
"""

from __future__ import annotations

import warnings
from typing import Any, Unpack

import ibis
import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, check_choice, mean_ci, proportion_ci, warn_small_sample
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table
from keymoments.analyze.sample import customer_share, fit_limit
from keymoments.exceptions import InvalidParameterError, KeymomentsWarning, NotEnoughDataError

__all__ = ["TIERS", "Segments", "customer_valence", "shrink"]

TIERS = ("unhappy", "middling", "happy")


def customer_valence(data: Any) -> pd.DataFrame:
    """Per customer: rated events, mean valence, money paid (sum of positive value), whether any event paid."""
    t = events_table(data)
    if "valence" not in t.columns:
        raise NotEnoughDataError("The events have no valence; score them first (ratings or text).")
    has_value = "value" in t.columns
    paid = (t.value.clip(lower=0) if has_value else t.valence * 0).fill_null(0)
    tpm = t.group_by("touchpoint").aggregate(_tpm=t.valence.mean())
    t = t.left_join(tpm, "touchpoint")
    res = t.valence - t._tpm
    df = (
        t.group_by("customer_id")
        .aggregate(
            rated=t.valence.count(),
            raw_valence=t.valence.mean(),
            var=res.var(how="sample"),
            paid=paid.sum(),
            has_paid=(t.value > 0).fill_null(False).any() if has_value else ibis.literal(False),
        )
        .execute()
    )
    df = df.sort_values("customer_id", kind="stable").reset_index(
        drop=True
    )  # seeded bootstraps need one order
    df["paid"] = pd.to_numeric(df["paid"]).astype(float)
    df["valence"] = shrink(
        df["raw_valence"].to_numpy(float), df["rated"].to_numpy(float), df["var"].to_numpy(float)
    )
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

    ``spend``: the outcome the what-if values (money, or yes/no: customers); ``outcome``: the yes/no or numeric
    outcome whose per-tier rate (or mean) is shown (default: every yes/no outcome). ``segment``, ``channel``,
    ``since``, ``until`` narrow the events valence is measured on (module docstring)."""

    title = "Segments and the middle"
    #: fewer customers with a rated event than this cannot be split into tiers
    MIN_CUSTOMERS = 10

    def __init__(
        self,
        *,
        spend: str | None = None,
        outcome: str | None = None,
        share: float = 0.1,
        thresholds: tuple[float, float] = (-0.05, 0.30),
        n_boot: int = 500,
        level: float = 0.95,
        seed: int = 0,
        max_fit_customers: int | None = None,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.spend = spend
        self.max_fit_customers = max_fit_customers
        self.outcome = outcome
        self.share = share
        self.thresholds = thresholds
        self.n_boot = n_boot
        self.level = level
        self.seed = seed
        self._set_filters(filters)

    def _outcome_table(
        self, data: Any, outcomes: pd.DataFrame | None, keys: list[str] | None = None
    ) -> tuple[pd.DataFrame | None, dict[str, bool]]:
        """(the customer outcomes, {name: is yes/no}) from the store (``keys``' only, when given) or the given
        frame."""
        from keymoments.store.store import Store

        if outcomes is None and isinstance(data, Store):
            defs = {n: d == "bool" for n, (k, d) in data.outcome_names().items() if k == "customer_id"}
            return (data.outcomes_wide(list(defs), key_kind="customer_id", keys=keys) if defs else None), defs
        if outcomes is None:
            return None, {}
        outcomes = outcomes.copy()
        kinds = {}
        for c in outcomes.columns:
            if c == "customer_id":
                continue
            col = outcomes[c]
            if pd.api.types.is_bool_dtype(col) or set(pd.unique(col.dropna())) <= {0, 1}:
                kinds[c] = True
            elif pd.api.types.is_numeric_dtype(col):
                kinds[c] = False
        return outcomes, kinds

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> Segments:
        lo_t, hi_t = self.thresholds
        if not (-1 <= lo_t < hi_t <= 1):
            raise InvalidParameterError(
                f"The 'thresholds' parameter of Segments must be two increasing valences in [-1, 1]. Got {self.thresholds!r} instead."
            )
        if not (0 < self.share <= 1):
            raise InvalidParameterError(
                f"The 'share' parameter of Segments must be in (0, 1]. Got {self.share!r} instead."
            )
        _, kinds = self._outcome_table(data, outcomes, keys=[])
        for param in ("spend", "outcome"):
            name = getattr(self, param)
            if name is not None:
                check_choice("Segments", param, name, list(kinds) or ["(no outcomes loaded)"])
        events = self._events(data)
        notes: list[str] = []  # the result's warnings (set with the rest: a failed fit leaves nothing fitted)
        share = None
        if (
            "valence" in events.columns
        ):  # above the limit, a seeded share of the customers, drawn in the engine
            share = customer_share(
                events.filter(events.valence.notnull()),
                fit_limit(self.max_fit_customers, "Segments"),
                self.seed,
            )
            if share is not None:
                events = share.restrict(events)
        cv = customer_valence(events)
        cv = cv[cv["rated"] > 0].copy()
        outcomes, kinds = self._outcome_table(
            data, outcomes, keys=None if share is None else list(cv["customer_id"].astype(str))
        )
        scale = 1.0
        if share is not None:
            scale = share.scale(len(cv))
            notes.append(share.warning(len(cv), "tiers' means, rates and the what-if's spends"))
            warnings.warn(notes[-1], KeymomentsWarning, stacklevel=2)
        if cv.empty and not self.filters and int(events_table(data).count().execute()) == 0:
            raise NotEnoughDataError(
                "No events in the store to form segments from; ingest events first (`keymoments ingest FILE`)."
            )
        if cv.empty:
            raise NotEnoughDataError(
                "No customer has a rated event"
                + ("; loosen the filters." if self.filters else ": segments are tiers of how customers feel, so they "
                   "need a rating or text with the events (load a rating or text column; text is scored on ingest).")
            )  # fmt: skip
        if len(cv) < self.MIN_CUSTOMERS:
            raise NotEnoughDataError(
                f"Segments needs at least {self.MIN_CUSTOMERS} customers with a rated event to form tiers; found {len(cv)}."
            )
        cv["customer_id"] = cv["customer_id"].astype(str)
        df = cv
        if outcomes is not None:
            outcomes["customer_id"] = outcomes["customer_id"].astype(str)
            df = cv.merge(outcomes, on="customer_id", how="left")
        spend_col = self.spend
        if spend_col is None:
            spend_col = next(
                (
                    n
                    for n, b in kinds.items()
                    if not b and any(w in n.lower() for w in ("spend", "revenue", "value"))
                ),
                None,
            )
        if spend_col is None and cv["has_paid"].any():
            spend_col = "paid"
        shown = [self.outcome] if self.outcome is not None else [n for n, b in kinds.items() if b]
        value_col = spend_col if spend_col is not None else next((n for n in shown if kinds.get(n)), None)
        df["tier"] = np.select([df["valence"] < lo_t, df["valence"] < hi_t], ["unhappy", "middling"], "happy")
        rows = []
        for tier in TIERS:
            d = df[df["tier"] == tier]
            n = len(d)
            warn_small_sample(f"The {tier!r} tier", n)
            row: dict[str, Any] = {"tier": tier, "customers": round(n * scale), "share": n / len(df),
                                   "mean_valence": float(d["valence"].mean()) if n else np.nan}  # fmt: skip
            if spend_col is not None:
                m, lo, hi, _ = mean_ci(d[spend_col].to_numpy(dtype=float), self.level)
                row.update(mean_spend=m, spend_ci_low=lo, spend_ci_high=hi)
            for b in shown:
                y = d[b].dropna().to_numpy(dtype=float)
                if kinds.get(b):
                    p, plo, phi = proportion_ci(int(y.sum()), len(y), self.level)
                    row[f"{b}_rate"], row[f"{b}_ci_low"], row[f"{b}_ci_high"] = p, plo, phi
                else:
                    m, mlo, mhi, _ = mean_ci(y, self.level)
                    row[f"{b}_mean"], row[f"{b}_ci_low"], row[f"{b}_ci_high"] = m, mlo, mhi
            rows.append(row)
        self.tiers_ = pd.DataFrame(rows)
        self.warnings_ = notes
        self.spend_column_ = spend_col
        self.outcomes_ = shown
        self.whatif_column_ = value_col
        self.whatif_unit_ = None if value_col is None else ("customers" if kinds.get(value_col) else "money")
        self.whatif_ = self._whatif(df, value_col, scale) if value_col is not None else None
        return self

    def _whatif(self, df: pd.DataFrame, spend_col: str, scale: float = 1.0) -> dict[str, Any]:
        """``scale``: customers in all per customer in ``df`` (a sample's frame), so the gains are for all."""
        spend = {t: df.loc[df["tier"] == t, spend_col].to_numpy(dtype=float) for t in TIERS}
        spend = {t: s[~np.isnan(s)] for t, s in spend.items()}
        n = {t: int((df["tier"] == t).sum()) * scale for t in TIERS}

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
            "on": spend_col,
            "unit": self.whatif_unit_,
            "middle_up": {
                "gain": g_mid,
                "ci_low": ci(bm)[0],
                "ci_high": ci(bm)[1],
                "customers_moved": self.share * n["middling"],
            },
            "unhappy_up": {
                "gain": g_low,
                "ci_low": ci(bl)[0],
                "ci_high": ci(bl)[1],
                "customers_moved": self.share * n["unhappy"],
            },
            "ratio": float(g_mid / g_low) if np.isfinite(g_mid) and g_low and g_low > 0 else None,
            "ratio_ci_low": ci(ratios)[0] if len(ratios) > 0.9 * len(bm) and bm else None,
            "ratio_ci_high": ci(ratios)[1] if len(ratios) > 0.9 * len(bm) and bm else None,
        }

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.tiers_

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        self._check_fitted()
        t = self.tiers_
        cols = ["tier", "customers", "share", "mean_valence"]
        cols += [c for c in ("mean_spend", "spend_ci_low", "spend_ci_high") if c in t.columns]
        table = t[cols].copy()
        for o in self.outcomes_:  # each outcome's rate (or mean) with its interval, as one readable cell each
            col = f"{o}_rate" if f"{o}_rate" in t.columns else f"{o}_mean"
            pct = col.endswith("_rate")
            table[col] = [
                _with_ci(v, lo, hi, pct)
                for v, lo, hi in zip(t[col], t[f"{o}_ci_low"], t[f"{o}_ci_high"], strict=True)
            ]
        spend = (
            f"spend = {self.spend_column_}"
            + (" (money paid in events)" if self.spend_column_ == "paid" else "")
            if self.spend_column_
            else "no spend (name one with --spend)"
        )
        print_table(table, title=f"Valence tiers (unhappy below {self.thresholds[0]:+.2f}, happy from "
                                 f"{self.thresholds[1]:+.2f}); {spend}")  # fmt: skip
        console.print(self.whatif_text())

    def whatif_text(self) -> str:
        """The what-if in one sentence (or why there is none)."""
        w = self.whatif_
        if w is None:
            return ("No what-if: there is no spend and no yes/no outcome to value moving customers up; name one with "
                    "--spend (an outcome) or load event values.")  # fmt: skip
        unit = f"{w['on']} (customers)" if w["unit"] == "customers" else w["on"]
        fmt = "{:,.1f}" if w["unit"] == "customers" else "{:,.0f}"

        def gain(g: dict[str, float]) -> str:
            if not np.isfinite(g["gain"]):
                return "not estimable (a tier is empty)"
            ci = (
                f" [{fmt.format(g['ci_low'])}, {fmt.format(g['ci_high'])}]"
                if np.isfinite(g["ci_low"])
                else ""
            )
            return fmt.format(g["gain"]) + ci

        ratio = (f"; the middle is worth {w['ratio']:.2f}x the unhappy" if w["ratio"] is not None
                 else "; no ratio (moving the unhappy up gains nothing measurable)")  # fmt: skip
        return (f"What-if on {unit}: moving {w['share_moved']:.0%} of the middle up one tier gains {gain(w['middle_up'])}; "
                f"{w['share_moved']:.0%} of the unhappy, {gain(w['unhappy_up'])}{ratio}.")  # fmt: skip

    def tables(self) -> dict[str, pd.DataFrame]:
        """tiers (the main table) and, when there is one, the what-if (one row per move)."""
        self._check_fitted()
        out = {"tiers": self.tiers_}
        w = self.whatif_
        if w is not None:
            out["whatif"] = pd.DataFrame([
                {"move": m, "on": w["on"], "unit": w["unit"], "share_moved": w["share_moved"], **w[m]}
                for m in ("middle_up", "unhappy_up")
            ])  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "thresholds": {"unhappy_below": self.thresholds[0], "happy_from": self.thresholds[1]},
            "spend": self.spend_column_,
            "outcomes": self.outcomes_,
            "tiers": self.tiers_.to_dict(orient="records"),
            "whatif": self.whatif_,
            "ratio": self.whatif_["ratio"] if self.whatif_ else None,
            "filters": self.filters,
            **({"warnings": list(self.warnings_)} if getattr(self, "warnings_", None) else {}),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import segments_figure

        self._check_fitted()
        return segments_figure(self.tiers_, self.outcomes_[0] if self.outcomes_ else None)


def _with_ci(v: float, lo: float, hi: float, pct: bool) -> str:
    if not np.isfinite(v):
        return ""
    f = "{:.1%}" if pct else "{:,.2f}"
    return f.format(v) + (f" [{f.format(lo)}, {f.format(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else "")
