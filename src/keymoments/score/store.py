"""Score the text of the store's events and fuse it with their ratings (valence, confidence, source)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from keymoments.events import RATING_CONFIDENCE
from keymoments.score.base import TextScorer, TextScores
from keymoments.score.fusion import fuse
from keymoments.score.registry import resolve_scorer
from keymoments.store.scores import unscored_text, write_text_scores
from keymoments.store.store import Store

__all__ = ["score_store"]


def score_store(
    store: Store, *, scorer: str | TextScorer | None = "auto", rescore: bool = False, batch_size: int = 20_000
) -> int:
    """Score every event whose text is not scored yet; return how many were scored.

    Each event's valence becomes the confidence-weighted fusion of its rating and its text
    (:func:`keymoments.score.fusion.fuse`); the text model's own reading is kept in ``text_scores``.
    """
    model = resolve_scorer(scorer)
    total, after = 0, -1
    while True:
        batch = unscored_text(store, limit=batch_size, rescore=rescore, after_seq=after)
        if batch.empty:
            return total
        # identical texts are scored once (templated messages, "thanks", survey boilerplate repeat a lot)
        codes, uniques = pd.factorize(batch["text"], sort=False)
        once = model.score(list(uniques))
        scores = TextScores(
            valence=np.asarray(once.valence)[codes],
            confidence=np.asarray(once.confidence)[codes],
            sentiment=np.asarray(once.sentiment, dtype=object)[codes],
        )
        rv = batch["rating_valence"].to_numpy(dtype=float)
        rc = np.where(np.isnan(rv), 0.0, RATING_CONFIDENCE)
        valence, confidence, source = fuse(rv, rc, scores.valence, scores.confidence)
        batch = batch.assign(
            text_valence=scores.valence,
            text_confidence=scores.confidence,
            sentiment=scores.sentiment,
            valence=valence,
            confidence=confidence,
            valence_source=source,
        )
        write_text_scores(store, batch, model.name)
        total += len(batch)
        after = int(batch["seq"].max())
