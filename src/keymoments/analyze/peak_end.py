"""Peak-end memory: do customers remember the average, or the most intense moment and the ending?

Per journey (one Ibis group-by over the rated events): the mean valence, the most negative and most positive
moment, the *peak* (the most intense moment: the largest ``|valence|``, with its sign; a low wins a tie), the *end*
(the last rated moment) and the *peak-end score* ``(peak + end) / 2`` (Kahneman's rule). When the outcome is keyed by
customer, each number is averaged over the customer's journeys.

Then each memory model predicts the outcome out of sample (k-fold cross-validated predictions; a logistic
regression for a yes/no outcome scored by AUC, a linear one for a number scored by R²):

* ``mean``, ``end``, ``peak``, ``peak_end``: one score each;
* ``fitted``: the weights of mean, most negative, most positive and end learnt from the data.

Each score has a percentile bootstrap CI over customers. ``best`` is the simplest model (in the order above)
whose paired bootstrap difference from the top-scoring model includes zero: the simplest model not
significantly worse than the best one.

**Filters** (``segment``, ``channel``, ``since``, ``until``; see :mod:`keymoments.analyze.filters`) narrow the
rated events each journey's memory is built from: with ``channel="web"`` it is the memory of the web moments
(their peak and their last one), with a date range the moments in that range (a journey cut by the range ends
at its last moment inside it). The outcome is per customer or journey and is not filtered, but a customer with
no rated event left drops out.
"""

from __future__ import annotations

import warnings
from typing import Any, Unpack

import numpy as np
import pandas as pd

from keymoments.analyze.base import Analysis, check_choice, no_outcomes, warn_small_sample
from keymoments.analyze.filters import EventFilters, FilterParams
from keymoments.analyze.order import events_table, journey_key, time_order
from keymoments.analyze.sample import FitSample, fit_limit, stratified_sample
from keymoments.exceptions import InvalidParameterError, KeymomentsWarning, NotEnoughDataError

__all__ = ["MODELS", "PeakEnd", "auc", "fit_outcome_frame", "journey_memory", "outcome_frame", "r2"]

#: memory models, simplest first, with the per-journey features each one uses
MODELS: dict[str, list[str]] = {
    "mean": ["mean"],
    "end": ["end"],
    "peak": ["peak"],
    "peak_end": ["peak_end"],
    "fitted": ["mean", "most_negative", "most_positive", "end"],
}


def journey_memory(data: Any) -> pd.DataFrame:
    """Per journey: customer_id, journey_id, n_rated, mean, most_negative, most_positive, peak, end, peak_end."""
    t = events_table(data)
    if "valence" not in t.columns:
        raise NotEnoughDataError("The events have no valence; score them first (ratings or text).")
    t = t.filter(t.valence.notnull())
    t = t.mutate(_jid=journey_key(t))
    j = t.group_by("_jid").aggregate(
        customer_id=t.customer_id.arbitrary(),
        n_rated=t.count(),
        mean=t.valence.mean(),
        most_negative=t.valence.min(),
        most_positive=t.valence.max(),
        end=t.valence.argmax(t.step),  # step is unique within a journey (ties in ts kept in source order)
    ).execute()
    j = j.sort_values("_jid", kind="stable").reset_index(drop=True)  # seeded CV and bootstraps need one order
    j = j.rename(columns={"_jid": "journey_id"})
    # the most intense moment; a tie between a low and an equally strong high is the low (pits weigh more),
    # so every engine picks the same one (an argmax over |valence| would pick either)
    lo, hi = j["most_negative"].to_numpy(dtype=float), j["most_positive"].to_numpy(dtype=float)
    j["peak"] = np.where(-lo >= hi, lo, hi)
    j["peak_end"] = (j["peak"] + j["end"]) / 2
    return j


def outcome_frame(data: Any, outcome: str, outcomes: pd.DataFrame | None, owner: str) -> tuple[pd.DataFrame, str, bool]:
    """(the outcome table, its key column, whether it is yes/no) from the store or a given frame."""
    out, key, binary, _ = fit_outcome_frame(data, outcome, outcomes, owner)
    return out, key, binary


