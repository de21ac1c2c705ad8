"""Learn a business's own language from its rated feedback, then score its unrated text with it.

Most feedback stores hold text *with* a rating (a review with its stars, a survey comment with its CSAT). The
rating is a label the business already paid for: :func:`fit_domain_model` turns each rating into a valence
(any scale of :data:`keymoments.events.RATING_SCALES`, or valences directly), the valence into a class
(negative below ``-neutral_band``, positive above ``+neutral_band``, neutral between; 0.25 by default, so on a
5-star scale 1-2 are negative, 3 neutral, 4-5 positive), and fits a three-class multinomial logistic head on
the MiniLM embeddings of the texts, with balanced class weights (complaints usually outnumber praise). A text of
more than 40 words is read whole: its vector is the weighted mean of its sentences' vectors
(:meth:`~keymoments.score.semantic.SemanticScorer.text_vectors`), not the encoder's first 128 word pieces.

Before anyone trusts it, it says how good it is: ``cv_`` holds the stratified k-fold cross-validated macro-F1 and
accuracy of the domain head, next to the same figures for the general shipped head on the same texts (which
never saw them, long texts pooled from their sentences as the general scorer does), so ``summary`` shows the gain (or loss: with few or inconsistent ratings, keep the general
model). The fitted model is a :class:`~keymoments.score.base.TextScorer` named ``"semantic-domain"``; save it
with :meth:`DomainTextModel.save` and load it with :meth:`DomainTextModel.load`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from keymoments.events import rating_to_valence
from keymoments.exceptions import ConfigError, NotEnoughDataError, SmallSampleWarning
from keymoments.score.base import SENTIMENTS, TextScores
from keymoments.score.heads import SoftmaxHead, load_heads, save_heads
from keymoments.score.language import warn_if_not_english
from keymoments.score.semantic import SemanticScorer, _blank, scores_from_proba

__all__ = ["DomainTextModel", "fit_domain_model", "fit_store_model", "valence_to_class"]

#: Fewer rated texts than this per class gives a SmallSampleWarning.
MIN_PER_CLASS = 20


def valence_to_class(valence: np.ndarray, neutral_band: float = 0.25) -> np.ndarray:
    """0 = negative (< -band), 1 = neutral, 2 = positive (> +band)."""
    v = np.asarray(valence, dtype=float)
    return np.where(v > neutral_band, 2, np.where(v < -neutral_band, 0, 1))


class DomainTextModel:
    """A sentiment head fitted on one business's rated text (see the module); a TextScorer once fitted.

    Parameters: ``depth`` of the encoder (as :class:`~keymoments.score.semantic.SemanticScorer`), ``c`` the
    inverse L2 strength, ``neutral_band`` for mapping valence to classes, ``cv`` folds, ``seed``.
    """

    name = "semantic-domain"

    def __init__(self, depth: str = "balanced", *, c: float = 1.0, neutral_band: float = 0.25, cv: int = 5, seed: int = 0) -> None:
        self.depth = depth
        self.c = c
        self.neutral_band = neutral_band
        self.cv = cv
        self.seed = seed
        self._general: SemanticScorer | None = None

    def __repr__(self) -> str:
        fitted = f", n={self.n_}" if hasattr(self, "n_") else ", unfitted"
        return f"DomainTextModel(depth={self.depth!r}{fitted})"

    @property
    def general(self) -> SemanticScorer:
        if self._general is None:
            self._general = SemanticScorer(self.depth, emotions=False)
        return self._general

    # --- fitting ---------------------------------------------------------------------------------------------

    def fit(self, texts: list[str | None], ratings, scale: str = "valence", *, embeddings: np.ndarray | None = None) -> DomainTextModel:
        """Fit on rated texts; ``ratings`` on ``scale`` (default: valences in [-1, 1]). Returns self."""
        texts = list(texts)
        ratings = np.asarray(ratings, dtype=float)
        if len(texts) != len(ratings):
            raise ConfigError(f"fit_domain_model needs one rating per text; got {len(texts)} texts and {len(ratings)} ratings.")
        if not 0.0 <= self.neutral_band < 1.0:
            raise ConfigError(f"The 'neutral_band' parameter of DomainTextModel must be in [0, 1). Got {self.neutral_band!r} instead.")
        keep = ~_blank(texts) & ~np.isnan(ratings)
        valence = np.array([rating_to_valence(r, scale) for r in ratings[keep]])
        y = valence_to_class(valence, self.neutral_band)
        counts = np.bincount(y, minlength=3)
        if (counts > 0).sum() < 2:
            raise NotEnoughDataError(
                f"A domain text model needs rated texts of at least two sentiments; got counts {dict(zip(SENTIMENTS, counts.tolist(), strict=False))}."
            )
        folds = int(min(self.cv, counts[counts > 0].min()))
        if folds < 2:
            raise NotEnoughDataError(
                f"A domain text model needs at least 2 rated texts of each sentiment present to cross-validate; got {dict(zip(SENTIMENTS, counts.tolist(), strict=False))}."
            )
        if counts[counts > 0].min() < MIN_PER_CLASS:
            warnings.warn(
                f"Only {counts.tolist()} rated texts per sentiment (negative, neutral, positive); the domain model and its "
                f"cross-validated figures are unreliable below {MIN_PER_CLASS} per class.",
                SmallSampleWarning,
                stacklevel=2,
            )
        kept_texts = [t for t, k in zip(texts, keep, strict=False) if k]
        if embeddings is None:
            x = self.general.text_vectors(kept_texts)
            # the short texts' vectors are the general scorer's own: its answers reuse them (long ones are pooled
            # from their sentences' answers, as it scores them)
            general_proba = self.general.proba(kept_texts, embedded=dict(enumerate(x)))
        else:
            x = np.asarray(embeddings, dtype=np.float32)[keep]
            general_proba = self.general.proba(kept_texts)
        self.cv_ = self._cross_validate(x, y, folds, general_proba)
        self.head_ = self._fit_head(x, y)
        self.head_.meta = {"n": int(len(y)), "counts": counts.tolist(), "depth": self.depth, "neutral_band": self.neutral_band}
        self.n_ = int(len(y))
        self.class_counts_ = dict(zip(SENTIMENTS, counts.tolist(), strict=False))
        return self

    def _fit_head(self, x: np.ndarray, y: np.ndarray) -> SoftmaxHead:
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        clf = LogisticRegression(C=self.c, max_iter=5000, class_weight="balanced", random_state=self.seed).fit(x, y)
        coef = np.zeros((3, x.shape[1]), dtype=np.float32)
        intercept = np.full(3, -30.0)  # a class never seen in the ratings is never predicted
        for row, cls in enumerate(clf.classes_):
            coef[cls] = clf.coef_[row] if len(clf.classes_) > 2 else (clf.coef_[0] if row == 1 else -clf.coef_[0]) / 2
            intercept[cls] = clf.intercept_[row] if len(clf.classes_) > 2 else (clf.intercept_[0] if row == 1 else -clf.intercept_[0]) / 2
        return SoftmaxHead(coef, intercept)

    def _cross_validate(self, x: np.ndarray, y: np.ndarray, folds: int, general_proba: np.ndarray) -> pd.DataFrame:
        """The domain head's k-fold figures beside the general scorer's answers (``general_proba``) on the same texts."""
        from sklearn.metrics import accuracy_score, f1_score  # noqa: PLC0415
        from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

        pred = np.zeros_like(y)
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(x, y):
            pred[test] = np.argmax(self._fit_head(x[train], y[train]).predict_proba(x[test]), axis=1)
        general = np.argmax(general_proba, axis=1)
        labels = sorted(set(y.tolist()))
        rows = []
        for model, p in (("general", general), ("domain (cv)", pred)):
            rows.append(
                {
                    "model": model,
                    "macro_f1": f1_score(y, p, labels=labels, average="macro", zero_division=0),
                    "accuracy": accuracy_score(y, p),
                    "n": int(len(y)),
                    "folds": folds if model != "general" else 0,
                }
            )
        return pd.DataFrame(rows).set_index("model")

    # --- results ---------------------------------------------------------------------------------------------

    @property
    def gain_(self) -> float:
        """Cross-validated macro-F1 of the domain head minus the general head's, on the business's rated text."""
        return float(self.cv_.loc["domain (cv)", "macro_f1"] - self.cv_.loc["general", "macro_f1"])

    @property
    def summary(self) -> pd.DataFrame:
        return self.cv_.round(3)

    def print_summary(self) -> None:
        print(f"{self!r}: classes {self.class_counts_}")
        print(self.summary.to_string())
        print(f"gain in macro-F1 over the general model: {self.gain_:+.3f}")

    def _repr_html_(self) -> str:
        return f"<p>{self!r}; gain in macro-F1 {self.gain_:+.3f}</p>" + self.summary.to_html()

    def to_dict(self) -> dict:
        return {"name": self.name, "depth": self.depth, "n": self.n_, "classes": self.class_counts_, "gain_macro_f1": self.gain_,
                "cv": self.cv_.reset_index().to_dict(orient="records")}

    # --- scoring ---------------------------------------------------------------------------------------------

    def predict_proba(self, texts: list[str | None], embeddings: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        x = self.general.text_vectors(list(texts)) if embeddings is None else embeddings
        return self.head_.predict_proba(x)

    def score(self, texts: list[str | None]) -> TextScores:
        self._check_fitted()
        texts = list(texts)
        warn_if_not_english(texts, self.name)
        blank = _blank(texts)
        out = scores_from_proba(self.predict_proba(texts) if texts else np.zeros((0, 3)), blank)
        from keymoments.score.emotions import detect_emotions  # noqa: PLC0415

        out.extra.update(detect_emotions(texts, out.probabilities))
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise ConfigError("This DomainTextModel is not fitted yet; call fit(texts, ratings) or fit_domain_model first.")

    # --- persistence -----------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        save_heads(path, {"domain": self.head_}, {"depth": self.depth, "neutral_band": self.neutral_band, "cv": json.loads(self.cv_.reset_index().to_json(orient="records"))})

    @classmethod
    def load(cls, path: str | Path) -> DomainTextModel:
        heads, meta = load_heads(path)
        if "domain" not in heads:
            raise ConfigError(f"{str(path)!r} holds no domain text model.")
        model = cls(meta.get("depth", "balanced"), neutral_band=meta.get("neutral_band", 0.25))
        model.head_ = heads["domain"]
        model.cv_ = pd.DataFrame(meta.get("cv", [])).set_index("model") if meta.get("cv") else pd.DataFrame()
        model.n_ = int(model.head_.meta.get("n", 0))
        model.class_counts_ = dict(zip(SENTIMENTS, model.head_.meta.get("counts", [0, 0, 0]), strict=False))
        return model


def fit_domain_model(texts: list[str | None], ratings, scale: str = "valence", *, depth: str = "balanced", **kwargs) -> DomainTextModel:
    """Fit a :class:`DomainTextModel` on a business's rated text and return it (see the module).

    ``ratings`` are on ``scale`` (one of the contract's rating scales; ``"valence"`` takes values in [-1, 1]).
    """
    return DomainTextModel(depth, **kwargs).fit(texts, ratings, scale)


def fit_store_model(store, *, depth: str = "balanced", **kwargs) -> DomainTextModel:  # noqa: ANN001
    """Fit a :class:`DomainTextModel` on the store's own rated text: every event with text and a rating, the
    rating (already mapped to [-1, 1] at ingest) as the label. Raises NotEnoughDataError when there is none."""
    from keymoments.store.scores import rated_text  # noqa: PLC0415

    rated = rated_text(store)
    if rated.empty:
        raise NotEnoughDataError(
            "The store has no events with both text and a rating to learn from. Ingest rated feedback (a review "
            "with its stars, a survey comment with its score) first, or keep the general text model."
        )
    return DomainTextModel(depth, **kwargs).fit(rated["text"].tolist(), rated["rating_valence"].to_numpy(), "valence")
