"""SQL of the texts the tagger gave a touchpoint, and of the analyst's corrections of those tags.

- ``text_vectors``: one row per distinct tagged text (``text_hash``: SHA-256 of the text), with what a refit
  needs without running the encoder again: the text's ``vector`` and its zero-shot ``prior`` logits (float32
  bytes);
- ``text_tags``: the tag in force of each text (``touchpoint``, ``confidence``, ``margin`` between the two
  likeliest tags; ``corrected`` when an analyst set it).
- ``text_tag_events``: which events carry each text (their touchpoint is the text's tag).
- ``text_corrections``: every correction (who, when, which event's text, to which touchpoint), never deleted;
  the latest one per text is in force.

The classes the priors are over (the touchpoints, then "other") are kept in ``meta`` under ``text_tagger``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from keymoments.store.store import Store

__all__ = [
    "TEXTS_MIGRATION", "TextCache", "correction_count", "find_text", "insert_correction", "list_texts", "load_cache",
    "tagger_classes", "unlisted_count", "unlisted_events", "write_cache", "write_tags",
]  # fmt: skip

#: The tables of tagged texts and corrections (one migration, appended to ``schema.MIGRATIONS``).
TEXTS_MIGRATION: list[str] = [
    """CREATE TABLE text_vectors (
        text_hash VARCHAR PRIMARY KEY,     -- sha256 hex of the text
        text VARCHAR NOT NULL,
        vector BLOB NOT NULL,              -- float32 unit sentence vector, as the tagger compared it
        prior BLOB NOT NULL                -- float32 zero-shot logits over the classes in meta 'text_tagger'
    )""",
    # the tag in force, apart from the vectors: a refit rewrites it for every text (narrow rows update ~20x faster)
    """CREATE TABLE text_tags (
        text_hash VARCHAR PRIMARY KEY,
        touchpoint VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL,
        margin DOUBLE NOT NULL,            -- most likely tag's probability minus the second's
        corrected BOOLEAN NOT NULL DEFAULT false
    )""",
    """CREATE TABLE text_tag_events (
        event_id VARCHAR PRIMARY KEY,
        text_hash VARCHAR NOT NULL
    )""",
    """CREATE TABLE text_corrections (
        event_id VARCHAR NOT NULL,         -- the event whose text was corrected (its text's other events follow)
        text_hash VARCHAR NOT NULL,
        touchpoint VARCHAR NOT NULL,
        actor VARCHAR,
        corrected_at TIMESTAMPTZ NOT NULL
    )""",
]

_META = "text_tagger"


def tagger_classes(con: duckdb.DuckDBPyConnection) -> list[str] | None:
    """The classes (touchpoints, then "other") the cached priors are over, or None before any tagging."""
    row = con.execute("SELECT value FROM meta WHERE key = ?", [_META]).fetchall()
    return list(json.loads(row[0][0])["classes"]) if row else None


def write_cache(con: duckdb.DuckDBPyConnection, classes: list[str], texts: pd.DataFrame, events: pd.DataFrame) -> None:
    """Cache newly tagged texts (``texts``: text_hash, text, vector, prior, touchpoint, confidence, margin as
    bytes/values) and which events carry them (``events``: event_id, text_hash). Priors over other classes than
    the cached ones are dropped first: their texts keep their tags but no longer learn."""
    if tagger_classes(con) != classes:
        for table in ("text_vectors", "text_tags", "text_tag_events"):
            con.execute(f"DELETE FROM {table}")  # noqa: S608 - the names are the code's
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [_META, json.dumps({"classes": classes})])
    con.register("_km_texts", texts)
    con.execute("INSERT OR IGNORE INTO text_vectors SELECT text_hash, text, vector, prior FROM _km_texts")
    con.execute("""INSERT OR IGNORE INTO text_tags (text_hash, touchpoint, confidence, margin)
                   SELECT text_hash, touchpoint, confidence, margin FROM _km_texts""")
    con.unregister("_km_texts")
    con.register("_km_text_events", events)
    con.execute("INSERT OR REPLACE INTO text_tag_events SELECT event_id, text_hash FROM _km_text_events")
    con.unregister("_km_text_events")


class TextCache:
    """Every cached text, as arrays: ``hashes`` (n,), ``vectors`` (n, d), ``prior`` (n, c), ``touchpoint`` (n,),
    ``confidence`` (n,), ``corrected`` (n,) the touchpoint an analyst set (None where none)."""

    __slots__ = ("classes", "confidence", "corrected", "hashes", "prior", "touchpoint", "vectors")

    def __init__(self, classes: list[str], frame: pd.DataFrame) -> None:
        self.classes = classes
        self.hashes = frame["text_hash"].to_numpy(dtype=object)
        n, c = len(frame), len(classes)
        self.vectors = np.frombuffer(b"".join(frame["vector"]), dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 0), np.float32)
        self.prior = np.frombuffer(b"".join(frame["prior"]), dtype=np.float32).reshape(n, c) if n else np.zeros((0, c), np.float32)
        self.touchpoint = frame["touchpoint"].to_numpy(dtype=object)
        self.confidence = frame["confidence"].to_numpy(dtype=float)
        self.corrected = frame["fixed"].to_numpy(dtype=object)

    def __len__(self) -> int:
        return len(self.hashes)


def load_cache(con: duckdb.DuckDBPyConnection, *, only: list[str] | None = None,
               corrected_only: bool = False) -> TextCache | None:  # fmt: skip
    """Every cached text with the correction in force (the latest per text); None before any tagging.
    ``only``: just these text hashes; ``corrected_only``: just the corrected texts (what a fit needs)."""
    classes = tagger_classes(con)
    if classes is None:
        return None
    if only is not None:
        con.register("_km_only", pd.DataFrame({"text_hash": pd.Series(only, dtype=object)}))
    frame = con.execute(f"""
        SELECT t.text_hash, v.vector, v.prior, t.touchpoint, t.confidence, c.touchpoint AS fixed
        FROM text_tags t JOIN text_vectors v USING (text_hash) {"SEMI JOIN _km_only USING (text_hash)" if only is not None else ""}
        {"" if corrected_only else "LEFT"} JOIN (
            SELECT text_hash, arg_max(touchpoint, corrected_at) AS touchpoint FROM text_corrections GROUP BY text_hash
        ) c USING (text_hash)
        ORDER BY t.text_hash
    """).df()  # noqa: S608 - the clauses are the code's
    if only is not None:
        con.unregister("_km_only")
    return TextCache(classes, frame)


def write_tags(con: duckdb.DuckDBPyConnection, tags: pd.DataFrame) -> int:
    """Set the tag in force of texts (``tags``: text_hash, touchpoint, confidence, margin, corrected) and the
    touchpoint of every event carrying them that has another, merge touchpoint and confidence into ``text_scores.tags`` and re-derive the
    journeys whose events changed touchpoint; inside the caller's transaction. Returns how many events changed."""
    con.register("_km_new_tags", tags)
    # the numbers of every text, then the tag of the few that changed: one UPDATE setting the VARCHAR column of
    # every row took ~0.3 s on 5,000 texts, these two ~0.02 s
    con.execute("""
        UPDATE text_tags SET confidence = n.confidence, margin = n.margin
        FROM _km_new_tags n WHERE text_tags.text_hash = n.text_hash
    """)
    con.execute("""
        UPDATE text_tags SET touchpoint = n.touchpoint, corrected = n.corrected
        FROM _km_new_tags n
        WHERE text_tags.text_hash = n.text_hash
          AND (text_tags.touchpoint IS DISTINCT FROM n.touchpoint OR text_tags.corrected IS DISTINCT FROM n.corrected)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _km_moved AS
        SELECT e.event_id, e.journey_id, n.touchpoint, n.confidence, n.corrected
        FROM _km_new_tags n JOIN text_tag_events x USING (text_hash) JOIN events e ON e.event_id = x.event_id
        WHERE e.touchpoint IS DISTINCT FROM n.touchpoint
    """)
    moved = int(con.execute("SELECT count(*) FROM _km_moved").fetchall()[0][0])
    if moved:
        from keymoments.store.derive import rederive  # noqa: PLC0415 - derive imports the schema, which imports this

        con.execute("UPDATE events SET touchpoint = m.touchpoint FROM _km_moved m WHERE events.event_id = m.event_id")
        rederive(con, "(SELECT DISTINCT journey_id FROM _km_moved)")
    con.execute("""
        UPDATE text_scores SET tags = json_merge_patch(coalesce(text_scores.tags, '{}'::JSON), json_object(
            'touchpoint', n.touchpoint, 'touchpoint_confidence', round(n.confidence, 4),
            'touchpoint_corrected', n.corrected))
        FROM _km_new_tags n JOIN text_tag_events x USING (text_hash)
        WHERE text_scores.event_id = x.event_id
          AND (json_extract_string(text_scores.tags, '$.touchpoint') IS DISTINCT FROM n.touchpoint
               OR abs(coalesce(json_extract(text_scores.tags, '$.touchpoint_confidence')::DOUBLE, -1) - n.confidence) > 0.005
               OR coalesce(json_extract(text_scores.tags, '$.touchpoint_corrected')::BOOLEAN, false) <> n.corrected)
    """)  # the confidence kept beside the text's emotions moves only when it moved by more than 0.005
    con.execute("DROP TABLE _km_moved")
    con.unregister("_km_new_tags")
    return moved


def insert_correction(con: duckdb.DuckDBPyConnection, event_id: str, text_hash: str, touchpoint: str,
                      actor: str | None, at: datetime) -> None:  # fmt: skip
    con.execute("INSERT INTO text_corrections VALUES (?, ?, ?, ?, ?)", [event_id, text_hash, touchpoint, actor, at])


def correction_count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(DISTINCT text_hash) FROM text_corrections").fetchall()[0][0])


def find_text(store: Store, text_id: str) -> dict[str, Any] | None:
    """The tagged text of an event (``text_id``: an event id), or None when the event carries no tagged text."""
    rows = store.query("""
        SELECT x.event_id AS id, t.text_hash, v.text, t.touchpoint, t.confidence, t.margin, t.corrected
        FROM text_tag_events x JOIN text_tags t USING (text_hash) JOIN text_vectors v USING (text_hash)
        WHERE x.event_id = ?
    """, [text_id])  # fmt: skip
    return None if rows.empty else rows.iloc[0].to_dict()


#: Events whose touchpoint the tagger inferred from their text but whose text has no cached vector: tagged by the
#: word-list tagger (no encoder installed then) or before the cache existed (schema version 5). Events whose
#: touchpoint came with the data are never among them.
_UNLISTED = """
    FROM events e JOIN text_scores s USING (event_id)
    WHERE e.text IS NOT NULL AND e.touchpoint IS NOT NULL
      AND coalesce(json_extract(s.tags, '$.touchpoint_inferred')::BOOLEAN, false)
      AND NOT EXISTS (SELECT 1 FROM text_tag_events x WHERE x.event_id = e.event_id)
"""


def unlisted_count(store: Store) -> tuple[int, int]:
    """(distinct texts, events) the tagger tagged that the texts page cannot list (no cached vector)."""
    row = store.query(f"SELECT count(DISTINCT e.text) AS texts, count(*) AS events {_UNLISTED}")  # noqa: S608
    return int(row["texts"].iloc[0]), int(row["events"].iloc[0])


def unlisted_events(store: Store, *, limit: int, after_seq: int = -1) -> pd.DataFrame:
    """Up to ``limit`` of those events (``event_id``, ``seq``, ``text``), in seq order."""
    return store.query(f"SELECT e.event_id, e.seq, e.text {_UNLISTED} AND e.seq > ? ORDER BY e.seq LIMIT ?",  # noqa: S608
                       [after_seq, limit])  # fmt: skip


_ORDERS = {
    "uncertain": "t.corrected, t.margin, t.text_hash",  # corrected texts last: their tag is known
    "confident": "t.corrected, t.margin DESC, t.text_hash",
    "recent": "first_seq DESC",
}


def list_texts(store: Store, *, tag: str | None, order: str, limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    """A page of tagged texts (one row per distinct text: ``id`` the first event carrying it, ``events`` how many
    do) and how many there are in all. ``order``: one of ``uncertain`` (least certain first), ``confident``,
    ``recent`` (newest first)."""
    where = "WHERE t.touchpoint = ?" if tag is not None else ""
    params: list[Any] = [tag] if tag is not None else []
    total = store.query(f"SELECT count(*) AS n FROM text_tags t {where}", params)["n"].iloc[0]
    page = store.query(f"""
        SELECT first(x.event_id ORDER BY e.seq) AS id, t.text_hash, v.text, t.touchpoint, t.confidence, t.margin, t.corrected,
               count(*) AS events, min(e.seq) AS first_seq
        FROM text_tags t JOIN text_vectors v USING (text_hash) JOIN text_tag_events x USING (text_hash)
        JOIN events e ON e.event_id = x.event_id
        {where}
        GROUP BY t.text_hash, v.text, t.touchpoint, t.confidence, t.margin, t.corrected
        ORDER BY {_ORDERS[order]} LIMIT ? OFFSET ?
    """, [*params, limit, offset])  # fmt: skip
    return page.drop(columns=["first_seq"]), int(total)
