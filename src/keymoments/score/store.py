"""Score the text of the store's events and fuse it with their ratings (valence, confidence, source); give the
events that came without a touchpoint one from their text; learn the store's own text model from its ratings.

``auto`` scores a store's text with the model :func:`learn_store_text` learnt from it (saved beside the store
file), when that model beat the general one in cross-validation; else with the best installed model.

Each scored text's emotions (see :mod:`keymoments.score.emotions`) are kept in ``text_scores.tags``
(``{"emotion": "anger", "emotion_anger": 0.83, …}``); an inferred touchpoint adds ``touchpoint``,
``touchpoint_confidence`` and ``touchpoint_inferred: true`` there.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import RATING_CONFIDENCE, JourneyModel, Touchpoint
from keymoments.exceptions import KeymomentsWarning
from keymoments.present import progress_task
from keymoments.score.base import TextScorer, TextScores
from keymoments.score.corrections import Refit, cache_tagged, refit
from keymoments.score.emotions import EMOTIONS, emotions_of
from keymoments.score.fusion import fuse
from keymoments.score.registry import resolve_scorer
from keymoments.score.semantic_tagging import SemanticTagger
from keymoments.score.tagging import OTHER, Tagger, make_tagger
from keymoments.store.scores import (
    touchpoint_examples,
    unscored_count,
    unscored_text,
    untagged_count,
    untagged_text,
    write_inferred_touchpoints,
    write_text_scores,
)
from keymoments.store.store import Store

__all__ = [
    "EXAMPLES_PER_TOUCHPOINT", "backfill_texts", "learn_store_text", "learnt_model_path", "score_store", "store_journey", "tag_store",
]

#: how many of a touchpoint's own event texts :func:`store_journey` gives the tagger as labelled examples
EXAMPLES_PER_TOUCHPOINT = 200


def score_store(
    store: Store,
    *,
    scorer: str | TextScorer | None = "auto",
    rescore: bool = False,
    unrated: bool = False,
    batch_size: int = 20_000,
) -> int:
    """Score every event whose text is not scored yet (every one with ``rescore``; only events without a rating
    with ``unrated``); return how many were scored.

    Each event's valence becomes the confidence-weighted fusion of its rating and its text
    (:func:`keymoments.score.fusion.fuse`); the text model's own reading is kept in ``text_scores``.
    """
    model = _learnt_model(store) if scorer in (None, "auto") else None
    model = model or resolve_scorer(scorer)
    todo = unscored_count(store, rescore=rescore, unrated=unrated)
    if not todo:
        return 0
    with progress_task(f"scoring the text of {todo:,} events", total=todo) as task:
        return _score_batches(store, model, task, rescore=rescore, unrated=unrated, batch_size=batch_size)


def _score_batches(store: Store, model: TextScorer, task: Any, *, rescore: bool, unrated: bool, batch_size: int) -> int:
    total, after = 0, -1
    while True:
        batch = unscored_text(store, limit=batch_size, rescore=rescore, after_seq=after, unrated=unrated)
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
        emotions = emotions_of(list(uniques), once)
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
        if emotions is not None:
            names = ("emotion", *(f"emotion_{e}" for e in EMOTIONS))
            per_text = [json.dumps({k: _plain(emotions[k][i]) for k in names}) for i in range(len(uniques))]
            batch["tags"] = np.asarray(per_text, dtype=object)[codes]
        write_text_scores(store, batch, model.name)
        total += len(batch)
        task.advance(len(batch))
        after = int(batch["seq"].max())


def _plain(value: object) -> object:
    """A numpy scalar as a JSON-ready Python value (floats rounded to 4 places)."""
    return round(float(value), 4) if isinstance(value, (float, np.floating)) else value


def store_journey(store: Store) -> JourneyModel | None:
    """A journey model made from the store itself, for tagging when the user gives none: its touchpoints in
    journey order, each with up to :data:`EXAMPLES_PER_TOUCHPOINT` of its own events' texts as labelled
    examples (the business's rated and placed feedback teaches the tagger). None when no event has a touchpoint."""
    rows = touchpoint_examples(store, per_touchpoint=EXAMPLES_PER_TOUCHPOINT)
    if rows.empty:
        return None
    touchpoints = []
    for name, group in rows.groupby("touchpoint", sort=False):
        texts = [t for t in group["text"].tolist() if isinstance(t, str) and t.strip()]
        touchpoints.append(Touchpoint.model_validate({"name": str(name), "examples": texts}))
    return JourneyModel.model_validate({"name": "from the store", "touchpoints": touchpoints})


def tag_store(
    store: Store, journey: JourneyModel | None = None, *, tagger: Tagger | None = None, batch_size: int = 20_000
) -> int:
    """Give every event that came without a touchpoint one from its text; return how many got one.

    The tagger is ``tagger``, else :func:`~keymoments.score.tagging.make_tagger` on ``journey`` (else on
    :func:`store_journey`), calibrated on the texts it tags. A text that fits no touchpoint gets
    :data:`~keymoments.score.tagging.OTHER`, so the event still counts in the journey map. The journeys the
    events belong to are re-derived (the previous event's next touchpoint changes). Nothing to tag, or no
    touchpoint to tag with: 0.
    """
    todo = untagged_count(store)
    if not todo:
        return 0
    with progress_task(f"tagging the touchpoint of {todo:,} events", total=todo) as task:
        n = _tag_batches(store, journey, tagger, task, batch_size)
    if n and store.count("text_corrections"):  # what the analyst taught applies to the new texts too
        refit(store)
    return n


def backfill_texts(store: Store, journey: JourneyModel | None = None, *, batch_size: int = 5_000) -> Refit | None:
    """Make every text the tagger tagged correctable: encode the texts it tagged without caching a vector (the
    word-list tagger's, or texts tagged before the cache existed), cache their vectors and zero-shot priors in
    batches (with progress), then refit on the corrections so far, which re-tags them with the semantic tagger's
    answer. ``journey``: the one the texts were tagged with (else :func:`store_journey`); its touchpoints must be
    those of the texts already cached. Returns what the refit did, or None when there was nothing to add.

    Raises ConfigError when the semantic encoder is not installed or the journey's touchpoints differ from the
    cached texts' (a cache over other classes would be dropped)."""
    from keymoments.exceptions import ConfigError  # noqa: PLC0415
    from keymoments.store import texts as sql  # noqa: PLC0415

    todo = sql.unlisted_count(store)[1]
    if not todo:
        return None
    model = journey if journey is not None else store_journey(store)
    if model is None:
        raise ConfigError("No journey to tag with: pass the journey the texts were tagged with (--journey).")
    first = sql.unlisted_events(store, limit=batch_size)
    tagger = make_tagger(model, "auto", reference=first["text"].tolist())
    if not isinstance(tagger, SemanticTagger):
        raise ConfigError("Listing these texts needs the semantic encoder, which is not installed: "
                          "pip install 'keymoments[text]'.")  # fmt: skip
    cur = store.cursor()
    try:
        cached = sql.tagger_classes(cur)
    finally:
        cur.close()
    classes = [*tagger.touchpoints_, OTHER]
    if cached is not None and cached != classes:
        raise ConfigError(f"The texts already listed were tagged over {cached}; this journey's are {classes}. "
                          "Pass the journey they were tagged with (--journey).")  # fmt: skip
    after = -1
    with progress_task(f"encoding {todo:,} tagged texts for the texts page", total=todo) as task:
        while True:
            batch = first if after < 0 else sql.unlisted_events(store, limit=batch_size, after_seq=after)
            if batch.empty:
                break
            texts = batch["text"].tolist()
            emb = tagger.encode(texts)
            with store.write() as con:
                cache_tagged(con, tagger, texts, batch["event_id"].tolist(), emb, tagger.tag_encoded(texts, emb))
            task.advance(len(batch))
            after = int(batch["seq"].max())
    return refit(store)  # the tag in force for them, and their events follow it


def _tag_batches(store: Store, journey: JourneyModel | None, tagger: Tagger | None, task: Any, batch_size: int) -> int:
    total, after = 0, -1
    while True:
        batch = untagged_text(store, limit=batch_size, after_seq=after)
        if batch.empty:
            return total
        if tagger is None:
            model = journey if journey is not None else store_journey(store)
            if model is None:
                return 0
            tagger = make_tagger(model, reference=batch["text"].tolist())
        texts = batch["text"].tolist()
        semantic = isinstance(tagger, SemanticTagger)
        emb = tagger.encode(texts) if semantic else None
        tags = tagger.tag_encoded(texts, emb) if semantic else tagger.tag(texts)
        batch = batch.assign(
            touchpoint=tags.touchpoint,
            tags=[json.dumps({"touchpoint": t, "touchpoint_confidence": round(float(c), 4), "touchpoint_inferred": True})
                  for t, c in zip(tags.touchpoint, tags.confidence, strict=True)],
        )  # fmt: skip
        with store.transaction() as con:  # the tags and what the tagger learns from later commit together
            total += write_inferred_touchpoints(store, batch)
            if semantic:
                cache_tagged(con, tagger, texts, batch["event_id"].tolist(), emb, tags)
        task.advance(len(batch))
        after = int(batch["seq"].max())


def learnt_model_path(store: Store) -> Path | None:
    """Where :func:`learn_store_text`'s model of this store lives: ``<db>.text-model.npz`` beside the store
    file (None for an in-memory store)."""
    if store.path == ":memory:":
        return None
    path = Path(store.path)
    return path.with_name(f"{path.stem}.text-model.npz")


def _learnt_model(store: Store) -> TextScorer | None:
    """The store's learnt text model, when there is one that beat the general model in cross-validation: what
    ``auto`` scores this store's text with from then on."""
    path = learnt_model_path(store)
    if path is None or not path.is_file():
        return None
    from keymoments.score.domain import DomainTextModel  # noqa: PLC0415

    try:
        model = DomainTextModel.load(path)
    except Exception as exc:  # noqa: BLE001 - a damaged side file must not stop scoring
        warnings.warn(
            f"Cannot read the store's learnt text model {str(path)!r} ({type(exc).__name__}); scoring with the "
            "general model. Run `keymoments learn-text` again to rebuild it.",
            KeymomentsWarning,
            stacklevel=3,
        )
        return None
    return model if not model.cv_.empty and model.gain_ > 0 else None


def learn_store_text(store: Store, *, apply: bool = True) -> tuple[Any, int]:
    """Fit a text model on the store's own rated text (:func:`keymoments.score.domain.fit_store_model`), save it
    at :func:`learnt_model_path` and, with ``apply`` and when it beats the general model in cross-validation,
    rescore the text of the events without a rating with it (rated events keep their score); from then on
    ``auto`` scores this store's new text with it. Returns ``(model, events rescored)``."""
    from keymoments.score.domain import fit_store_model  # noqa: PLC0415

    with progress_task("learning the store's text model"):
        model = fit_store_model(store)
    path = learnt_model_path(store)
    if path is not None:
        model.save(path)
    rescored = score_store(store, scorer=model, rescore=True, unrated=True) if apply and model.gain_ > 0 else 0
    return model, rescored
