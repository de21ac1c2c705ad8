"""Versioned migrations of the store's schema.

Each migration is a list of SQL statements applied once, in order, inside one transaction; the applied
version is recorded in ``schema_version``. Append new migrations at the end; never edit an applied one.
"""

from __future__ import annotations

from keymoments.events import EVENT_FIELDS
from keymoments.store.act_tables import ACT_MIGRATION
from keymoments.store.keys import KEYS_MIGRATION
from keymoments.store.texts import TEXTS_MIGRATION

__all__ = ["DERIVED_COLUMNS", "EVENT_COLUMNS", "MIGRATIONS", "SCORE_COLUMNS"]

#: Columns the store adds to every event, filled by scoring.
SCORE_COLUMNS: dict[str, str] = {
    "rating_valence": "DOUBLE",  # the rating mapped to [-1, 1] (events.RATING_SCALES), NULL without rating
    "valence": "DOUBLE",  # fused valence in [-1, 1]; NULL when the event has neither rating nor scored text
    "confidence": "DOUBLE",  # in [0, 1]; 0 when valence is NULL
    "valence_source": "VARCHAR",  # rating | text | both | none
    "text_scored": "BOOLEAN",  # the text (if any) has been scored into valence
}

#: Columns materialised at ingest so analyses are group-bys, not repeated sorts.
DERIVED_COLUMNS: dict[str, str] = {
    "seq": "BIGINT",  # source order: (batch_id << 32) + row number; breaks ties between equal timestamps
    "batch_id": "INTEGER",  # the ingest batch that wrote the event
    "step": "INTEGER",  # 1-based position of the event in its journey (ts, seq order)
    "next_touchpoint": "VARCHAR",  # touchpoint of the next event in the journey, NULL for the last
    "next_ts": "TIMESTAMPTZ",  # ts of the next event in the journey
    "is_last": "BOOLEAN",  # the journey's last event so far
}

#: Every column of the events table, in order.
EVENT_COLUMNS: dict[str, str] = {**EVENT_FIELDS, **SCORE_COLUMNS, **DERIVED_COLUMNS}

_events_ddl = ",\n  ".join(f"{name} {typ}" for name, typ in EVENT_COLUMNS.items())

MIGRATIONS: list[list[str]] = [
    # 1: events, batches, outcomes, customer attributes, text scores
    [
        f"CREATE TABLE events (\n  {_events_ddl}\n)",
        """CREATE TABLE batches (
            batch_id INTEGER PRIMARY KEY,
            kind VARCHAR NOT NULL,          -- events | outcomes | survey | api
            source VARCHAR,                 -- file path or 'api'
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            rows_read BIGINT,
            accepted BIGINT,
            duplicates BIGINT,
            rejected BIGINT
        )""",
        """CREATE TABLE outcomes (
            key_kind VARCHAR NOT NULL,      -- customer_id | journey_id
            key VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE,
            batch_id INTEGER,
            PRIMARY KEY (key_kind, key, name)
        )""",
        """CREATE TABLE outcome_defs (
            name VARCHAR PRIMARY KEY,
            key_kind VARCHAR NOT NULL,
            dtype VARCHAR NOT NULL          -- bool | numeric
        )""",
        """CREATE TABLE attributes (
            key_kind VARCHAR NOT NULL,      -- customer_id | journey_id
            key VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value VARCHAR,
            PRIMARY KEY (key_kind, key, name)
        )""",
        """CREATE TABLE text_scores (
            event_id VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            valence DOUBLE,
            confidence DOUBLE,
            sentiment VARCHAR,
            tags JSON,                      -- touchpoint tags, emotions
            scored_at TIMESTAMPTZ
        )""",
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    ],
    # 2: the act layer: playbook runs and decisions, holdouts, cases + timeline, budgets, ledger, outbox
    ACT_MIGRATION,
    # 3: API keys (hashed) with their roles, for `keymoments serve`
    KEYS_MIGRATION,
    # 4: when each outcome was observed (uplift counts only outcomes observed after a playbook's decision);
    # rows stored before this migration keep NULL: their time is unknown
    ["ALTER TABLE outcomes ADD COLUMN observed_at TIMESTAMPTZ"],
    # 5: the texts the tagger gave a touchpoint (with their vectors and zero-shot priors, so the tagger refits
    # without the encoder) and the analyst's corrections of those tags
    TEXTS_MIGRATION,
]
