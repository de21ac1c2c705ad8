"""SQL for text scores: which events still need their text scored, and writing fused valence back."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from keymoments.store.derive import rederive
from keymoments.store.store import Store

__all__ = [
    "rated_text", "text_tags", "touchpoint_examples", "untagged_count", "untagged_text", "unscored_count", "unscored_text",
    "write_inferred_touchpoints", "write_text_scores",
]  # fmt: skip

_UNTAGGED = "touchpoint IS NULL AND text IS NOT NULL"


def _unscored(rescore: bool, unrated: bool) -> str:
    return "text IS NOT NULL" + ("" if rescore else " AND NOT text_scored") + (" AND rating_valence IS NULL" if unrated else "")


def unscored_count(store: Store, *, rescore: bool = False, unrated: bool = False) -> int:
    """How many events :func:`unscored_text` would hand out, in all."""
    return store.count("events", _unscored(rescore, unrated))


def untagged_count(store: Store) -> int:
    """How many events :func:`untagged_text` would hand out, in all."""
    return store.count("events", _UNTAGGED)


def unscored_text(
    store: Store, *, limit: int, rescore: bool = False, after_seq: int = -1, unrated: bool = False
) -> pd.DataFrame:
    """Up to ``limit`` events with text not scored yet (or all with text when ``rescore``; only those without
    a rating when ``unrated``), in seq order."""
    cond = _unscored(rescore, unrated)
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


def untagged_text(store: Store, *, limit: int, after_seq: int = -1) -> pd.DataFrame:
    """Up to ``limit`` events that came without a touchpoint but with text, in seq order."""
    return store.query(
        f"SELECT event_id, seq, text FROM events WHERE {_UNTAGGED} AND seq > ? ORDER BY seq LIMIT ?",
        [after_seq, limit],
    )


def touchpoint_examples(store: Store, *, per_touchpoint: int) -> pd.DataFrame:
    """The store's touchpoints in journey order (by their median step), each with up to ``per_touchpoint`` of
    its events' distinct texts (a fixed pseudo-random pick): ``touchpoint``, ``position``, ``text`` (NULL when none)."""
    return store.query(
        """
        WITH tps AS (SELECT touchpoint, median(step) AS position FROM events WHERE touchpoint IS NOT NULL GROUP BY touchpoint),
        picked AS (
            SELECT touchpoint, text FROM (
                SELECT touchpoint, text, row_number() OVER (PARTITION BY touchpoint ORDER BY hash(text), text) AS k
                FROM (SELECT DISTINCT touchpoint, text FROM events WHERE touchpoint IS NOT NULL AND text IS NOT NULL))
            WHERE k <= ?)
        SELECT tps.touchpoint, tps.position, picked.text FROM tps LEFT JOIN picked USING (touchpoint)
        ORDER BY tps.position, tps.touchpoint
        """,
        [per_touchpoint],
    )


def write_inferred_touchpoints(store: Store, tags: pd.DataFrame) -> int:
    """Fill in the touchpoint of events that came without one (``tags``: event_id, touchpoint, tags as JSON),
    re-derive their journeys (the previous event's next touchpoint changes) and merge the tags into
    ``text_scores``; one transaction. Returns how many events got a touchpoint."""
    with store.write() as con:
        con.register("_km_tags", tags[["event_id", "touchpoint", "tags"]])
        n = con.execute("""
            UPDATE events SET touchpoint = t.touchpoint FROM _km_tags t
            WHERE events.event_id = t.event_id AND events.touchpoint IS NULL
        """).fetchall()[0][0]
        rederive(con, "(SELECT journey_id FROM events WHERE event_id IN (SELECT event_id FROM _km_tags))")
        con.execute("""
            UPDATE text_scores SET tags = json_merge_patch(coalesce(text_scores.tags, '{}'::JSON), CAST(t.tags AS JSON))
            FROM _km_tags t WHERE text_scores.event_id = t.event_id
        """)
        con.unregister("_km_tags")
    return int(n)


def text_tags(store: Store, event_ids: list[str]) -> pd.DataFrame:
    """What text scoring said of these events: ``event_id``, ``emotion`` (None where the text was not scored
    or had no emotion), ``touchpoint_inferred`` (the touchpoint came from the text)."""
    if not event_ids:
        return pd.DataFrame({"event_id": [], "emotion": [], "touchpoint_inferred": []})
    return store.query(
        "SELECT event_id, NULLIF(json_extract_string(tags, '$.emotion'), 'none') AS emotion, "
        "coalesce(json_extract(tags, '$.touchpoint_inferred')::BOOLEAN, false) AS touchpoint_inferred "
        "FROM text_scores WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [event_ids],
    )


def rated_text(store: Store) -> pd.DataFrame:
    """Every event with both text and a rating: ``text`` and ``rating_valence`` (the rating on [-1, 1])."""
    return store.query(
        "SELECT text, rating_valence FROM events WHERE text IS NOT NULL AND rating_valence IS NOT NULL ORDER BY seq"
    )
