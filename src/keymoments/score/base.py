"""The text-scorer interface every text model implements, so a better model drops in.

A scorer turns a batch of texts into valence in [-1, 1], a confidence in [0, 1] and a sentiment label.
Implementations: :class:`keymoments.score.lexicon.LexiconScorer` (VADER, fast fallback) and, later, semantic
models. ``get_scorer(name)`` picks one by name; ``"auto"`` picks the best one that is available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["SENTIMENTS", "TextScorer", "TextScores", "sentiment_from_valence"]

#: Sentiment labels, in this order wherever probabilities are given.
SENTIMENTS: tuple[str, str, str] = ("negative", "neutral", "positive")


@dataclass
class TextScores:
    """Scores for a batch of n texts (arrays of length n; empty or missing texts get valence 0, confidence 0)."""

    valence: np.ndarray  # float, in [-1, 1]
    confidence: np.ndarray  # float, in [0, 1]
    sentiment: np.ndarray  # object array of labels from SENTIMENTS
    probabilities: np.ndarray | None = None  # (n, 3) in SENTIMENTS order, when the model gives them
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. emotions, touchpoint tags

    def __len__(self) -> int:
        return len(self.valence)


@runtime_checkable
class TextScorer(Protocol):
    """What every text model provides."""

    #: a short stable name, stored with each score (e.g. "lexicon-vader")
    name: str

    def score(self, texts: list[str | None]) -> TextScores:
        """Score a batch of texts; None or blank texts get valence 0 and confidence 0."""
        ...


def sentiment_from_valence(valence: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """VADER's convention: ``positive`` at or above +threshold, ``negative`` at or below -threshold, else
    ``neutral``; a NaN valence (nothing to judge) gives None.

    >>> sentiment_from_valence(np.array([-0.5, -0.05, 0.0, 0.05, np.nan])).tolist()
    ['negative', 'negative', 'neutral', 'positive', None]
    """
    valence = np.asarray(valence, dtype=float)
    out = np.full(len(valence), "neutral", dtype=object)
    out[valence >= threshold] = "positive"
    out[valence <= -threshold] = "negative"
    out[np.isnan(valence)] = None
    return out
