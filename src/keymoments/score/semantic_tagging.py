"""Zero-shot touchpoint tagging by meaning: texts go to the touchpoints whose descriptions they are closest to.

:class:`SemanticTagger` implements the :class:`~keymoments.score.tagging.Tagger` interface with the full
6-layer all-MiniLM-L6-v2 (trained for semantic similarity). How it decides:

1. Each touchpoint gets a prototype: the embedding of ``"<name>: <description>"``; when the journey model gives
   labelled ``examples``, their mean embedding is blended in (weight ``n / (n + 2)`` for n examples, so a few
   examples refine the description and many take over). Prototypes are re-normalised to unit length.
2. A text's score for a touchpoint is the cosine similarity of its embedding with the prototype.
3. The best touchpoint wins when its score reaches ``threshold`` (0.25 by default; unrelated text scores about
   0.0-0.2 with MiniLM); otherwise the answer is :data:`~keymoments.score.tagging.OTHER`. Every touchpoint
   within ``margin`` (0.04) of the best and above the threshold is also listed in ``labels`` (multi-label: "lost
   my bag *and* missed the connection").
4. Confidence: the softmax weight of the best touchpoint over all touchpoints and "other" (whose score is the
   threshold) at temperature 0.05; 0 for "other" and blank texts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keymoments.events import JourneyModel
from keymoments.exceptions import ConfigError
from keymoments.score.tagging import OTHER, TouchpointTags

__all__ = ["SemanticTagger", "SemanticTouchpointTags"]


@dataclass
class SemanticTouchpointTags(TouchpointTags):
    """TouchpointTags plus, per text, every touchpoint that fits (multi-label; empty for other/blank)."""

    labels: list[tuple[str, ...]] = field(default_factory=list)


class SemanticTagger:
    """Tag texts with the journey's touchpoints by embedding similarity (see the module)."""

    name = "semantic-minilm"

    def __init__(self, journey: JourneyModel, *, threshold: float = 0.25, margin: float = 0.04, temperature: float = 0.05, encoder=None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"The 'threshold' parameter of SemanticTagger must be in [0, 1]. Got {threshold!r} instead.")
        if not journey.touchpoints:
            raise ConfigError("The journey model has no touchpoints to tag text with; add some to journey.yaml.")
        self.journey = journey
        self.threshold = threshold
        self.margin = margin
        self.temperature = temperature
        if encoder is None:
            from keymoments.score.embed import default_encoder  # noqa: PLC0415

            encoder = default_encoder()
        self.encoder_ = encoder
        self._lock = threading.Lock()
        self._fit()

    def __repr__(self) -> str:
        return f"SemanticTagger({len(self.touchpoints_)} touchpoints, threshold={self.threshold})"

    def _fit(self) -> None:
        tps = self.journey.touchpoints
        docs = [f"{tp.name.replace('_', ' ').replace('-', ' ')}: {tp.description}".strip(" :") for tp in tps]
        with self._lock:
            desc = self.encoder_.encode(docs)
            protos = desc.copy()
            for j, tp in enumerate(tps):
                if tp.examples:
                    ex = self.encoder_.encode(list(tp.examples)).mean(axis=0)
                    w = len(tp.examples) / (len(tp.examples) + 2.0)
                    protos[j] = (1 - w) * desc[j] + w * ex / max(np.linalg.norm(ex), 1e-12)
        protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
        self.touchpoints_ = tuple(tp.name for tp in tps)
        self.prototypes_ = protos.astype(np.float32)

    def tag(self, texts: Iterable[Any]) -> SemanticTouchpointTags:
        """Tag a batch of texts; blank or missing texts get touchpoint None and confidence 0.

        ``confidence`` of a tagged text is ``softmax([s_1..s_k, threshold] / temperature)`` at the best
        touchpoint: high when one touchpoint clearly beats both the others and "other".
        """
        items = list(texts)
        n, k = len(items), len(self.touchpoints_)
        blank = np.array([not (isinstance(t, str) and t.strip()) for t in items], dtype=bool)
        with self._lock:
            emb = self.encoder_.encode([t if isinstance(t, str) else "" for t in items]) if n else np.zeros((0, self.prototypes_.shape[1]))
        scores = np.clip(emb @ self.prototypes_.T, -1.0, 1.0).reshape(n, k)
        best_j = np.argmax(scores, axis=1) if n else np.zeros(0, dtype=int)
        best = scores[np.arange(n), best_j] if n else np.zeros(0)
        hit = (best >= self.threshold) & ~blank
        z = np.concatenate([scores, np.full((n, 1), self.threshold)], axis=1) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        confidence = np.where(hit, soft[np.arange(n), best_j] if n else 0.0, 0.0)
        names = np.array(self.touchpoints_, dtype=object)
        touchpoint = np.where(hit, names[best_j] if n else names[:0], OTHER).astype(object)
        touchpoint[blank] = None
        labels: list[tuple[str, ...]] = []
        for i in range(n):
            if not hit[i]:
                labels.append(())
                continue
            close = np.where((scores[i] >= self.threshold) & (scores[i] >= best[i] - self.margin))[0]
            labels.append(tuple(names[j] for j in close[np.argsort(-scores[i, close], kind="stable")]))
        return SemanticTouchpointTags(touchpoint, confidence, scores, self.touchpoints_, labels)
