"""The store's tagger learns from the analyst's corrections: list the tagged texts (least certain first), correct
one, and the tagger refits and re-tags every text of the store at once.

When :func:`~keymoments.score.store.tag_store` tags texts with the semantic tagger it keeps, per distinct text,
its sentence vector and the zero-shot tagger's logits (``store/texts.py``). A refit
(:func:`refit`) is then the zero-shot prior plus what the corrections teach
(:class:`~keymoments.score.learning.CorrectionLearner`, the offset head), fitted on the corrected texts and
applied to every cached text without running the encoder; a corrected text keeps the touchpoint the analyst gave
it. The events whose touchpoint changed get it, their journeys are re-derived, and the correction and the re-tag
commit in one transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import did_you_mean
from keymoments.exceptions import ConflictError, InvalidParameterError, NotFoundError
from keymoments.score.learning import CorrectionLearner, margin, prior_logits, softmax
from keymoments.score.tagging import OTHER
from keymoments.store import texts as sql
from keymoments.store.store import Store

__all__ = ["ORDERS", "READ_ONLY", "UNLISTED_HINT", "Refit", "cache_tagged", "correct", "learner", "list_texts", "refit", "text_hash"]

ORDERS = ("uncertain", "confident", "recent")

#: What adds the texts a page cannot list (tagged by the word-list tagger, or before the vectors were cached).
UNLISTED_HINT = "`keymoments texts backfill --db FILE [--journey FILE]` encodes them and lists them here"

#: Why a read-only store takes no correction (``serve --workers N`` opens the DuckDB file read-only in every
#: process; the texts, their vectors and the corrections live in that file, not on PostgreSQL).
READ_ONLY = ("Corrections need a writable store: this store is open read-only (`keymoments serve --workers N` opens "
             "the DuckDB file read-only in every process, and the texts and their corrections live in that file, not "
             "on PostgreSQL). Run `keymoments serve` without --workers, or stop the server and use "
             "`keymoments texts tag ID TOUCHPOINT`.")  # fmt: skip


def learner() -> CorrectionLearner:
    """The learner the store's tagger refits with (chosen on design splits: ``docs/experiments.md``)."""
    return CorrectionLearner("offset", l2=0.05, bias_l2=1.0, select="mix")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Refit:
    """What a refit did: texts re-tagged from the cache, how many changed tag, events moved, corrections used."""

    texts: int
    changed: int
    events_moved: int
    corrections: int
    seconds: float
    changed_to: dict[str, int] = dataclasses.field(default_factory=dict)  # texts that changed tag, by their new tag


def cache_tagged(con: Any, tagger: Any, texts: list[str], event_ids: list[str], emb: np.ndarray, tags: Any) -> None:
    """Keep what a refit needs of texts the semantic tagger just tagged (inside the caller's transaction)."""
    keep = np.array([t is not None for t in tags.touchpoint], dtype=bool)
    if not keep.any():
        return
    classes = [*tagger.touchpoints_, OTHER]
    forced = (np.asarray(tags.touchpoint, dtype=object) == OTHER) & (tags.scores.max(axis=1) >= tagger.threshold)
    prior = prior_logits(tags.scores, forced, threshold=tagger.threshold, temperature=tagger.temperature)
    proba = softmax(prior)
    idx = np.flatnonzero(keep)
    hashes = [text_hash(texts[i]) for i in idx]
    frame = pd.DataFrame({
        "text_hash": hashes, "text": [texts[i] for i in idx],
        "vector": [emb[i].astype(np.float32).tobytes() for i in idx],
        "prior": [prior[i].astype(np.float32).tobytes() for i in idx],
        "touchpoint": [str(tags.touchpoint[i]) for i in idx],
        "confidence": proba[idx].max(axis=1), "margin": margin(proba[idx]),
    }).drop_duplicates("text_hash")  # fmt: skip
    sql.write_cache(con, classes, frame, pd.DataFrame({"event_id": [event_ids[i] for i in idx], "text_hash": hashes}))


def _retag(con: Any) -> Refit:
    """Refit on the corrections in force and re-tag every cached text (inside the caller's transaction)."""
    import time  # noqa: PLC0415

    t0 = time.perf_counter()
    cache = sql.load_cache(con)
    if cache is None or not len(cache):
        return Refit(0, 0, 0, 0, 0.0)
    index = {c: j for j, c in enumerate(cache.classes)}
    fixed = np.array([index.get(c, -1) if isinstance(c, str) else -1 for c in cache.corrected])
    model = learner().fit(cache.prior, cache.vectors, fixed)
    proba = model.predict_proba(cache.prior, cache.vectors)
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(len(best)), best]
    gap = margin(proba)
    done = fixed >= 0
    best[done], confidence[done], gap[done] = fixed[done], 1.0, 1.0  # what the analyst said stands
    names = np.array(cache.classes, dtype=object)[best]
    # every text, even one whose tag stays: an event that arrived since with a known text carries the zero-shot
    # tag, not the one in force
    frame = pd.DataFrame({"text_hash": cache.hashes, "touchpoint": names, "confidence": confidence, "margin": gap,
                          "corrected": done})  # fmt: skip
    moved = sql.write_tags(con, frame)
    changed = names != cache.touchpoint
    new, counts = np.unique(names[changed].astype(str), return_counts=True)
    return Refit(len(cache), int(changed.sum()), moved, int(done.sum()), time.perf_counter() - t0,
                 {str(t): int(c) for t, c in zip(new, counts, strict=True)})  # fmt: skip


