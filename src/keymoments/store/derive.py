"""Write a staged batch's new events with their derived columns, keeping every journey they touch consistent.

The derived columns (``step``, ``next_touchpoint``, ``next_ts``, ``is_last``) follow each journey in
``(ts, seq)`` order, so an event that arrives late, or in a later batch, changes its neighbours. A journey's
rows are ordered on narrow keys only (seq, journey, ts, touchpoint), together with the rows the store already
holds for it; the new rows get their values and stored rows whose values moved are updated in place (usually
just the journey's previous last event). Stored rows keep their place, their scores and their batch.

Three ways, by batch: a small batch of new journeys into an empty store sorts its rows in one INSERT; a small
batch into a store inserts its rows, then sets the values of its journeys' rows that moved; a big batch orders
the narrow keys into ``_derived`` and joins the values back (sorting whole rows is what costs at that size).

Everything here runs inside the caller's transaction on staged rows in the temp table ``_stage``; the caller
passes ``rows``, a SQL relation over ``_stage`` with ``_req`` (the request within a group) and ``_pos`` (the
row's position in its request).
"""

from __future__ import annotations

import duckdb

from keymoments.events import EVENT_FIELDS, RATING_CONFIDENCE
from keymoments.store.schema import EVENT_COLUMNS
from keymoments.store.staging import valence_sql

__all__ = ["insert_with_derived", "mark_duplicates", "mark_known", "rederive"]

_WINDOW = "WINDOW w AS (PARTITION BY journey_id ORDER BY ts, seq)"
_GOOD = "_reason IS NULL"


def _new(rows: str) -> str:
    return f"(SELECT * FROM {rows} WHERE {_GOOD} AND NOT _dup)"


def _seq(base_batch: int) -> str:
    """Source order across batches: (batch_id << 32) + position; a group's requests get consecutive batch ids."""
    return f"((({base_batch} + _req)::BIGINT << 32) + _pos)"


