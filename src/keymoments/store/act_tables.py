"""SQL of the act layer: playbook runs and decisions, holdout assignments, cases and their timeline, budget
pools and the ledger, and the webhook outbox.

Every function takes an open DuckDB connection: inside ``store.write()`` for writes (one transaction), a
``store.cursor()`` for reads. Money is integer cents. ``budgets.remaining_cents`` carries
``CHECK (remaining_cents >= 0)``: a spend that would overdraw a pool fails inside the transaction that tries
it, whoever else is writing, so a pool can never go below zero.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

__all__ = ["ACT_MIGRATION"]

#: The act layer's tables (one migration, appended to ``schema.MIGRATIONS``).
ACT_MIGRATION: list[str] = [
    """CREATE TABLE playbook_runs (
        run_id VARCHAR PRIMARY KEY,
        mode VARCHAR NOT NULL,            -- backtest | live
        source VARCHAR,                   -- the playbook file
        file_hash VARCHAR,
        seed BIGINT,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        events BIGINT,
        decisions BIGINT,
        last_seq BIGINT                   -- live: the last event (seq) processed
    )""",
    """CREATE TABLE playbook_decisions (
        run_id VARCHAR NOT NULL,          -- 'live' for live decisions, the backtest's run id otherwise
        decision_id VARCHAR NOT NULL,     -- deterministic: playbook + event (+ timer)
        mode VARCHAR NOT NULL,
        playbook VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,            -- fire | case_update
        status VARCHAR NOT NULL,          -- fired | held_out | blocked | handoff | resolved
        trigger VARCHAR,
        customer_id VARCHAR,
        journey_id VARCHAR,
        event_id VARCHAR,
        ts TIMESTAMPTZ,
        seq BIGINT,
        arm VARCHAR,                      -- treatment | holdout | global_holdout
        cost_cents BIGINT,
        budget VARCHAR,
        budget_key VARCHAR,
        needs_approval BOOLEAN,
        budget_blocked BOOLEAN,
        employee_id VARCHAR,
        location_id VARCHAR,
        case_id VARCHAR,
        actions JSON,
        detail JSON,
        decided_at TIMESTAMPTZ,
        PRIMARY KEY (run_id, decision_id)
    )""",
    """CREATE TABLE holdout_assignments (
        playbook VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        arm VARCHAR NOT NULL,
        share DOUBLE,
        global_share DOUBLE,
        first_seen TIMESTAMPTZ,
        PRIMARY KEY (playbook, customer_id)
    )""",
    """CREATE TABLE cases (
        case_id VARCHAR PRIMARY KEY,
        playbook VARCHAR,
        customer_id VARCHAR,
        journey_id VARCHAR,
        status VARCHAR NOT NULL,          -- open | in_progress | awaiting_approval | resolved | closed
        owner VARCHAR,
        first_owner VARCHAR,
        team VARCHAR,
        priority VARCHAR,
        reason VARCHAR,
        trigger_event_ids JSON,
        compensation_cents BIGINT DEFAULT 0,
        currency VARCHAR,
        approval_entry_id VARCHAR,
        opened_at TIMESTAMPTZ,
        sla_due_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ,
        resolved_at TIMESTAMPTZ,
        closed_at TIMESTAMPTZ,
        handoffs INTEGER DEFAULT 0,
        decision_id VARCHAR
    )""",
    """CREATE TABLE case_events (
        case_id VARCHAR NOT NULL,
        n INTEGER NOT NULL,
        ts TIMESTAMPTZ,
        kind VARCHAR,                     -- opened | status | assigned | handoff | note | approval | moment
        actor VARCHAR,
        from_status VARCHAR,
        to_status VARCHAR,
        detail JSON,
        PRIMARY KEY (case_id, n)
    )""",
    """CREATE TABLE budgets (
        pool VARCHAR NOT NULL,
        scope_key VARCHAR NOT NULL,
        period VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        amount_cents BIGINT NOT NULL,
        remaining_cents BIGINT NOT NULL CHECK (remaining_cents >= 0),
        currency VARCHAR,
        empowerment_limit_cents BIGINT,
        PRIMARY KEY (pool, scope_key, period_start)
    )""",
    """CREATE TABLE ledger (
        entry_id VARCHAR PRIMARY KEY,
        pool VARCHAR NOT NULL,
        scope_key VARCHAR NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
        status VARCHAR NOT NULL,          -- approved (spent) | pending_approval (reserved) | rejected (released)
        case_id VARCHAR,
        decision_id VARCHAR,
        customer_id VARCHAR,
        actor VARCHAR,
        note VARCHAR,
        created_at TIMESTAMPTZ,
        settled_at TIMESTAMPTZ,
        settled_by VARCHAR
    )""",
    """CREATE TABLE outbox (
        message_id VARCHAR PRIMARY KEY,   -- the idempotency key the receiver sees
        decision_id VARCHAR,
        playbook VARCHAR,
        action_type VARCHAR,
        url VARCHAR,                      -- NULL: recorded only, nothing to deliver
        payload JSON,
        status VARCHAR NOT NULL,          -- pending | delivered | dead | recorded
        attempts INTEGER DEFAULT 0,
        next_attempt_at TIMESTAMPTZ,
        last_error VARCHAR,
        last_status INTEGER,
        created_at TIMESTAMPTZ,
        delivered_at TIMESTAMPTZ
    )""",
]

def postgres_ddl(statement: str) -> str:
    """A ``CREATE TABLE`` of these migrations in PostgreSQL's types (TEXT, JSONB, DOUBLE PRECISION): the
    operational store on PostgreSQL (``pg_migrations/versions/0001``) creates the same tables from them."""
    s = re.sub(r"\bVARCHAR\b", "TEXT", statement)
    s = re.sub(r"\bJSON\b", "JSONB", s)
    return re.sub(r"\bDOUBLE\b(?! PRECISION)", "DOUBLE PRECISION", s)


_DECISION_COLS = (
    "run_id", "decision_id", "mode", "playbook", "kind", "status", "trigger", "customer_id", "journey_id",
    "event_id", "ts", "seq", "arm", "cost_cents", "budget", "budget_key", "needs_approval", "budget_blocked",
    "employee_id", "location_id", "case_id", "actions", "detail", "decided_at",
)  # fmt: skip


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


# -- events for the engine --------------------------------------------------------------------------------
_EVENT_SELECT = """
SELECT seq, epoch_us(ts) AS ts_us, customer_id, coalesce(journey_id, customer_id) AS journey_id, touchpoint,
       stage, channel, outcome, rating, coalesce(valence, rating_valence) AS valence, value, text,
       employee_id, location_id, event_id, CAST(attrs AS VARCHAR) AS attrs