def fit_outcome_frame(
    data: Any, outcome: str, outcomes: pd.DataFrame | None, owner: str, limit: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, str, bool, FitSample | None]:
    """:func:`outcome_frame`, of a stratified sample of the units when more than ``limit`` have the outcome
    (:mod:`keymoments.analyze.sample`), and the sample (None: every unit)."""
    from keymoments.store.store import Store

    if outcomes is None:
        if not isinstance(data, Store):
            raise InvalidParameterError(f"{owner} needs outcomes: pass a Store, or fit(events, outcomes=frame).")
        defs = data.outcome_names()
        if not defs:
            raise no_outcomes(owner, outcome)
        check_choice(owner, "outcome", outcome, list(defs))
        key, dtype = defs[outcome]
        sample = None if limit is None else stratified_sample(data, key, outcome, limit, seed)
        out = data.outcomes_wide([outcome], key_kind=key) if sample is None else sample.frame
        return out, key, dtype == "bool", sample
    key = "journey_id" if "journey_id" in outcomes.columns and "customer_id" not in outcomes.columns else "customer_id"
    check_choice(owner, "outcome", outcome, [c for c in outcomes.columns if c != key])
    col = outcomes[outcome]
    binary = bool(pd.api.types.is_bool_dtype(col) or set(pd.unique(col.dropna())) <= {0, 1})
    out = outcomes[[key, outcome]].copy()
    out[outcome] = out[outcome].astype(float)
    out[key] = out[key].astype(str)
    sample = None if limit is None else stratified_sample(out, key, outcome, limit, seed)
    return (out if sample is None else sample.frame), key, binary, sample


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank sum (ties get mid-ranks), as sklearn computes it."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """Coefficient of determination of predictions ``p`` (out of sample, so it can be negative)."""
    ss = float(((y - y.mean()) ** 2).sum())
    return float(1 - ((y - p) ** 2).sum() / ss) if ss > 0 else float("nan")


def _metric(binary: bool):  # noqa: ANN202
    return auc if binary else r2


class PeakEnd(EventFilters, Analysis):
    """Which memory model predicts the outcome best: mean, end, peak, peak-end or a fitted weighting.

    ``segment``, ``channel``, ``since``, ``until`` narrow the moments remembered (see the module docstring);
    ``max_fit_customers``: above this many units with the outcome, fit on a stratified sample of this many
    (default ``KM_MAX_FIT_CUSTOMERS``, 2M; :mod:`keymoments.analyze.sample`)."""

    title = "Peak-end memory"

    def __init__(
        self,
        outcome: str,
        *,
        folds: int = 5,
        n_boot: int = 300,
        level: float = 0.95,
        seed: int = 0,
        max_fit_customers: int | None = None,
        **filters: Unpack[FilterParams],
    ) -> None:
        self.outcome = outcome
        self.max_fit_customers = max_fit_customers
        self.folds = folds
        self.n_boot = n_boot
        self.level = level
        self.seed = seed
        self._set_filters(filters)

    def fit(self, data: Any, outcomes: pd.DataFrame | None = None) -> PeakEnd:
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

        if not isinstance(self.folds, int) or self.folds < 2:
            raise InvalidParameterError(f"The 'folds' parameter of PeakEnd must be an int >= 2. Got {self.folds!r} instead.")
        events = self._events(data)
        limit = fit_limit(self.max_fit_customers, "PeakEnd")
        out, key, binary, sample = fit_outcome_frame(data, self.outcome, outcomes, "PeakEnd", limit, self.seed)
        self.warnings_: list[str] = []
        if sample is not None:  # only the drawn units' journeys are remembered and reach the driver
            self.warnings_.append(sample.warning)
            warnings.warn(sample.warning, KeymomentsWarning, stacklevel=2)
            events = sample.restrict(events, journey_key(events) if key == "journey_id" else events.customer_id)
        j = journey_memory(events)
        if j.empty:
            raise NotEnoughDataError(
                "Peak-end has no valence to remember: "
                + ("no rated event is left after the filters; loosen them." if self.filters else
                   "no event has a rating or scored text. It needs one per moment (load a rating or text column "
                   "with the events); on purchases alone, `keymoments moments` shows which touchpoints and "
                   "milestones predict the outcome.")
            )  # fmt: skip
        timing = time_order(data)
        if not timing.ordered:
            raise NotEnoughDataError(
                f"Peak-end does not apply to this data: {timing.reason}, so there is "
                "no ending to remember. It needs each moment at its own time; `keymoments moments` ranks the "
                "touchpoints of a survey."
            )
        feats = ["mean", "most_negative", "most_positive", "peak", "end", "peak_end"]
        per = j.groupby(key)[feats].mean() if key == "customer_id" else j.set_index("journey_id")[feats]
        df = per.join(out.set_index(key)[self.outcome], how="inner").dropna()
        n = len(df)
        y = df[self.outcome].to_numpy(dtype=float)
        if n < 2 * self.folds or (binary and min(y.sum(), n - y.sum()) < self.folds):
            raise NotEnoughDataError(
                f"PeakEnd needs at least {2 * self.folds} {key}s with both rated events and the outcome "
                f"{self.outcome!r} (and both classes for a yes/no outcome); found {n}."
            )
        warn_small_sample(f"Peak-end on {self.outcome!r}", n, 100)
        if binary:
            cv = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
            model, method = LogisticRegression(max_iter=1000), "predict_proba"
        else:
            cv = KFold(self.folds, shuffle=True, random_state=self.seed)
            model, method = LinearRegression(), "predict"
        preds = {}
        for name, cols in MODELS.items():
            p = cross_val_predict(model, df[cols].to_numpy(), y.astype(int) if binary else y, cv=cv, method=method)
            preds[name] = p[:, 1] if binary else p
        metric = _metric(binary)
        scores = {m: float(metric(y, p)) for m, p in preds.items()}
        rng = np.random.default_rng(self.seed)
        boots = {m: [] for m in MODELS}
        done = 0
        while done < self.n_boot:
            idx = rng.integers(0, n, n)
            if binary and (y[idx].min() == y[idx].max()):
                continue
            for m, p in preds.items():
                boots[m].append(metric(y[idx], p[idx]))
            done += 1
        b = {m: np.asarray(v) for m, v in boots.items()}
        a = (1 - self.level) / 2
        top = max(scores, key=lambda m: scores[m])
        rows = []
        for m in MODELS:
            diff = b[top] - b[m]
            rows.append({
                "name": m, "score": scores[m], "ci_low": float(np.quantile(b[m], a)),
                "ci_high": float(np.quantile(b[m], 1 - a)), "n": n,
                "gap_to_top": scores[top] - scores[m],
                "gap_ci_low": float(np.quantile(diff, a)), "gap_ci_high": float(np.quantile(diff, 1 - a)),
                "features": ", ".join(MODELS[m]),
            })  # fmt: skip
        models = pd.DataFrame(rows)
        best = next(r["name"] for r in rows if r["name"] == top or r["gap_ci_low"] <= 0)
        self.metric_ = "auc" if binary else "r2"
        self.models_ = models
        self.top_ = top
        self.best_ = best
        self.n_ = n
        self.key_ = key
        self.journeys_ = j
        mean_s, pe_s = scores["mean"], scores["peak_end"]
        self.verdict_ = (
            f"Peak-end ({pe_s:.3f}) predicts {self.outcome} better than the mean ({mean_s:.3f}) by {pe_s - mean_s:+.3f} "
            f"{self.metric_}" if pe_s > mean_s else
            f"The mean ({mean_s:.3f}) predicts {self.outcome} at least as well as peak-end ({pe_s:.3f})"
        ) + f"; best (simplest not significantly worse than the top, {top}): {best}."
        return self

    @property
    def summary(self) -> pd.DataFrame:
        self._check_fitted()
        return self.models_[["name", "score", "ci_low", "ci_high", "gap_to_top", "n", "features"]]

    def print_summary(self) -> None:
        from keymoments.cli.common import print_table

        self._check_fitted()
        print_table(self.summary, title=f"Peak-end memory: {self.outcome} ({self.metric_}, cross-validated)")
        print(self.verdict_)

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "outcome": self.outcome,
            "metric": self.metric_,
            "n": self.n_,
            "models": self.models_[["name", "score", "ci_low", "ci_high", "gap_to_top", "n"]].to_dict(orient="records"),
            "best": self.best_,
            "top": self.top_,
            "verdict": self.verdict_,
            "filters": self.filters,
            **({"warnings": self.warnings_} if getattr(self, "warnings_", None) else {}),
        }

    def figure(self) -> Any:
        from keymoments.analyze.charts import peak_end_figure

        self._check_fitted()
        return peak_end_figure(self.models_, self.metric_)