def refit(store: Store) -> Refit:
    """Refit the store's tagger on its corrections and re-tag its texts (one transaction)."""
    with store.write() as con:
        return _retag(con)


def correct(store: Store, text_id: str, touchpoint: str, *, actor: str | None = None) -> dict[str, Any]:
    """Set the touchpoint of a tagged text (``text_id``: an event carrying it; every event with the same text
    follows), store the correction and refit the tagger, all in one transaction. Returns the text as
    :func:`list_texts` shows it and what the refit did.

    Raises NotFoundError for an event without a tagged text, InvalidParameterError for a touchpoint the tagger
    does not know, ConflictError when the store is open read-only."""
    if store.read_only:
        raise ConflictError(READ_ONLY)
    found = sql.find_text(store, text_id)
    if found is None:
        raise NotFoundError(f"No tagged text with id {text_id!r}; `keymoments texts` lists them (the id is an event's).")
    with store.write() as con:
        classes = sql.tagger_classes(con) or []
        if touchpoint not in classes:
            raise InvalidParameterError(
                f"The touchpoint must be one of the tagger's {classes}. Got {touchpoint!r} instead."
                f"{did_you_mean(touchpoint, classes)}"
            )
        sql.insert_correction(con, text_id, found["text_hash"], touchpoint, actor, datetime.now(UTC))
        done = _retag(con)
    after = sql.find_text(store, text_id) or found
    # the other texts the correction carried along: those that changed tag to this one (not the corrected text)
    others = done.changed_to.get(touchpoint, 0) - int(found["touchpoint"] != touchpoint)
    return {"text": _plain(after), "refit": {"texts": done.texts, "changed": done.changed, "events_moved": done.events_moved,
                                             "corrections": done.corrections, "seconds": round(done.seconds, 3),
                                             "others_now_this_tag": others}}  # fmt: skip


def list_texts(store: Store, *, tag: str | None = None, order: str = "uncertain", limit: int = 50,
               offset: int = 0) -> dict[str, Any]:  # fmt: skip
    """A page of the store's tagged texts: ``texts`` (id, text, touchpoint, confidence, margin, corrected, events),
    ``total``, ``touchpoints`` (what a text may be corrected to), ``corrections`` (texts corrected so far) and
    ``unlisted`` / ``unlisted_events``: texts (events) the tagger tagged without caching a vector, which cannot be
    listed or learnt from until ``keymoments texts backfill`` encodes them (:data:`UNLISTED_HINT`)."""
    if order not in ORDERS:
        raise InvalidParameterError(f"The 'order' parameter must be one of {list(ORDERS)}. Got {order!r} instead."
                                    f"{did_you_mean(order, ORDERS)}")  # fmt: skip
    cur = store.cursor()
    try:
        classes = sql.tagger_classes(cur) or []
        corrections = sql.correction_count(cur)
    finally:
        cur.close()
    if tag is not None and classes and tag not in classes:
        raise InvalidParameterError(f"The 'tag' parameter must be one of the tagger's {classes}. Got {tag!r} instead."
                                    f"{did_you_mean(tag, classes)}")  # fmt: skip
    page, total = sql.list_texts(store, tag=tag, order=order, limit=limit, offset=offset)
    unlisted, unlisted_events = sql.unlisted_count(store)
    nxt = _runner_up(store, page["text_hash"].tolist()) if len(page) else {}
    page["next_touchpoint"] = [nxt.get(h, (None, None))[0] for h in page["text_hash"]]
    page["next_confidence"] = [nxt.get(h, (None, None))[1] for h in page["text_hash"]]
    return {"texts": [_plain(r) for r in page.to_dict("records")], "total": total, "limit": limit, "offset": offset,
            "order": order, "touchpoints": classes, "corrections": corrections, "unlisted": unlisted,
            "unlisted_events": unlisted_events}  # fmt: skip


def _runner_up(store: Store, hashes: list[str]) -> dict[str, tuple[str, float]]:
    """The second likeliest tag of these (uncorrected) texts and its probability, under the tagger as the last
    refit left it (the same corrections give the same fit)."""
    cur = store.cursor()
    try:
        page = sql.load_cache(cur, only=hashes)
        fixed = sql.load_cache(cur, corrected_only=True)
    finally:
        cur.close()
    if page is None or fixed is None or len(page.classes) < 2:
        return {}
    index = {c: j for j, c in enumerate(fixed.classes)}
    labels = np.array([index.get(c, -1) for c in fixed.corrected], dtype=int)
    model = learner().fit(fixed.prior, fixed.vectors, labels)
    proba = model.predict_proba(page.prior, page.vectors)
    second = np.argsort(-proba, axis=1, kind="stable")[:, 1]
    return {h: (page.classes[j], round(float(proba[i, j]), 4))
            for i, (h, j, c) in enumerate(zip(page.hashes, second, page.corrected, strict=True)) if not isinstance(c, str)}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "text_hash"}
    for k in ("confidence", "margin"):
        if k in out:
            out[k] = round(float(out[k]), 4)
    if "next_touchpoint" in out:  # None for a corrected text (its tag is known)
        p = out.get("next_confidence")
        ok = isinstance(out["next_touchpoint"], str) and p is not None and p == p
        out["next_touchpoint"], out["next_confidence"] = (out["next_touchpoint"], round(float(p), 4)) if ok else (None, None)
    if "corrected" in out:
        out["corrected"] = bool(out["corrected"])
    if "events" in out:
        out["events"] = int(out["events"])
    return out
