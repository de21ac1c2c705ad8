"""SQL for text scores: which events still need their text scored, and writing fused valence back."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from keymoments.store.store import Store

__all__ = ["unscored_text", "write_text_scores"]


def unscored_text(store: Store, *, limit: int, rescore: bool = False, after_seq: int = -1) -> pd.DataFrame:
    """Up to ``limit`` events with text not scored yet (or all with text when ``rescore``), in seq order."""
    cond = "text IS NOT NULL" + ("" if rescore else " AND NOT text_scored")
    return store.query(
        f"SELECT event_id, seq, text, rating_valence FROM events WHERE {cond} AND seq > ? ORDER BY seq LIMIT ?",
        [after_seq, limit],
    )


def write_text_scores(store: Store, scored: pd.DataFrame, model: str) -> None:
    """Write one batch of scores: events get fused valence/confidence/source; text_scores keeps the text model's view.

    ``scored`` has event_id, text_valence, text_confidence, sentiment, valence, confidence, valence_source and
    optionally tags (a JSON string).
    """
    frame = scored[["event_id", "text_valence", "text_confidence", "sentiment", "valence", "confidence", "valence_source"]].copy()
    frame["tags"] = scored["tags"] if "tags" in scored else None
    frame["model"] = model
    frame["scored_at"] = datetime.now(UTC)
    with store.write() as con:
        con.register("_km_scores", frame)
        con.execute("""
            UPDATE events SET valence = s.valence, confidence = s.confidence, valence_source = s.valence_source,
                              text_scored = true
            FROM _km_scores s WHERE events.event_id = s.event_id
        """)
        con.execute("""
            INSERT OR REPLACE INTO text_scores
            SELECT event_id, model, text_valence, text_confidence, sentiment, CAST(tags AS JSON), scored_at FROM _km_scores
        """)
        con.unregister("_km_scores")
