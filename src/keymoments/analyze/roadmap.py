"""The roadmap: fill the pits first, then sign off well and open well, then build peaks.

    >>> rm = Roadmap(outcome="retained").fit(store)     # or Roadmap.from_moments(fitted_moments_of_truth)
    >>> rm.summary                                      # one row per item, in phase order
    >>> rm.figure()                                     # current vs future-state emotion curve (Plotly)

Built on :class:`~keymoments.analyze.moments.MomentsOfTruth`. A *moment of truth* is a touchpoint whose
impact interval lies above zero. Phases, after the CX literature (Heath & Heath; Temkin):

1. **Fill the pits**: moments of truth customers feel negative about (mean valence < 0), and crises without
   recovery (a touchpoint with the ``crisis`` characteristic where fewer than half of the crises are followed
   by a resolution). Future state: the target valence (``journey.yaml``, default 0.5).
2. **Sign off well and open well**: the ending and first-impression touchpoints not fixed in phase 1, raised to
   target, when their estimated impact is positive (marked ``evidence: weak`` when its interval covers zero).
3. **Build peaks**: the other moments of truth, raised to a peak (``peak_target``, default 0.8).

Touchpoints with no evidence of impact stay out ("hold"), with the reason. Each item's **expected value** is
``impact x reach x (future - current)`` outcome points (per customer of the base, with the interval from the
impact's interval), and, where the outcome allows, customers (binary outcome x n) and money. Under the linear
(marginal-effect) model items add up; phase totals and the cumulative total are sums of items.

**Filters** (``segment``, ``channel``, ``since``, ``until``) are the moments of truth's: a roadmap for the web
channel, a segment or a quarter, built from those events only (customers with none left drop out).
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis
from keymoments.analyze.filters import EventFilters, FilterParams, filters_of
from keymoments.analyze.moments import MomentsOfTruth
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError

__all__ = ["PHASES", "Roadmap"]

PHASES: dict[int, str] = {1: "Fill the pits", 2: "Sign off well and open well", 3: "Build peaks"}
#: a crisis touchpoint is "without recovery" below this recovery rate
RECOVERY_FLOOR = 0.5

_ITEM_COLUMNS = [
    "phase", "phase_name", "touchpoint", "reason", "evidence", "current_valence", "future_valence", "impact",
    "ci_low", "ci_high", "reach", "expected_gain", "expected_gain_ci_low", "expected_gain_ci_high",
    "expected_customers", "expected_value", "characteristics", "n",
]  # fmt: skip


class Roadmap(EventFilters, Analysis):
    """Phased plan with expected value; see the module docstring. The other parameters are MomentsOfTruth's."""

    title = "Roadmap"

    def __init__(
        self,
        outcome: str,
        *,
        peak_target: float = 0.8,
        journey: Any = None,
        kind: str = "auto",
        controls: list[str] | None = None,
        touchpoints: list[str] | None = None,
        scale: str | None = None,
        target_valence: float | dict[str, float] | None = None,
        value_per_customer: float | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        max_fit_customers: int | None = None,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.max_fit_customers = max_fit_customers
        self.peak_target = peak_target
        self.journey = journey
        self.kind = kind
        self.controls = controls
        self.touchpoints = touchpoints
        self.scale = scale
        self.target_valence = target_valence
        self.value_per_customer = value_per_customer
        self.n_boot = n_boot
        self.seed = seed
        self._set_filters(filters)

    @classmethod
    def from_moments(cls, mot: MomentsOfTruth, *, peak_target: float = 0.8) -> Roadmap:
        """A roadmap from an already fitted MomentsOfTruth (no refit), with its filters."""
        mot._check_fitted()
        rm = cls(mot.outcome, peak_target=peak_target, **filters_of(mot))
        rm._validate()
        rm._build(mot)
        return rm

    def _validate(self) -> None:
        if not -1 < float(self.peak_target) <= 1:
            raise InvalidParameterError(
                f"The 'peak_target' parameter of Roadmap must be in (-1, 1]. Got {self.peak_target!r} instead."
            )
        self.filters  # noqa: B018 - validates the filters

    def fit(
        self, data: Any, outcomes: pd.DataFrame | None = None, attributes: pd.DataFrame | None = None
    ) -> Roadmap:
        """Fit the moments of truth on ``data`` (Store, wide or long frame) and lay out the phases."""
        self._validate()
        mot = MomentsOfTruth(
            self.outcome, journey=self.journey, kind=self.kind, controls=self.controls, touchpoints=self.touchpoints,
            scale=self.scale, target_valence=self.target_valence, value_per_customer=self.value_per_customer,
            n_boot=self.n_boot, seed=self.seed, max_fit_customers=self.max_fit_customers, **filters_of(self),
        )  # fmt: skip
        mot._owner = type(self).__name__  # a bad filter is the Roadmap's parameter
        mot.fit(data, outcomes=outcomes, attributes=attributes)
        self._build(mot)
        return self

    # -- building ----------------------------------------------------------------------------------------
    def _build(self, mot: MomentsOfTruth) -> None:
        if getattr(mot, "mode_", "valence") == "presence":
            raise NotEnoughDataError(
                "A roadmap has no valence to plan with: no event has a rating or scored text, so there are no pits "
                f"to fill or peaks to build. `keymoments moments --outcome {mot.outcome}` shows which touchpoints, "
                "spend and milestones predict the outcome; load a rating or text column with the events for a roadmap."
            )
        s = mot.summary.set_index("touchpoint")
        stats = mot.stats_
        recovery = stats["recovery_rate"] if "recovery_rate" in stats.columns else pd.Series(dtype=float)
        items: list[dict[str, Any]] = []
        hold: list[dict[str, Any]] = []
        placed: set[str] = set()
        n = mot.n_

        def item(tp: str, phase: int, reason: str, future: float) -> None:
            r = s.loc[tp]
            cur = float(r["mean_valence"])
            lift = max(0.0, future - cur)
            gain = r["impact"] * r["reach"] * lift
            gains = sorted([r["ci_low"] * r["reach"] * lift, r["ci_high"] * r["reach"] * lift])
            items.append(
                {
                    "phase": phase,
                    "phase_name": PHASES[phase],
                    "touchpoint": tp,
                    "reason": reason,
                    "evidence": "significant" if r["ci_low"] > 0 else "weak",
                    "current_valence": cur,
                    "future_valence": max(cur, future),
                    "impact": r["impact"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "reach": r["reach"],
                    "expected_gain": gain,
                    "expected_gain_ci_low": gains[0],
                    "expected_gain_ci_high": gains[1],
                    "expected_customers": gain * n if mot.binary_ else np.nan,
                    "expected_value": mot._money(gain),
                    "characteristics": list(r["characteristics"]),
                    "n": int(r["n"]),
                }  # fmt: skip
            )
            placed.add(tp)

        ordered = [tp for tp in mot.order_ if tp in s.index] + [tp for tp in s.index if tp not in mot.order_]
        by_priority = list(s.index)  # the summary is sorted by priority
        for tp in by_priority:  # phase 1: pits and unrecovered crises among the moments of truth
            r = s.loc[tp]
            if not r["moment_of_truth"] or np.isnan(r["mean_valence"]):
                continue
            rec = recovery.get(tp, np.nan)
            if r["mean_valence"] < 0:
                item(
                    tp,
                    1,
                    f"a pit: mean valence {r['mean_valence']:+.2f} where the outcome is decided",
                    r["target_valence"],
                )
            elif "crisis" in r["characteristics"] and not np.isnan(rec) and rec < RECOVERY_FLOOR:
                item(tp, 1, f"crises here are recovered only {rec:.0%} of the time", r["target_valence"])
        for tp in by_priority:  # phase 2: the ending and the first impression
            r = s.loc[tp]
            chars = set(r["characteristics"])
            if tp in placed or not chars & {"ending", "first_impression"} or np.isnan(r["impact"]):
                continue
            what = " and ".join(c.replace("_", " ") for c in ("first_impression", "ending") if c in chars)
            if r["impact"] > 0 and r["gap"] > 0:
                item(tp, 2, f"the {what}: remembered out of proportion", r["target_valence"])
        for tp in by_priority:  # phase 3: build peaks on the other moments of truth
            r = s.loc[tp]
            if tp in placed:
                continue
            peak = max(float(r["target_valence"]), float(self.peak_target))
            if r["moment_of_truth"] and r["mean_valence"] < peak:
                why = (
                    "room for delight"
                    if "delight" in r["characteristics"]
                    else "a moment of truth to lift to a peak"
                )
                item(tp, 3, why, peak)
            else:
                reason = (
                    "already at its peak target"
                    if r["moment_of_truth"]
                    else "no evidence it moves the outcome (impact interval covers zero)"
                    if not np.isnan(r["impact"])
                    else "not estimable: " + str(mot.dropped_.get(tp, "too little data"))
                )
                hold.append(
                    {
                        "touchpoint": tp,
                        "reason": reason,
                        "impact": r["impact"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                    }
                )
        df = pd.DataFrame(items, columns=_ITEM_COLUMNS)
        df = df.sort_values(
            ["phase", "expected_gain"], ascending=[True, False], kind="mergesort"
        ).reset_index(drop=True)
        self.moments_ = mot
        self.items_ = df
        self.hold_ = hold
        future = dict(zip(df["touchpoint"], df["future_valence"], strict=True))
        self.curve_ = pd.DataFrame(
            {
                "touchpoint": ordered,
                "current": [float(s.at[tp, "mean_valence"]) for tp in ordered],
                "future": [float(future.get(tp, s.at[tp, "mean_valence"])) for tp in ordered],
                "phase": [
                    int(df.loc[df["touchpoint"] == tp, "phase"].iloc[0]) if tp in future else None
                    for tp in ordered
                ],
            }
        )

    # -- results -----------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.items_

    def phases(self) -> list[dict[str, Any]]:
        """Per phase: its items and totals (outcome points, customers, money), plus the cumulative total."""
        self._check_fitted()
        out, cum = [], 0.0
        for p, name in PHASES.items():
            part = self.items_[self.items_["phase"] == p]
            gain = float(part["expected_gain"].sum())
            cum += gain
            out.append(
                {
                    "phase": p,
                    "name": name,
                    "expected_gain": gain,
                    "cumulative_gain": cum,
                    "expected_gain_ci_low": float(part["expected_gain_ci_low"].sum()),
                    "expected_gain_ci_high": float(part["expected_gain_ci_high"].sum()),
                    "expected_customers": float(part["expected_customers"].sum())
                    if self.moments_.binary_
                    else None,
                    "expected_value": float(part["expected_value"].sum())
                    if part["expected_value"].notna().any()
                    else None,
                    "items": [
                        {**r, "characteristics": list(r["characteristics"])}
                        for r in part.to_dict(orient="records")
                    ],
                }  # fmt: skip
            )
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """items (the main table: one row per roadmap item, in phase order), phases (their totals), hold and the
        current vs future-state curve."""
        self._check_fitted()
        phases = pd.DataFrame([{k: v for k, v in p.items() if k != "items"} for p in self.phases()])
        return {"items": self.items_, "phases": phases, "hold": pd.DataFrame(self.hold_), "curve": self.curve_}

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        mot = self.moments_
        return {
            "outcome": self.outcome,
            "n": mot.n_,
            "model_fit": mot.model_fit_,
            "kind": "binary" if mot.binary_ else "continuous",
            "unit": mot.unit_,
            "expected_gain_definition": "impact x reach x (future - current valence): change of the outcome's mean",
            "peak_target": self.peak_target,
            "phases": self.phases(),
            "hold": self.hold_,
            "curve": self.curve_.to_dict(orient="records"),
            "warnings": mot.warnings_,
            "filters": self.filters,
        }

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        cols = ["phase", "touchpoint", "current_valence", "future_valence", "impact", "expected_gain"]
        if self.moments_.binary_:
            cols.append("expected_customers")
        if self.items_["expected_value"].notna().any():
            cols.append("expected_value")
        print_table(self.summary[cols], title=f"{self.title}: {self.outcome}")
        for r in self.items_.itertuples():
            console.print(f"  {r.phase}. {r.touchpoint}: {r.reason}")
        for ph in self.phases():
            extra = (
                f", {ph['expected_customers']:.1f} customers" if ph["expected_customers"] is not None else ""
            )
            extra += f", {ph['expected_value']:,.0f} in money" if ph["expected_value"] is not None else ""
            console.print(
                f"phase {ph['phase']} {ph['name']}: +{ph['expected_gain']:.4f} outcome points{extra}"
            )
        for h in self.hold_:
            console.print(f"hold {h['touchpoint']}: {h['reason']}")

    def figure(self) -> Any:
        """Current versus future-state emotion curve along the journey (a Plotly Figure)."""
        import plotly.graph_objects as go

        from keymoments.analyze.charts import keep_order

        self._check_fitted()
        c = self.curve_
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(x=c["touchpoint"], y=c["current"], mode="lines+markers", name="current state")
        )
        labels = [f"phase {int(p)}" if p is not None and not pd.isna(p) else "" for p in c["phase"]]
        fig.add_trace(
            go.Scatter(
                x=c["touchpoint"],
                y=c["future"],
                mode="lines+markers+text",
                name="future state",
                text=labels,
                textposition="top center",
                line={"dash": "dash"},
            )  # fmt: skip
        )
        fig.add_hline(y=0, line_width=1, line_color="grey")
        fig.update_layout(
            title=f"Roadmap for {self.outcome}: current vs future-state journey",
            yaxis={"title": "mean valence", "range": [-1.05, 1.1]},
            xaxis={"title": "touchpoint (journey order)"},
            template="plotly_white",
        )
        keep_order(fig, c["touchpoint"])
        return fig