FROM events
"""


def iter_events(
    con: duckdb.DuckDBPyConnection,
    *,
    order: str = "ts",
    after_seq: int | None = None,
    upto_seq: int | None = None,
    chunk: int = 100_000,
) -> Iterator[list[tuple]]:
    """Events as engine tuples (see ``act.engine.EVENT_COLUMNS``), in chunks.

    ``order='ts'`` replays history in event time (ties by seq); ``order='seq'`` in arrival order (live)."""
    where, params = [], []
    if after_seq is not None:
        where.append("seq > ?")
        params.append(after_seq)
    if upto_seq is not None:
        where.append("seq <= ?")
        params.append(upto_seq)
    sql = _EVENT_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY ts, seq" if order == "ts" else " ORDER BY seq"
    # Arrow batches turned into tuples column-wise: about a quarter faster than fetchmany's row tuples
    own = con.cursor()  # its own connection: the caller's may hold an unfinished result
    try:
        own.execute("SET TimeZone = 'UTC'")
        reader = own.sql(sql, params=params or None).to_arrow_reader(chunk)
        for batch in reader:
            if batch.num_rows:
                yield list(zip(*[c.to_pylist() for c in batch.columns], strict=True))
    finally:
        own.close()


def max_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0]) if row else 0


# -- runs and decisions -----------------------------------------------------------------------------------
def insert_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    cols = list(run)
    con.execute(
        f"INSERT OR REPLACE INTO playbook_runs ({', '.join(cols)}) VALUES ({_placeholders(len(cols))})",
        [run[c] for c in cols],
    )


def touch_live_run(
    con: duckdb.DuckDBPyConnection, run_id: str, *, source: str | None, file_hash: str, seed: int, last_seq: int,
    added: int, now: datetime,
) -> None:  # fmt: skip
    """Create or move on the live run's row: its cursor (last seq processed) and decision count, one statement."""
    con.execute(
        """INSERT INTO playbook_runs VALUES (?, 'live', ?, ?, ?, ?, ?, NULL, ?, ?)
           ON CONFLICT (run_id) DO UPDATE SET finished_at = excluded.finished_at, last_seq = excluded.last_seq,
               decisions = coalesce(playbook_runs.decisions, 0) + excluded.decisions""",
        [run_id, source, file_hash, seed, now, now, added, last_seq],
    )


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    cur = con.execute("SELECT * FROM playbook_runs WHERE run_id = ?", [run_id])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def insert_decisions(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> int:
    """Insert decision rows (in ``_DECISION_COLS`` order); ones already there (same run and id) are skipped."""
    if not rows:
        return 0
    before = con.execute("SELECT count(*) FROM playbook_decisions").fetchone()[0]
    con.executemany(
        f"INSERT OR IGNORE INTO playbook_decisions ({', '.join(_DECISION_COLS)}) VALUES ({_placeholders(len(_DECISION_COLS))})",
        list(rows),
    )
    return int(con.execute("SELECT count(*) FROM playbook_decisions").fetchone()[0] - before)


def insert_decisions_frame(con: duckdb.DuckDBPyConnection, df: Any) -> None:
    """Bulk insert of a decisions DataFrame (backtests: many rows at once), skipping existing ones."""
    con.register("_km_decisions", df)
    try:
        con.execute(
            f"INSERT OR IGNORE INTO playbook_decisions ({', '.join(_DECISION_COLS)}) "
            f"SELECT {', '.join(_DECISION_COLS)} FROM _km_decisions"
        )
    finally:
        con.unregister("_km_decisions")


def existing_decision_ids(con: duckdb.DuckDBPyConnection, run_id: str, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = con.execute(
        "SELECT decision_id FROM playbook_decisions WHERE run_id = ? AND decision_id IN (SELECT unnest(?))",
        [run_id, list(ids)],
    ).fetchall()
    return {r[0] for r in rows}


def decisions_frame(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> Any:
    if run_id is None:
        return con.execute("SELECT * FROM playbook_decisions ORDER BY ts, seq, playbook").df()
    return con.execute("SELECT * FROM playbook_decisions WHERE run_id = ? ORDER BY ts, seq, playbook", [run_id]).df()


def latest_run_id(con: duckdb.DuckDBPyConnection, mode: str | None = None) -> str | None:
    sql = "SELECT run_id FROM playbook_runs" + (" WHERE mode = ?" if mode else "") + " ORDER BY started_at DESC LIMIT 1"
    row = con.execute(sql, [mode] if mode else []).fetchone()
    return row[0] if row else None


def upsert_holdouts(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """(playbook, customer_id, arm, share, global_share, first_seen) rows; the first assignment wins."""
    insert_rows(con, "holdout_assignments", ("playbook", "customer_id", "arm", "share", "global_share", "first_seen"), rows)


def holdout_counts(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT playbook, arm, count(*), any_value(share), any_value(global_share) FROM holdout_assignments "
        "GROUP BY playbook, arm ORDER BY playbook, arm"
    ).fetchall()


def outcome_observations(
    con: duckdb.DuckDBPyConnection, outcome: str, customer_ids: Sequence[str]
) -> dict[str, tuple[float | None, datetime | None]]:
    """{customer_id: (value, observed_at)} of one outcome for the given customers (the analytical side of an id
    join; the outcomes always live in DuckDB)."""
    if not customer_ids:
        return {}
    rows = con.execute(
        "SELECT key, value, observed_at FROM outcomes "
        "WHERE key_kind = 'customer_id' AND name = ? AND key IN (SELECT unnest(?))",
        [outcome, list(customer_ids)],
    ).fetchall()
    return {k: (v, t) for k, v, t in rows}


def acted_on(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[str, str]]:
    """(playbook, customer_id) pairs whose action was taken in a run (a decision that fired)."""
    return con.execute(
        "SELECT DISTINCT playbook, customer_id FROM playbook_decisions "
        "WHERE run_id = ? AND kind = 'fire' AND status = 'fired' ORDER BY 1, 2",
        [run_id],
    ).fetchall()


def live_runs_with(con: duckdb.DuckDBPyConnection, playbook: str) -> list[str]:
    """The live runs that decided on ``playbook``, latest first."""
    rows = con.execute(
        """SELECT r.run_id FROM playbook_runs r WHERE r.mode = 'live' AND EXISTS (
               SELECT 1 FROM playbook_decisions d WHERE d.run_id = r.run_id AND d.playbook = ? AND d.kind = 'fire')
           ORDER BY r.started_at DESC""",
        [playbook],
    ).fetchall()
    return [r[0] for r in rows]


# -- cases ------------------------------------------------------------------------------------------------
_CASE_COLS = (
    "case_id", "playbook", "customer_id", "journey_id", "status", "owner", "first_owner", "team", "priority",
    "reason", "trigger_event_ids", "compensation_cents", "currency", "approval_entry_id", "opened_at",
    "sla_due_at", "updated_at", "decision_id",
)  # fmt: skip


def insert_case(con: duckdb.DuckDBPyConnection, case: dict[str, Any]) -> bool:
    """Insert a case; False when it already exists (idempotent replays)."""
    if con.execute("SELECT 1 FROM cases WHERE case_id = ?", [case["case_id"]]).fetchone():
        return False
    vals = [json.dumps(case[c]) if c == "trigger_event_ids" else case.get(c) for c in _CASE_COLS]
    con.execute(f"INSERT INTO cases ({', '.join(_CASE_COLS)}) VALUES ({_placeholders(len(_CASE_COLS))})", vals)
    return True


def get_case(con: duckdb.DuckDBPyConnection, case_id: str) -> dict[str, Any] | None:
    cur = con.execute("SELECT * FROM cases WHERE case_id = ?", [case_id])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def update_case(con: duckdb.DuckDBPyConnection, case_id: str, **fields: Any) -> None:
    cols = list(fields)
    con.execute(
        f"UPDATE cases SET {', '.join(f'{c} = ?' for c in cols)} WHERE case_id = ?",
        [fields[c] for c in cols] + [case_id],
    )


def add_case_event(
    con: duckdb.DuckDBPyConnection, case_id: str, ts: datetime, kind: str, actor: str | None,
    from_status: str | None = None, to_status: str | None = None, detail: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    n = con.execute("SELECT coalesce(max(n), 0) + 1 FROM case_events WHERE case_id = ?", [case_id]).fetchone()[0]
    con.execute(
        "INSERT INTO case_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [case_id, n, ts, kind, actor, from_status, to_status, json.dumps(detail or {}, default=str)],
    )


def case_timeline(con: duckdb.DuckDBPyConnection, case_id: str) -> list[dict[str, Any]]:
    cur = con.execute("SELECT * FROM case_events WHERE case_id = ? ORDER BY n", [case_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def cases_frame(con: duckdb.DuckDBPyConnection, status: str | None = None) -> Any:
    if status:
        return con.execute("SELECT * FROM cases WHERE status = ? ORDER BY opened_at", [status]).df()
    return con.execute("SELECT * FROM cases ORDER BY opened_at").df()


def case_stats(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Per playbook: cases, resolved, resolved by their first owner, mean handoffs, SLA breaches."""
    return con.execute(
        """
        SELECT playbook, count(*) AS cases,
               count(*) FILTER (WHERE status IN ('resolved', 'closed')) AS resolved,
               count(*) FILTER (WHERE status IN ('resolved', 'closed') AND owner IS NOT DISTINCT FROM first_owner) AS kept_owner,
               avg(handoffs) AS mean_handoffs,
               count(*) FILTER (WHERE coalesce(resolved_at, now()) > sla_due_at) AS sla_breaches
        FROM cases GROUP BY playbook ORDER BY playbook
        """
    ).fetchall()


# -- budgets and the ledger -------------------------------------------------------------------------------
def ensure_pool(
    con: duckdb.DuckDBPyConnection, pool: str, scope_key: str, period: str, period_start: datetime,
    amount_cents: int, currency: str, limit_cents: int | None,
) -> None:  # fmt: skip
    con.execute(
        "INSERT OR IGNORE INTO budgets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [pool, scope_key, period, period_start, amount_cents, amount_cents, currency, limit_cents],
    )


def take_from_pool(
    con: duckdb.DuckDBPyConnection, pool: str, scope_key: str, period_start: datetime, cents: int
) -> None:
    """Take money out of a pool; raises duckdb.ConstraintException when it would go below zero."""
    con.execute(
        "UPDATE budgets SET remaining_cents = remaining_cents - ? WHERE pool = ? AND scope_key = ? AND period_start = ?",
        [cents, pool, scope_key, period_start],
    )


def give_back_to_pool(
    con: duckdb.DuckDBPyConnection, pool: str, scope_key: str, period_start: datetime, cents: int
) -> None:
    """Put money back into a pool (a rejected reservation)."""
    take_from_pool(con, pool, scope_key, period_start, -cents)


def pool_row(con: duckdb.DuckDBPyConnection, pool: str, scope_key: str, period_start: datetime) -> tuple | None:
    return con.execute(
        "SELECT amount_cents, remaining_cents, currency, empowerment_limit_cents FROM budgets "
        "WHERE pool = ? AND scope_key = ? AND period_start = ?",
        [pool, scope_key, period_start],
    ).fetchone()


def limit_usage(
    con: duckdb.DuckDBPyConnection, pool: str, period_start: datetime, *, case_id: str | None,
    customer_id: str | None,
) -> int:  # fmt: skip
    """Cents already spent or reserved (not rejected) from ``pool`` on this case (any period) or on this
    customer in this period, whichever is more: what a new spend adds to before the empowerment limit."""
    if case_id is None and customer_id is None:
        return 0
    row = con.execute(
        """SELECT coalesce(sum(amount_cents) FILTER (WHERE case_id = $case), 0),
                  coalesce(sum(amount_cents) FILTER (WHERE customer_id = $cust AND period_start = $start), 0)
           FROM ledger
           WHERE pool = $pool AND status <> 'rejected'
             AND (case_id = $case OR (customer_id = $cust AND period_start = $start))""",
        {"pool": pool, "case": case_id, "cust": customer_id, "start": period_start},
    ).fetchone()
    return max(int(row[0]), int(row[1])) if row else 0


def customer_usage(con: duckdb.DuckDBPyConnection, keys: Sequence[tuple]) -> dict[tuple, int]:
    """{(pool, customer_id, period_start): cents spent or reserved (not rejected)} for the given keys."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT pool, customer_id, period_start, sum(amount_cents) FROM ledger "
        "WHERE status <> 'rejected' AND pool IN (SELECT unnest(?)) AND customer_id IN (SELECT unnest(?)) "
        "GROUP BY ALL",
        [sorted({k[0] for k in keys}), sorted({k[1] for k in keys})],
    ).fetchall()
    wanted = set(keys)
    return {(p, c, st): int(n) for p, c, st, n in rows if (p, c, st) in wanted}


def refresh_case_compensation(con: duckdb.DuckDBPyConnection, case_ids: Sequence[str]) -> None:
    """Set the cases' ``compensation_cents`` to what the ledger holds for them (spent or reserved, not
    rejected). Called in the transaction that writes their ledger rows, so the two can never disagree."""
    if case_ids:
        con.execute(
            """UPDATE cases SET compensation_cents = coalesce(
                   (SELECT sum(amount_cents) FROM ledger l WHERE l.case_id = cases.case_id AND l.status <> 'rejected'), 0)
               WHERE case_id IN (SELECT unnest(?))""",
            [sorted(set(case_ids))],
        )


def pending_for_case(con: duckdb.DuckDBPyConnection, case_id: str) -> list[str]:
    """The case's ledger entries waiting for approval, oldest first."""
    rows = con.execute(
        "SELECT entry_id FROM ledger WHERE case_id = ? AND status = 'pending_approval' ORDER BY created_at, entry_id",
        [case_id],
    ).fetchall()
    return [r[0] for r in rows]


def insert_ledger(con: duckdb.DuckDBPyConnection, entry: dict[str, Any]) -> None:
    cols = list(entry)
    con.execute(f"INSERT INTO ledger ({', '.join(cols)}) VALUES ({_placeholders(len(cols))})", [entry[c] for c in cols])


def get_ledger(con: duckdb.DuckDBPyConnection, entry_id: str) -> dict[str, Any] | None:
    cur = con.execute("SELECT * FROM ledger WHERE entry_id = ?", [entry_id])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def settle_ledger(con: duckdb.DuckDBPyConnection, entry_id: str, status: str, by: str | None, at: datetime) -> None:
    con.execute(
        "UPDATE ledger SET status = ?, settled_by = ?, settled_at = ? WHERE entry_id = ?", [status, by, at, entry_id]
    )


def budget_balances(con: duckdb.DuckDBPyConnection) -> Any:
    """Per pool, key and period: amount, remaining, and what the ledger says was spent / is reserved."""
    return con.execute(
        """
        SELECT b.pool, b.scope_key, b.period, b.period_start, b.amount_cents, b.remaining_cents, b.currency,
               coalesce(sum(l.amount_cents) FILTER (WHERE l.status = 'approved'), 0) AS spent_cents,
               coalesce(sum(l.amount_cents) FILTER (WHERE l.status = 'pending_approval'), 0) AS reserved_cents,
               count(l.entry_id) FILTER (WHERE l.status = 'pending_approval') AS pending
        FROM budgets b LEFT JOIN ledger l
          ON l.pool = b.pool AND l.scope_key = b.scope_key AND l.period_start = b.period_start
        GROUP BY ALL ORDER BY b.pool, b.scope_key, b.period_start
        """
    ).df()


def pending_approvals(con: duckdb.DuckDBPyConnection) -> Any:
    return con.execute("SELECT * FROM ledger WHERE status = 'pending_approval' ORDER BY created_at").df()


# -- outbox -----------------------------------------------------------------------------------------------
_OUTBOX_COLS = (
    "message_id", "decision_id", "playbook", "action_type", "url", "payload", "status", "attempts",
    "next_attempt_at", "created_at",
)  # fmt: skip


def insert_outbox(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """Outbox rows in ``_OUTBOX_COLS`` order; an existing message id is kept (so replays never duplicate)."""
    if rows:
        con.executemany(
            f"INSERT OR IGNORE INTO outbox ({', '.join(_OUTBOX_COLS)}) VALUES ({_placeholders(len(_OUTBOX_COLS))})",
            list(rows),
        )


def due_messages(con: duckdb.DuckDBPyConnection, now: datetime, limit: int) -> list[tuple]:
    return con.execute(
        "SELECT message_id, url, CAST(payload AS VARCHAR), attempts FROM outbox "
        "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, message_id LIMIT ?",
        [now, limit],
    ).fetchall()


def claim_due(con: duckdb.DuckDBPyConnection, now: datetime, limit: int, lease_s: float = 60.0) -> list[tuple]:
    """The due messages. One process delivers from an embedded store, so nothing needs claiming (the
    PostgreSQL twin leases them to one of several deliverers)."""
    return due_messages(con, now, limit)


def mark_delivered(con: duckdb.DuckDBPyConnection, message_id: str, status_code: int, at: datetime) -> None:
    con.execute(
        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_status = ?, delivered_at = ?, "
        "last_error = NULL WHERE message_id = ?",
        [status_code, at, message_id],
    )


def mark_failed(
    con: duckdb.DuckDBPyConnection, message_id: str, *, status: str, next_at: datetime | None, error: str,
    status_code: int | None,
) -> None:  # fmt: skip
    con.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = coalesce(?, next_attempt_at), "
        "last_error = ?, last_status = ? WHERE message_id = ?",
        [status, next_at, error[:500], status_code, message_id],
    )


def outbox_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in con.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()}


def outbox_backlog(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Messages waiting to be delivered, and since when the oldest waits."""
    row = con.execute("SELECT count(*), min(created_at) FROM outbox WHERE status = 'pending'").fetchone()
    return {"pending": int(row[0]), "oldest_pending": row[1]}


# -- meta -------------------------------------------------------------------------------------------------
def get_meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])


# -- bulk helpers (the live runner's fire step: a few statements per batch, not per decision) ---------------
def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, cols: Sequence[str], rows: Sequence[tuple], *, ignore: bool = True
) -> None:
    """Insert many rows: one multi-row ``VALUES`` statement for a few rows, one ``INSERT … SELECT`` from a
    registered frame for more (binding parameters costs per value: 1,000 rows of 24 columns take about 1.3 s
    as ``VALUES`` and 0.07 s as a frame; they break even near 32 rows).

    ``ignore=True`` skips rows whose key exists; pass False where the caller knows the keys are new (it is
    cheaper, and a duplicate then fails loudly instead of being hidden)."""
    if not rows:
        return
    head = f"INSERT {'OR IGNORE ' if ignore else ''}INTO {table} ({', '.join(cols)}) "
    if len(rows) > _VALUES_ROWS:
        import pandas as pd

        # object columns keep Python values as they are (big integers exact, None as NULL); DuckDB casts them
        con.register("_km_rows", pd.DataFrame(list(rows), columns=list(cols), dtype=object))
        try:
            con.execute(head + f"SELECT {', '.join(cols)} FROM _km_rows")
        finally:
            con.unregister("_km_rows")
        return
    one = "(" + ", ".join("?" * len(cols)) + ")"
    con.execute(head + "VALUES " + ", ".join([one] * len(rows)), [v for r in rows for v in r])


#: Up to this many rows, :func:`insert_rows` binds them as ``VALUES``; beyond it, it registers a frame.
_VALUES_ROWS = 32


def ensure_pools(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """(pool, scope_key, period, period_start, amount_cents, currency, limit_cents) rows; existing pools kept."""
    insert_rows(
        con, "budgets",
        ("pool", "scope_key", "period", "period_start", "amount_cents", "remaining_cents", "currency",
         "empowerment_limit_cents"),
        [(p, k, per, start, amt, amt, cur, lim) for p, k, per, start, amt, cur, lim in rows],
    )  # fmt: skip


def pool_remaining(con: duckdb.DuckDBPyConnection, keys: Sequence[tuple]) -> dict[tuple, tuple[int, int | None]]:
    """{(pool, scope_key, period_start): (remaining_cents, empowerment_limit_cents)} for the given keys."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT pool, scope_key, period_start, remaining_cents, empowerment_limit_cents FROM budgets "
        "WHERE pool IN (SELECT unnest(?)) AND scope_key IN (SELECT unnest(?))",
        [sorted({k[0] for k in keys}), sorted({k[1] for k in keys})],
    ).fetchall()
    wanted = set(keys)
    return {(p, k, st): (int(rem), None if lim is None else int(lim)) for p, k, st, rem, lim in rows if (p, k, st) in wanted}


@dataclass
class FireReads:
    """What ``PlaybookRunner.fire`` reads before it writes: decision ids already recorded, the pools'
    (remaining_cents, empowerment_limit_cents), the customers' usage of pools, the touched cases and the last
    number of each touched case's timeline."""

    known: set[str]
    remaining: dict[tuple, tuple[int, int | None]]
    used: dict[tuple, int]
    cases: dict[str, dict[str, Any]]
    max_n: dict[str, int]


def fire_reads(con: duckdb.DuckDBPyConnection, run_id: str, decision_ids: Sequence[str], pool_keys: Sequence[tuple],
               customer_ids: Sequence[str], usage_keys: Sequence[tuple], case_ids: Sequence[str], *,
               lock_pools: bool = True) -> FireReads:  # fmt: skip
    """Everything ``fire`` reads before it writes (the single writer holds the transaction, so no locks)."""
    return FireReads(existing_decision_ids(con, run_id, decision_ids), pool_remaining(con, pool_keys),
                     customer_usage(con, usage_keys), cases_by_id(con, case_ids), max_event_n(con, case_ids))  # fmt: skip


def cases_by_id(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    cur = con.execute("SELECT * FROM cases WHERE case_id IN (SELECT unnest(?))", [list(ids)])
    cols = [d[0] for d in cur.description]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def max_event_n(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = con.execute(
        "SELECT case_id, max(n) FROM case_events WHERE case_id IN (SELECT unnest(?)) GROUP BY case_id", [list(ids)]
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


#: not compensation_cents: only the ledger's writers set it (refresh_case_compensation)
_CASE_UPDATE_COLS = ("status", "owner", "first_owner", "handoffs", "resolved_at", "updated_at",
                     "approval_entry_id")  # fmt: skip


def update_cases(con: duckdb.DuckDBPyConnection, cases: Sequence[dict[str, Any]]) -> None:
    """Write the lifecycle columns of existing cases in one statement."""
    if not cases:
        return
    import pandas as pd

    df = pd.DataFrame([{c: case.get(c) for c in ("case_id", *_CASE_UPDATE_COLS)} for case in cases])
    con.register("_km_case_updates", df)
    try:
        sets = ", ".join(f"{c} = u.{c}" for c in _CASE_UPDATE_COLS)
        con.execute(f"UPDATE cases SET {sets} FROM _km_case_updates u WHERE cases.case_id = u.case_id")
    finally:
        con.unregister("_km_case_updates")


# -- what the shared rules call on either backend (store/ops.py): locks and reads ---------------------------
# The store's single writer serialises every write transaction, so a "lock" here is a plain read; the
# PostgreSQL twins in store/pg_tables.py take row locks (SELECT … FOR UPDATE) instead.
def lock_pool(con: duckdb.DuckDBPyConnection, pool: str, scope_key: str, period_start: datetime) -> tuple | None:
    """The pool's row (amount, remaining, currency, limit), held for the rest of the transaction."""
    return pool_row(con, pool, scope_key, period_start)


def lock_case(con: duckdb.DuckDBPyConnection, case_id: str) -> dict[str, Any] | None:
    """The case's row, held for the rest of the transaction."""
    return get_case(con, case_id)


def lock_limits(con: duckdb.DuckDBPyConnection, *, case_id: str | None = None, customer_id: str | None = None) -> None:
    """Serialise the spends of one case and one customer (the empowerment limits); the single writer already does."""


def lock_customers(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> None:
    """``lock_limits`` for many customers at once; the single writer already serialises them."""


def set_case_query(ph: str, case_id: str, expect: dict[str, Any], fields: dict[str, Any]) -> tuple[str, list]:
    """The compare-and-set of :func:`set_case` with the placeholder ``ph`` (``?`` here, ``%s`` on PostgreSQL)."""
    sets = ", ".join(f"{c} = {ph}" for c in fields)
    conds = "".join(f" AND {c} IS NOT DISTINCT FROM {ph}" for c in expect)
    return (f"UPDATE cases SET {sets} WHERE case_id = {ph}{conds} RETURNING case_id",
            [*fields.values(), case_id, *expect.values()])  # fmt: skip


def set_case(con: duckdb.DuckDBPyConnection, case_id: str, expect: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Compare-and-set: update the case only if every column in ``expect`` still holds that value (NULL
    matches NULL); False when another writer changed it first (or the case does not exist)."""
    return con.execute(*set_case_query("?", case_id, expect, fields)).fetchone() is not None


def set_case_status(con: duckdb.DuckDBPyConnection, case_id: str, frm: str, fields: dict[str, Any]) -> bool:
    """Update a case only if its status is still ``frm``; False when another writer moved it first."""
    return set_case(con, case_id, {"status": frm}, fields)


def ledger_query(ph: str, *, pool: str | None = None, status: str | None = None, case_id: str | None = None,
                 entry_id: str | None = None, limit: int | None = None, newest_first: bool = True) -> tuple[str, list]:  # fmt: skip
    """The SQL and parameters of :func:`ledger_frame` with the placeholder ``ph`` (``?`` here, ``%s`` on PostgreSQL)."""
    where, params = [], []
    for col, val in (("pool", pool), ("status", status), ("case_id", case_id), ("entry_id", entry_id)):
        if val is not None:
            where.append(f"{col} = {ph}")
            params.append(val)
    sql = "SELECT * FROM ledger" + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY created_at {'DESC' if newest_first else 'ASC'}, entry_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def ledger_frame(con: duckdb.DuckDBPyConnection, **filters: Any) -> Any:
    """Ledger entries (a DataFrame), filtered by pool, status, case_id or entry_id, newest first (or oldest
    first with ``newest_first=False``), at most ``limit``."""
    return con.execute(*ledger_query("?", **filters)).df()


def fire_arms(con: duckdb.DuckDBPyConnection, playbook: str, run_id: str) -> list[tuple[str, str, datetime]]:
    """(customer_id, arm, decided) per customer a playbook was triggered for in a run (fired or held out): the
    arm and the event time of the customer's first decision of the playbook (by time, then arrival)."""
    return con.execute(
        "SELECT customer_id, first(arm ORDER BY ts, seq), min(ts) FROM playbook_decisions "
        "WHERE playbook = ? AND kind = 'fire' AND run_id = ? GROUP BY customer_id ORDER BY customer_id",
        [playbook, run_id],
    ).fetchall()


def list_runs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT run_id, mode, source, seed, events, decisions, finished_at FROM playbook_runs ORDER BY started_at DESC"
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
