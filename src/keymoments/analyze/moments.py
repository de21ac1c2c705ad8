"""Moments of truth: which touchpoints decide an outcome, by how much, and what fixing them is worth.

    >>> mot = MomentsOfTruth(outcome="retained").fit(store)      # or a wide / long pandas frame
    >>> mot.summary                                              # ranked by priority
    >>> mot.to_dict()                                            # the JSON of `keymoments moments --json`

**Experience.** Per customer (or journey, whichever the outcome is keyed by) the experience at a touchpoint is
the mean valence of the customer's events there (the fused ``valence``, else the rating's; prepared from a Store
or a frame by :mod:`keymoments.analyze.moments_data`). A touchpoint the
customer did not meet is *missing, not bad* (see :mod:`keymoments.analyze.drivers`: mean imputation plus a
"not experienced" indicator, so slopes come only from those who met it).

**Impact** = the change of the outcome for +1 valence unit, i.e. from a bad (-0.5) to a good (+0.5)
experience, from one multivariable model over all touchpoints and the customer's attributes (OLS for a
continuous outcome; logistic average marginal effect, in probability points, for a binary one), with a
block-bootstrap 95% interval. **Share** = Johnson's relative weight of the touchpoint over R².

**Priority** = impact x reach x gap, where reach is the share of customers who meet the touchpoint and gap is
``max(0, target - mean valence)`` with the target from ``journey.yaml`` (default 0.5). Under the linear model
it is the expected change of the outcome's mean if everyone who meets the touchpoint were moved to target:
rate points for a binary outcome (``expected_customers`` = priority x n), money for a money outcome. For a
binary outcome ``expected_value`` converts customers to money with the mean spend of a retained customer when
the store has a spend outcome (or ``value_per_customer`` is given).

**Caveats, said plainly.** The impacts are associations adjusted for the other touchpoints and the customer's
attributes, not experiments. Intervals carry sampling error only. When ratings measure experience with noise
(coarse scales, few rated visits) and a customer's mood lifts every rating (halo), a touchpoint with no
effect of its own can borrow a little of the drivers' effect: on the demo airline, fitted on the *latent*
experiences the planted null touchpoints come out at 0.00 +/- 0.03, on the observed ratings at about +0.04
(10 seeds of 2,000 customers: 29 of 40 null intervals cover zero), so their intervals can exclude zero. Read small impacts next to the big ones, and
prefer the ranking to the significance of the tail.

**Filters** (``segment``, ``channel``, ``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow the
events experiences, reach and characteristics are measured on: with ``channel="web"`` the question is which
*web* moments decide the outcome. Outcomes and attributes are per customer or journey and are not filtered, but
customers with no rated event left drop out of the model. A wide frame (one row per respondent, no events)
takes only ``segment``, as ``column=value``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, check_choice, warn_small_sample
from keymoments.analyze.characteristics import characterize, valence_stats
from keymoments.analyze.drivers import DriverResult, build_design, fit_drivers
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.moments_data import MONEY_WORDS, Prepared, is_money, prepare
from keymoments.events import RATING_SCALES, JourneyModel
from keymoments.exceptions import (
    InvalidParameterError,
    KeymomentsWarning,
    NotEnoughDataError,
)

__all__ = ["MomentsOfTruth", "MONEY_WORDS", "PRESENCE_NOTE"]

#: what moments says on data without valence (no rating, no scored text)
PRESENCE_NOTE = (
    "no event has a rating or scored text, so there is no experience to rank; instead, what the data supports: "
    "which touchpoints met, money spent there and repeat milestones crossed predict the outcome. Load ratings or "
    "text with the events for moments of truth."
)

_SUMMARY_COLUMNS = [
    "touchpoint", "impact", "ci_low", "ci_high", "reach", "mean_valence", "target_valence", "gap", "priority",
    "characteristics", "n", "share", "share_ci_low", "share_ci_high", "priority_ci_low", "priority_ci_high",
    "expected_customers", "expected_value", "moment_of_truth", "pit",
]  # fmt: skip


class MomentsOfTruth(EventFilters, Analysis):
    """Rank touchpoints by how much a better experience there would move an outcome.

    Parameters: ``outcome`` (name of the outcome column / stored outcome); ``journey`` (a JourneyModel or the
    path of a journey.yaml: order, flags, targets); ``kind`` ("auto", "binary", "continuous");
    ``controls`` (attribute columns to adjust for; default: every stored attribute, or a wide frame's
    non-numeric columns); ``touchpoints`` (a wide frame's touchpoint columns; default: its other numeric
    columns); ``scale`` (rating scale of a wide frame's cells when they are ratings, e.g. "csat5");
    ``target_valence`` (a default target, or a {touchpoint: target} dict); ``value_per_customer`` (money per
    retained customer); ``n_boot``, ``level``, ``seed`` (the bootstrap); ``max_fit_customers`` (above this many
    customers with the outcome, fit on a stratified sample of this many; default ``KM_MAX_FIT_CUSTOMERS``, 2M; see
    :mod:`keymoments.analyze.sample`); ``segment``, ``channel``, ``since``, ``until`` (the events the
    experiences are measured on; see the module docstring).
    """

    title = "Moments of truth"

    def __init__(
        self,
        outcome: str,
        *,
        journey: JourneyModel | str | Path | None = None,
        kind: str = "auto",
        controls: list[str] | None = None,
        touchpoints: list[str] | None = None,
        scale: str | None = None,
        target_valence: float | dict[str, float] | None = None,
        value_per_customer: float | None = None,
        n_boot: int = 1000,
        level: float = 0.95,
        seed: int = 0,
        max_fit_customers: int | None = None,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.max_fit_customers = max_fit_customers
        self.journey = journey
        self.kind = kind
        self.controls = controls
        self.touchpoints = touchpoints
        self.scale = scale
        self.target_valence = target_valence
        self.value_per_customer = value_per_customer
        self.n_boot = n_boot
        self.level = level
        self.seed = seed
        self._set_filters(filters)

    # -- validation ------------------------------------------------------------------------------------
    def _validate(self) -> JourneyModel | None:
        name = type(self).__name__
        check_choice(name, "kind", self.kind, ("auto", "binary", "continuous"))
        if self.scale is not None:
            check_choice(name, "scale", self.scale, list(RATING_SCALES))
        if not isinstance(self.n_boot, int) or self.n_boot < 50:
            raise InvalidParameterError(
                f"The 'n_boot' parameter of {name} must be an integer >= 50. Got {self.n_boot!r}."
            )
        if not 0.5 < float(self.level) < 1:
            raise InvalidParameterError(
                f"The 'level' parameter of {name} must be in (0.5, 1). Got {self.level!r}."
            )
        self.filters  # noqa: B018 - validates the filters before any data is read
        j = self.journey
        if isinstance(j, str | Path):
            j = JourneyModel.from_yaml(j)
        return j

    # -- fit -------------------------------------------------------------------------------------------
    def fit(
        self,
        data: Any,
        outcomes: pd.DataFrame | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> MomentsOfTruth:
        """Fit on a Store, a long events frame, or a wide frame (one row per respondent); returns self.

        ``outcomes`` / ``attributes``: frames keyed by ``customer_id`` (or ``journey_id``) for a long frame
        whose outcome or attributes live elsewhere.
        """
        journey = self._validate()
        self.journey_ = journey
        caught: list[str] = []
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            prep = prepare(self, data, journey, outcomes, attributes)
        for w in rec:
            if issubclass(w.category, KeymomentsWarning):
                caught.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self._fit_prepared(prep, journey, caught)
        return self

    def _fit_prepared(self, prep: Prepared, journey: JourneyModel | None, caught: list[str]) -> None:
        V, y, C = prep.valence, prep.y, prep.controls
        n = len(y)
        self.mode_ = prep.mode
        if n == 0:
            raise NotEnoughDataError(
                f"No customer has both an outcome {self.outcome!r} and a rated touchpoint; nothing to analyse."
            )
        vals = pd.unique(y[~np.isnan(y)])
        binary = self.kind == "binary" or (
            self.kind == "auto" and (prep.dtype == "bool" or set(vals) <= {0.0, 1.0})
        )
        if binary and not set(vals) <= {0.0, 1.0}:
            raise InvalidParameterError(
                f"Outcome {self.outcome!r} is not 0/1 but kind='binary' was asked for."
            )
        if len(vals) < 2:
            who = "1 customer" if n == 1 else f"{n:,} customers"
            raise NotEnoughDataError(
                f"Outcome {self.outcome!r} takes a single value over {who}; it cannot be explained: it needs "
                "customers with different outcomes (load more customers, or another outcome)."
            )
        design = build_design(V, C)
        if prep.mode == "presence":
            design.dropped = {k: "the same for every customer" if "same valence" in why else why
                              for k, why in design.dropped.items()}  # fmt: skip
        if not design.touchpoints:
            raise NotEnoughDataError(
                f"No touchpoint has enough varied experiences to estimate an impact (of {list(V.columns)})."
                if prep.mode == "valence" else
                f"Nothing the data holds varies enough between customers to predict {self.outcome!r}: every customer "
                "meets the same touchpoints and crosses the same milestones. Load ratings or text with the events to "
                "measure how they felt."
            )  # fmt: skip
        q = design.X.shape[1]
        if n < q + 3:
            raise NotEnoughDataError(
                f"{n} customers cannot support a model with {q} predictors (touchpoints, 'not experienced' "
                f"indicators and controls); it needs at least {q + 3}. Pass fewer touchpoints or controls."
            )

        def warn(what: str, k: int, minimum: int) -> None:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                warn_small_sample(what, k, minimum)
            for w in rec:
                caught.append(str(w.message))
                warnings.warn(w.message, w.category, stacklevel=4)

        warn(f"The model of {self.outcome!r} ({q} predictors)", n, max(30, 10 * q))
        if binary:
            warn(f"The rarer class of {self.outcome!r}", int(min(y.sum(), n - y.sum())), max(10, 5 * q))
        counts = V.notna().sum()
        for tp in design.touchpoints:
            warn(f"The impact of {tp!r}", int(counts[tp]), 30)
        res = fit_drivers(design, y, binary=binary, n_boot=self.n_boot, level=self.level, seed=self.seed)
        if binary and not res.converged:
            msg = f"The logistic model of {self.outcome!r} did not converge (separation?); read impacts with care."
            caught.append(msg)
            warnings.warn(msg, KeymomentsWarning, stacklevel=3)
        self.drivers_ = res
        self.binary_ = binary
        self.n_ = n
        self.n_dropped_ = prep.n_dropped
        self.dropped_ = design.dropped
        self.order_ = prep.order
        self.model_fit_ = res.model_fit
        self.value_per_customer_ = (
            self.value_per_customer if self.value_per_customer is not None else prep.value_per_customer
        )
        self.unit_ = "customers" if binary else ("money" if is_money(self.outcome) else "points")
        self.stats_ = prep.stats
        self.warnings_ = caught
        self.time_ordered_ = prep.time_ordered
        if prep.mode == "presence":
            self.characteristics_, self.characteristics_how_ = {}, {}
            self.note_ = PRESENCE_NOTE
            self._build_presence_summary(V, prep.reach, res)
            return
        self.note_ = ""
        chars, how = characterize(
            list(V.columns), prep.order, prep.stats.join(valence_stats(V), how="outer"), journey,
            time_ordered=prep.time_ordered,
        )  # fmt: skip
        self.characteristics_ = chars
        self.characteristics_how_ = how
        self._build_summary(V, prep.reach, res, journey)

    def _target(self, tp: str, journey: JourneyModel | None) -> float:
        t = self.target_valence
        if isinstance(t, dict) and tp in t:
            return float(t[tp])
        if (
            journey is not None
            and journey.touchpoint(tp) is not None
            and journey.touchpoint(tp).target_valence is not None
        ):
            return float(journey.target(tp))
        if isinstance(t, int | float):
            return float(t)
        return (
            float(journey.default_target_valence)
            if journey is not None
            else JourneyModel().default_target_valence
        )

    def _build_summary(
        self, V: pd.DataFrame, reach: pd.Series, res: DriverResult, journey: JourneyModel | None
    ) -> None:
        idx = {tp: i for i, tp in enumerate(res.touchpoints)}
        rows = []
        n = self.n_
        r2 = res.r2 if res.r2 > 0 else np.nan
        for tp in V.columns:
            i = idx.get(tp)
            v = V[tp].dropna()
            mean_v = float(v.mean()) if len(v) else np.nan
            target = self._target(tp, journey)
            gap = max(0.0, target - mean_v) if len(v) else np.nan
            rch = float(reach.get(tp, np.nan))
            if i is None:
                imp = lo = hi = sh = sl = shh = np.nan
            else:
                imp, (lo, hi) = float(res.impact[i]), map(float, res.impact_ci[i])
                sh, sl, shh = (
                    res.importance[i] / r2,
                    res.importance_ci[i, 0] / r2,
                    res.importance_ci[i, 1] / r2,
                )
            pr = imp * rch * gap
            rows.append(
                {
                    "touchpoint": tp,
                    "impact": imp,
                    "ci_low": lo,
                    "ci_high": hi,
                    "reach": rch,
                    "mean_valence": mean_v,
                    "target_valence": target,
                    "gap": gap,
                    "priority": pr,
                    "characteristics": self.characteristics_.get(tp, []),
                    "n": int(len(v)),
                    "share": sh,
                    "share_ci_low": sl,
                    "share_ci_high": shh,
                    "priority_ci_low": lo * rch * gap,
                    "priority_ci_high": hi * rch * gap,
                    "expected_customers": pr * n if self.binary_ else np.nan,
                    "expected_value": self._money(pr),
                    "moment_of_truth": bool(lo > 0) if i is not None else False,
                    "pit": bool(mean_v < 0) if len(v) else False,
                }  # fmt: skip
            )
        df = pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)
        df = df.sort_values(["priority", "impact"], ascending=False, na_position="last", kind="mergesort")
        self.summary_ = df.reset_index(drop=True)
        self.impact_ = self.summary_.set_index("touchpoint")["impact"]

    def _build_presence_summary(self, F: pd.DataFrame, reach: pd.Series, res: DriverResult) -> None:
        """The summary without valence: one row per feature (a touchpoint met, the money spent there, a milestone
        crossed), its impact with CI, and its priority: the outcome change if everyone without it had it (met,
        crossed), or if everyone spending there spent twice as much."""
        idx = {f: i for i, f in enumerate(res.touchpoints)}
        r2 = res.r2 if res.r2 > 0 else np.nan
        rows = []
        for f in F.columns:
            i = idx.get(f)
            kind, _, what = f.partition(": ")
            kind = {"met": "met", "spent at": "spent", "crossed": "milestone"}.get(kind, kind)
            rch = float(reach.get(f, np.nan))
            room = rch if kind == "spent" else 1.0 - rch
            imp, lo, hi = (float(res.impact[i]), *map(float, res.impact_ci[i])) if i is not None else (np.nan,) * 3
            sh = (res.importance[i] / r2, res.importance_ci[i, 0] / r2, res.importance_ci[i, 1] / r2) if i is not None else (np.nan,) * 3
            pr = imp * room
            rows.append({
                "touchpoint": f, "feature": kind, "of": what,
                "impact": imp, "ci_low": lo, "ci_high": hi, "reach": rch, "priority": pr,
                "priority_ci_low": lo * room, "priority_ci_high": hi * room, "n": int((F[f] > 0).sum()),
                "share": sh[0], "share_ci_low": sh[1], "share_ci_high": sh[2],
                "expected_customers": pr * self.n_ if self.binary_ else np.nan, "expected_value": self._money(pr),
                "moment_of_truth": bool(lo > 0) if i is not None else False,
            })  # fmt: skip
        df = pd.DataFrame(rows)
        df = df.sort_values(["priority", "impact"], ascending=False, na_position="last", kind="mergesort")
        self.summary_ = df.reset_index(drop=True)
        self.impact_ = self.summary_.set_index("touchpoint")["impact"]

    def _money(self, priority: float) -> float:
        if self.binary_:
            vpc = self.value_per_customer_
            return priority * self.n_ * vpc if vpc is not None and not np.isnan(priority) else np.nan
        return priority * self.n_ if self.unit_ == "money" else np.nan

    # -- results ---------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.summary_

    def print_summary(self) -> None:
        from keymoments.cli.common import console, print_table

        if self.mode_ == "presence":
            self._check_fitted()
            console.print(f"Note: {self.note_}")
            cols = ["touchpoint", "impact", "ci_low", "ci_high", "share", "reach", "priority", "n"]
            print_table(self.summary[cols].rename(columns={"touchpoint": "predictor"}),
                        title=f"What predicts {self.outcome} (no valence: presence, spend and milestones)")  # fmt: skip
            fit = self.model_fit_
            main = f"AUC (cv) {fit['auc_cv']:.3f}" if self.binary_ else f"R² (cv) {fit['r2_cv']:.3f}"
            console.print(
                f"n = {self.n_} · {main} · impact = outcome change{' (probability points)' if self.binary_ else ''} "
                "from not having to having it ('met', 'crossed') or per doubling of the money spent ('spent at'), "
                f"adjusted for the others, {self.level:.0%} block-bootstrap CI; associations, not experiments"
            )
            return
        df = self.summary[
            [
                "touchpoint",
                "impact",
                "ci_low",
                "ci_high",
                "share",
                "reach",
                "mean_valence",
                "gap",
                "priority",
                "n",
            ]
        ].copy()
        df.insert(len(df.columns), "characteristics", [", ".join(c) for c in self.summary["characteristics"]])
        print_table(df, title=f"{self.title}: {self.outcome}")
        fit = self.model_fit_
        main = f"AUC (cv) {fit['auc_cv']:.3f}" if self.binary_ else f"R² (cv) {fit['r2_cv']:.3f}"
        console.print(
            f"n = {self.n_} · {main} · R² {fit['r2']:.3f} · impact = outcome change from a bad (-0.5) to a good "
            f"(+0.5) experience{' (probability points)' if self.binary_ else ''}, {self.level:.0%} block-bootstrap CI"
        )

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        recs = []
        for r in self.summary_.to_dict(orient="records"):
            if "characteristics" in r:
                r["characteristics"] = list(r["characteristics"])
            recs.append(r)
        return {
            "outcome": self.outcome,
            "mode": self.mode_,
            **({"note": self.note_} if self.note_ else {}),
            "time_ordered": self.time_ordered_,
            "n": self.n_,
            "model_fit": self.model_fit_,
            "kind": "binary" if self.binary_ else "continuous",
            "unit": self.unit_,
            "impact_definition": (
                "outcome change for +1 valence (a bad -0.5 to a good +0.5 experience)" if self.mode_ == "valence" else
                "outcome change from not having to having it (met, crossed), or per doubling of the money spent"
            ) + (", average marginal effect of a logistic model" if self.binary_ else ", OLS slope"),
            "level": self.level,
            "n_boot": self.n_boot,
            "n_dropped": self.n_dropped_,
            "value_per_customer": self.value_per_customer_,
            "controls": [
                c
                for c in self.drivers_.coef.index
                if c != "const"
                and c not in self.drivers_.touchpoints
                and not c.startswith("not experienced: ")
            ],
            "characteristics_how": self.characteristics_how_,
            "not_estimated": self.dropped_,
            "warnings": self.warnings_,
            "filters": self.filters,
            "touchpoints": recs,
        }