def mark_duplicates(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Number identical content rows within each request (':2', ':3'… in source order, so exact duplicates
    in one file are kept as separate events), then mark every later copy of an event_id as a duplicate of
    its first occurrence (a repeated given id, or the same event sent by two requests of one group)."""
    con.execute(f"""
        UPDATE _stage SET event_id = _stage.event_id || ':' || d.k
        FROM (
            SELECT _r, row_number() OVER (PARTITION BY _req, event_id ORDER BY _pos) AS k
            FROM {rows}
            WHERE NOT _given AND {_GOOD} AND event_id IN (
                SELECT event_id FROM {rows} WHERE NOT _given AND {_GOOD} GROUP BY _req, event_id HAVING count(*) > 1
            )
        ) d
        WHERE _stage.rowid = d._r AND d.k > 1
    """)
    con.execute(f"""
        UPDATE _stage SET _dup = true
        FROM (
            SELECT _r, row_number() OVER (PARTITION BY event_id ORDER BY _req, _pos) AS k
            FROM {rows}
            WHERE {_GOOD} AND event_id IN (SELECT event_id FROM {rows} WHERE {_GOOD} GROUP BY event_id HAVING count(*) > 1)
        ) d
        WHERE _stage.rowid = d._r AND d.k > 1
    """)


def mark_known(con: duckdb.DuckDBPyConnection) -> None:
    """Mark staged rows whose event_id is already in the store (probing the store with the batch's ids)."""
    con.execute(f"""
        UPDATE _stage SET _dup = true
        WHERE {_GOOD} AND NOT _dup
          AND event_id IN (SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM _stage WHERE {_GOOD}))
    """)


def _with_valence(new: str) -> str:
    """The new rows with their rating's valence, computed once for rating_valence and valence."""
    return f"(SELECT *, {valence_sql('rating', 'rating_scale')} AS _valence FROM {new})"


def _new_row_columns(base_batch: int) -> list[str]:
    return [
        *EVENT_FIELDS,
        "_valence AS rating_valence",
        "_valence AS valence",
        f"CASE WHEN rating IS NULL THEN 0.0 ELSE {RATING_CONFIDENCE} END AS confidence",
        "CASE WHEN rating IS NULL THEN 'none' ELSE 'rating' END AS valence_source",
        "text IS NULL AS text_scored",
        f"{_seq(base_batch)} AS seq",
        f"({base_batch} + _req)::INTEGER AS batch_id",
    ]


def insert_with_derived(
    con: duckdb.DuckDBPyConnection, rows: str, base_batch: int, *, existing: bool, narrow: bool
) -> int:
    """Insert the batch's good new rows with their derived columns; return how many were inserted.

    ``existing``: the store may already hold events of the batch's journeys (False for an empty store, which
    skips the probe). ``narrow``: order on narrow keys and join the values back (pays for big batches, where
    sorting whole rows is what costs); else one statement sorts the rows themselves (cheapest for small ones).
    """
    new = _new(rows)
    if narrow:
        return _insert_joined(con, new, base_batch, existing=existing)
    if existing:
        return _insert_then_derive(con, new, base_batch)
    return _insert_sorted_rows(con, new, base_batch)


def _insert_joined(con: duckdb.DuckDBPyConnection, new: str, base_batch: int, *, existing: bool) -> int:
    """A big batch: order narrow keys (with the stored rows of the batch's journeys, if any) into ``_derived``,
    insert the new rows joined to their values, and update the stored rows whose values moved."""
    seq = _seq(base_batch)
    window = "CAST(row_number() OVER w AS INTEGER) AS step, lead(touchpoint) OVER w AS next_touchpoint, lead(ts) OVER w AS next_ts"
    if not existing:  # only new journeys: the smallest table to join back
        con.execute(f"CREATE OR REPLACE TEMP TABLE _derived AS SELECT {seq} AS seq, {window} FROM {new} {_WINDOW}")
    else:  # with the rows already stored in the batch's journeys, and the values they have now
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _derived AS
            SELECT seq, old, step, next_touchpoint, next_ts FROM (
                SELECT seq, old, {window}, old_step, old_next, old_next_ts
                FROM (SELECT {seq} AS seq, journey_id, ts, touchpoint, false AS old,
                             NULL::INTEGER AS old_step, NULL::VARCHAR AS old_next, NULL::TIMESTAMPTZ AS old_next_ts
                      FROM {new}
                      UNION ALL SELECT seq, journey_id, ts, touchpoint, true, step, next_touchpoint, next_ts FROM events
                      WHERE journey_id IN (SELECT journey_id FROM {new}))
                {_WINDOW})
            WHERE NOT old OR step IS DISTINCT FROM old_step OR next_touchpoint IS DISTINCT FROM old_next
                  OR next_ts IS DISTINCT FROM old_next_ts
        """)
    cols = ", ".join(f"n.{c}" if c in EVENT_FIELDS else c for c in _new_row_columns(base_batch))
    derived = "d.step, d.next_touchpoint, d.next_ts, d.next_ts IS NULL"
    written = con.execute(f"""
        INSERT INTO events ({", ".join(EVENT_COLUMNS)})
        SELECT {cols}, {derived} FROM {_with_valence(new)} n JOIN _derived d ON d.seq = {seq} {"AND NOT d.old" if existing else ""}
    """).fetchall()[0][0]
    if existing:
        con.execute("""
            UPDATE events SET step = d.step, next_touchpoint = d.next_touchpoint, next_ts = d.next_ts,
                              is_last = d.next_ts IS NULL
            FROM (SELECT * FROM _derived WHERE old) d WHERE events.seq = d.seq
        """)
    con.execute("DROP TABLE _derived")
    return int(written)


def _insert_sorted_rows(con: duckdb.DuckDBPyConnection, new: str, base_batch: int) -> int:
    """Journeys that are all new: one INSERT whose window orders the rows themselves."""
    derived = {
        "step": "CAST(row_number() OVER w AS INTEGER)",
        "next_touchpoint": "lead(touchpoint) OVER w",
        "next_ts": "lead(ts) OVER w",
        "is_last": "lead(ts) OVER w IS NULL",
    }
    select = ", ".join(derived.get(c, c) for c in EVENT_COLUMNS)
    row = con.execute(f"""
        INSERT INTO events ({", ".join(EVENT_COLUMNS)})
        SELECT {select} FROM (SELECT {", ".join(_new_row_columns(base_batch))} FROM {_with_valence(new)}) {_WINDOW}
    """).fetchone()
    return int(row[0])  # type: ignore[index]


def _insert_then_derive(con: duckdb.DuckDBPyConnection, new: str, base_batch: int) -> int:
    """A small batch into journeys that may exist: insert the rows, then set the derived values of every row
    of their journeys whose values moved (the new ones, and usually the journey's previous last event)."""
    cols = ", ".join(_new_row_columns(base_batch))
    written = con.execute(f"""
        INSERT INTO events ({", ".join(EVENT_COLUMNS)})
        SELECT {cols}, NULL, NULL, NULL, NULL FROM {_with_valence(new)}
    """).fetchall()[0][0]
    rederive(con, new)
    return int(written)


def rederive(con: duckdb.DuckDBPyConnection, journeys: str) -> None:
    """Set the derived values of every stored row of some journeys (``journeys``: a SQL relation with a
    ``journey_id`` column) whose values moved: after rows were added to them, or a touchpoint was filled in."""
    con.execute(f"""
        UPDATE events SET step = d.step, next_touchpoint = d.next_touchpoint, next_ts = d.next_ts,
                          is_last = d.next_ts IS NULL
        FROM (
            SELECT * FROM (
                SELECT rowid AS r, row_number() OVER w AS step, lead(touchpoint) OVER w AS next_touchpoint,
                       lead(ts) OVER w AS next_ts, step AS old_step, next_touchpoint AS old_next, next_ts AS old_next_ts
                FROM events WHERE journey_id IN (SELECT journey_id FROM {journeys})
                {_WINDOW})
            WHERE step IS DISTINCT FROM old_step OR next_touchpoint IS DISTINCT FROM old_next
                  OR next_ts IS DISTINCT FROM old_next_ts
        ) d
        WHERE events.rowid = d.r
    """)
