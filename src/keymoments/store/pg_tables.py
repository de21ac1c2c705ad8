"""SQL of the operational store on PostgreSQL: the twin of ``act_tables.py`` and ``keys.py``.

Every function here has the name, arguments and result of its DuckDB twin, so the act layer's rules run
unchanged on either backend (see ``store/ops.py``). What differs is what PostgreSQL needs to stay right with
many writers at once:

* ``lock_pool`` / ``pool_remaining`` / ``lock_case`` take row locks (``SELECT … FOR UPDATE``) that are held to
  the end of the transaction, so a check and the write it guards cannot interleave with another process's;
* ``lock_limits`` takes transaction-scoped advisory locks on the case and the customer, which serialise their
  spends across pool rows (the empowerment limits hold per case and per customer per period);
* ``set_case_status`` is a compare-and-set (``UPDATE … WHERE status = <the status the rule checked>``), and a
  trigger (``km_check_case_transition``, in the migration) refuses any status change the lifecycle forbids,
  whoever writes it.

Connections return ``json``/``jsonb`` columns as text (as DuckDB does) and timestamps in UTC; see
``store/postgres.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import pandas as pd

# the column orders the act layer writes in, shared with the DuckDB twin
from keymoments.store.act_tables import (
    _CASE_COLS,
    _CASE_UPDATE_COLS,
    _DECISION_COLS,
    _OUTBOX_COLS,
    FireReads,
    ledger_query,
    set_case_query,
)

__all__ = ["FireReads", "_DECISION_COLS", "_OUTBOX_COLS"]


def _frame(cur: Any) -> pd.DataFrame:
    cols = [d.name for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def _dicts(cur: Any) -> list[dict[str, Any]]:
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _one(cur: Any) -> dict[str, Any] | None:
    row = cur.fetchone()
    return None if row is None else dict(zip([d.name for d in cur.description], row, strict=True))


def _ph(n: int) -> str:
    return ", ".join(["%s"] * n)


# -- bulk -------------------------------------------------------------------------------------------------
def _json_columns() -> dict[str, frozenset[str]]:
    """The JSON columns of each table the act layer writes (their values arrive as JSON text)."""
    from keymoments.store.act_tables import ACT_MIGRATION
    from keymoments.store.keys import KEYS_MIGRATION

    out: dict[str, frozenset[str]] = {}
    for ddl in ACT_MIGRATION + KEYS_MIGRATION:
        m = re.match(r"\s*CREATE TABLE (\w+)", ddl)
        if m:
            out[m.group(1)] = frozenset(re.findall(r"(\w+)\s+JSON\b", ddl))
    return out


_JSON_COLUMNS = _json_columns()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in the operational store")


def insert_rows(con: Any, table: str, cols: Sequence[str], rows: Sequence[tuple], *, ignore: bool = True) -> None:
    """Insert many rows; ``ignore=True`` skips rows whose key exists.

    The rows travel as one JSON array, read by ``jsonb_populate_recordset`` into the table's own row type, so
    the statement's text is the same whatever the number of rows: psycopg parses it once and PostgreSQL
    prepares it once, where a multi-row ``VALUES`` of a new length each batch was parsed on both sides every
    time. Values of JSON columns arrive as JSON text and are embedded as they are. On a
    :class:`DeferredInserts` connection, rows for its append-only tables wait for its ``flush``."""
    if not rows:
        return
    if isinstance(con, DeferredInserts) and table in DeferredInserts.TABLES:
        con.parts.append((table, tuple(cols), rows, ignore))
        return
    for start in range(0, len(rows), _JSON_ROWS):
        con.execute(_insert_sql(table, cols, ignore), [_rows_json(table, cols, rows[start : start + _JSON_ROWS])])


def _insert_sql(table: str, cols: Sequence[str], ignore: bool) -> str:
    names = ", ".join(cols)
    return (f"INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
            + (" ON CONFLICT DO NOTHING" if ignore else ""))  # fmt: skip


def _rows_json(table: str, cols: Sequence[str], rows: Sequence[tuple]) -> str:
    as_json = _JSON_COLUMNS.get(table, frozenset())
    keep = {i for i, c in enumerate(cols) if c in as_json}
    if keep:
        rows = [tuple(orjson.Fragment(v) if i in keep and isinstance(v, str) else v for i, v in enumerate(r))
                for r in rows]  # fmt: skip
    return orjson.dumps([dict(zip(cols, r, strict=True)) for r in rows], default=_json_default,
                        option=orjson.OPT_SERIALIZE_NUMPY).decode()  # fmt: skip


class DeferredInserts:
    """A connection (every attribute is the wrapped one's) whose inserts into the append-only tables of a
    firing (:data:`TABLES`: nothing in the same transaction reads them back) wait for :meth:`flush`, which
    sends them all as one statement of data-modifying ``WITH`` parts.

    The worker's transaction writes a few rows to each of seven tables per batch; one statement instead of
    seven is that much less client and server time per transaction, which is what its latency's tail was
    made of. Errors are the same (a duplicate ledger entry still fails the transaction), raised at the flush."""

    TABLES = frozenset({"processed_events", "playbook_decisions", "holdout_assignments", "outbox", "cases",
                        "case_events", "ledger"})  # fmt: skip

    def __init__(self, con: Any) -> None:
        self.con = con
        self.parts: list[tuple[str, tuple[str, ...], Sequence[tuple], bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)

    def flush(self) -> None:
        """Send the waiting inserts (one statement), merging those of one table, columns and conflict rule."""
        merged: dict[tuple[str, tuple[str, ...], bool], list[tuple]] = {}
        for table, cols, rows, ignore in self.parts:
            merged.setdefault((table, cols, ignore), []).extend(rows)
        self.parts = []
        if not merged:
            return
        heads, params = [], []
        for i, ((table, cols, ignore), rows) in enumerate(sorted(merged.items())):
            heads.append(f"i{i} AS ({_insert_sql(table, cols, ignore)})")
            params.append(_rows_json(table, cols, rows))
        self.con.execute("WITH " + ",\n".join(heads) + "\nSELECT 1", params)


#: Rows per statement of :func:`insert_rows` (a few MB of JSON at most).
_JSON_ROWS = 10_000


# -- runs and decisions -----------------------------------------------------------------------------------
def insert_run(con: Any, run: dict[str, Any]) -> None:
    cols = list(run)
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "run_id")
    con.execute(
        f"INSERT INTO playbook_runs ({', '.join(cols)}) VALUES ({_ph(len(cols))}) ON CONFLICT (run_id) DO UPDATE SET {sets}",
        [run[c] for c in cols],
    )


def touch_live_run(
    con: Any, run_id: str, *, source: str | None, file_hash: str, seed: int, last_seq: int, added: int, now: datetime
) -> None:
    con.execute(
        """INSERT INTO playbook_runs (run_id, mode, source, file_hash, seed, started_at, finished_at, events,
                                      decisions, last_seq)
           VALUES (%s, 'live', %s, %s, %s, %s, %s, NULL, %s, %s)
           ON CONFLICT (run_id) DO UPDATE SET finished_at = excluded.finished_at,
               last_seq = GREATEST(excluded.last_seq, playbook_runs.last_seq),
               decisions = coalesce(playbook_runs.decisions, 0) + excluded.decisions""",
        [run_id, source, file_hash, seed, now, now, added, last_seq],
    )


def get_run(con: Any, run_id: str) -> dict[str, Any] | None:
    return _one(con.execute("SELECT * FROM playbook_runs WHERE run_id = %s", [run_id]))


def list_runs(con: Any) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT run_id, mode, source, seed, events, decisions, finished_at FROM playbook_runs ORDER BY started_at DESC"
    ))  # fmt: skip


def latest_run_id(con: Any, mode: str | None = None) -> str | None:
    sql = "SELECT run_id FROM playbook_runs" + (" WHERE mode = %s" if mode else "") + " ORDER BY started_at DESC LIMIT 1"
    row = con.execute(sql, [mode] if mode else []).fetchone()
    return row[0] if row else None


def insert_decisions(con: Any, rows: Sequence[tuple]) -> int:
    """Insert decision rows (in ``_DECISION_COLS`` order); ones already there (same run and id) are skipped."""
    if not rows:
        return 0
    before = con.execute("SELECT count(*) FROM playbook_decisions").fetchone()[0]
    insert_rows(con, "playbook_decisions", _DECISION_COLS, rows, ignore=True)
    return int(con.execute("SELECT count(*) FROM playbook_decisions").fetchone()[0] - before)


def insert_decisions_frame(con: Any, df: Any) -> None:
    rows = [tuple(None if _isna(v) else v for v in r) for r in df[list(_DECISION_COLS)].itertuples(index=False, name=None)]
    insert_rows(con, "playbook_decisions", _DECISION_COLS, rows, ignore=True)


def _isna(v: Any) -> bool:
    try:
        return v is None or (not isinstance(v, str | bytes | list | tuple | dict) and bool(pd.isna(v)))
    except (TypeError, ValueError):
        return False


def existing_decision_ids(con: Any, run_id: str, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = con.execute(
        "SELECT decision_id FROM playbook_decisions WHERE run_id = %s AND decision_id = ANY(%s)", [run_id, list(ids)]
    ).fetchall()
    return {r[0] for r in rows}


def decisions_frame(con: Any, run_id: str | None = None) -> Any:
    if run_id is None:
        return _frame(con.execute("SELECT * FROM playbook_decisions ORDER BY ts, seq, playbook"))
    return _frame(con.execute("SELECT * FROM playbook_decisions WHERE run_id = %s ORDER BY ts, seq, playbook", [run_id]))


def upsert_holdouts(con: Any, rows: Sequence[tuple]) -> None:
    insert_rows(con, "holdout_assignments", ("playbook", "customer_id", "arm", "share", "global_share", "first_seen"), rows)


def holdout_counts(con: Any) -> list[tuple]:
    return con.execute(
        "SELECT playbook, arm, count(*), min(share), min(global_share) FROM holdout_assignments "
        "GROUP BY playbook, arm ORDER BY playbook, arm"
    ).fetchall()


def fire_arms(con: Any, playbook: str, run_id: str) -> list[tuple[str, str, Any]]:
    """See ``act_tables.fire_arms``: the arm and event time of each customer's first decision of the playbook."""
    return con.execute(
        "SELECT DISTINCT ON (customer_id) customer_id, arm, ts FROM playbook_decisions "
        "WHERE playbook = %s AND kind = 'fire' AND run_id = %s ORDER BY customer_id, ts, seq",
        [playbook, run_id],
    ).fetchall()


def acted_on(con: Any, run_id: str) -> list[tuple[str, str]]:
    """See ``act_tables.acted_on``."""
    return con.execute(
        "SELECT DISTINCT playbook, customer_id FROM playbook_decisions "
        "WHERE run_id = %s AND kind = 'fire' AND status = 'fired' ORDER BY 1, 2",
        [run_id],
    ).fetchall()


def live_runs_with(con: Any, playbook: str) -> list[str]:
    """See ``act_tables.live_runs_with``."""
    rows = con.execute(
        """SELECT r.run_id FROM playbook_runs r WHERE r.mode = 'live' AND EXISTS (
               SELECT 1 FROM playbook_decisions d WHERE d.run_id = r.run_id AND d.playbook = %s AND d.kind = 'fire')
           ORDER BY r.started_at DESC""",
        [playbook],
    ).fetchall()
    return [r[0] for r in rows]


# -- cases ------------------------------------------------------------------------------------------------
def insert_case(con: Any, case: dict[str, Any]) -> bool:
    vals = [json.dumps(case[c]) if c == "trigger_event_ids" else case.get(c) for c in _CASE_COLS]
    cur = con.execute(
        f"INSERT INTO cases ({', '.join(_CASE_COLS)}) VALUES ({_ph(len(_CASE_COLS))}) ON CONFLICT DO NOTHING", vals
    )
    return cur.rowcount == 1


def get_case(con: Any, case_id: str) -> dict[str, Any] | None:
    return _one(con.execute("SELECT * FROM cases WHERE case_id = %s", [case_id]))


def lock_case(con: Any, case_id: str) -> dict[str, Any] | None:
    return _one(con.execute("SELECT * FROM cases WHERE case_id = %s FOR UPDATE", [case_id]))


def update_case(con: Any, case_id: str, **fields: Any) -> None:
    cols = list(fields)
    con.execute(
        f"UPDATE cases SET {', '.join(f'{c} = %s' for c in cols)} WHERE case_id = %s",
        [fields[c] for c in cols] + [case_id],
    )


def set_case(con: Any, case_id: str, expect: dict[str, Any], fields: dict[str, Any]) -> bool:
    """See ``act_tables.set_case``: a compare-and-set (the trigger still refuses a forbidden status change)."""
    return con.execute(*set_case_query("%s", case_id, expect, fields)).fetchone() is not None


def set_case_status(con: Any, case_id: str, frm: str, fields: dict[str, Any]) -> bool:
    """Update a case only if its status is still ``frm``; False when another writer moved it first."""
    return set_case(con, case_id, {"status": frm}, fields)


def add_case_event(
    con: Any, case_id: str, ts: datetime, kind: str, actor: str | None,
    from_status: str | None = None, to_status: str | None = None, detail: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    # n is the next number in the case's timeline; the case row is locked by whoever writes its timeline
    con.execute(
        """INSERT INTO case_events (case_id, n, ts, kind, actor, from_status, to_status, detail)
           SELECT %s, coalesce(max(n), 0) + 1, %s, %s, %s, %s, %s, %s FROM case_events WHERE case_id = %s""",
        [case_id, ts, kind, actor, from_status, to_status, json.dumps(detail or {}, default=str), case_id],
    )


def case_timeline(con: Any, case_id: str) -> list[dict[str, Any]]:
    return _dicts(con.execute("SELECT * FROM case_events WHERE case_id = %s ORDER BY n", [case_id]))


def cases_frame(con: Any, status: str | None = None) -> Any:
    if status:
        return _frame(con.execute("SELECT * FROM cases WHERE status = %s ORDER BY opened_at", [status]))
    return _frame(con.execute("SELECT * FROM cases ORDER BY opened_at"))


def case_stats(con: Any) -> list[tuple]:
    return con.execute(
        """
        SELECT playbook, count(*) AS cases,
               count(*) FILTER (WHERE status IN ('resolved', 'closed')) AS resolved,
               count(*) FILTER (WHERE status IN ('resolved', 'closed') AND owner IS NOT DISTINCT FROM first_owner) AS kept_owner,
               avg(handoffs)::double precision AS mean_handoffs,
               count(*) FILTER (WHERE coalesce(resolved_at, now()) > sla_due_at) AS sla_breaches
        FROM cases GROUP BY playbook ORDER BY playbook
        """
    ).fetchall()


def cases_by_id(con: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = _dicts(con.execute("SELECT * FROM cases WHERE case_id = ANY(%s) ORDER BY case_id FOR UPDATE", [list(ids)]))
    return {r["case_id"]: r for r in rows}


def max_event_n(con: Any, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = con.execute(
        "SELECT case_id, max(n) FROM case_events WHERE case_id = ANY(%s) GROUP BY case_id", [list(ids)]
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def update_cases(con: Any, cases: Sequence[dict[str, Any]]) -> None:
    for case in cases:
        update_case(con, case["case_id"], **{c: case.get(c) for c in _CASE_UPDATE_COLS})


# -- budgets and the ledger -------------------------------------------------------------------------------
def ensure_pool(
    con: Any, pool: str, scope_key: str, period: str, period_start: datetime, amount_cents: int, currency: str,
    limit_cents: int | None,
) -> None:  # fmt: skip
    con.execute(
        "INSERT INTO budgets VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [pool, scope_key, period, period_start, amount_cents, amount_cents, currency, limit_cents],
    )


def ensure_pools(con: Any, rows: Sequence[tuple]) -> None:
    insert_rows(
        con, "budgets",
        ("pool", "scope_key", "period", "period_start", "amount_cents", "remaining_cents", "currency",
         "empowerment_limit_cents"),
        [(p, k, per, start, amt, amt, cur, lim) for p, k, per, start, amt, cur, lim in sorted(rows)],
    )  # fmt: skip


def pool_row(con: Any, pool: str, scope_key: str, period_start: datetime) -> tuple | None:
    return con.execute(
        "SELECT amount_cents, remaining_cents, currency, empowerment_limit_cents FROM budgets "
        "WHERE pool = %s AND scope_key = %s AND period_start = %s",
        [pool, scope_key, period_start],
    ).fetchone()


def lock_pool(con: Any, pool: str, scope_key: str, period_start: datetime) -> tuple | None:
    return con.execute(
        "SELECT amount_cents, remaining_cents, currency, empowerment_limit_cents FROM budgets "
        "WHERE pool = %s AND scope_key = %s AND period_start = %s FOR UPDATE",
        [pool, scope_key, period_start],
    ).fetchone()


def lock_limits(con: Any, *, case_id: str | None = None, customer_id: str | None = None) -> None:
    """Advisory locks (to the transaction's end) on the case and on the customer, always in that order."""
    for kind, key in (("case", case_id), ("customer", customer_id)):
        if key:
            con.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"km-{kind}:{key}"])


def lock_customers(con: Any, customer_ids: Sequence[str]) -> None:
    """``lock_limits`` for many customers at once, in sorted order (one statement)."""
    ids = sorted({c for c in customer_ids if c})
    if ids:
        con.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('km-customer:' || k, 0)) FROM unnest(%s::text[]) AS k "
            "ORDER BY k",
            [ids],
        )


def pool_remaining(con: Any, keys: Sequence[tuple]) -> dict[tuple, tuple[int, int | None]]:
    """Locks the rows (in key order, so two writers never wait on each other in a circle) and reads them."""
    return fire_reads(con, "", (), keys, (), (), ()).remaining


def fire_reads(con: Any, run_id: str, decision_ids: Sequence[str], pool_keys: Sequence[tuple],
               customer_ids: Sequence[str], usage_keys: Sequence[tuple], case_ids: Sequence[str], *,
               lock_pools: bool = True) -> FireReads:  # fmt: skip
    """Everything :meth:`PlaybookRunner.fire` reads before it writes, and the locks it takes, in one round trip.

    The statements are all sent before any result is read, so on a connection in pipeline mode (the worker's)
    they travel together; the locks are taken in the order every writer takes them: the pools' rows (sorted),
    the customers' advisory locks (sorted), the touched cases' rows (sorted). ``lock_pools=False`` reads the
    pools without locking them (the worker's optimistic pass: the ``UPDATE`` that takes the money locks the row
    at the end of the transaction, and ``CHECK (remaining_cents >= 0)`` fails it if others took the money
    meanwhile). See ``act_tables.fire_reads``."""
    q_known = q_pools = q_used = q_cases = q_n = None
    if decision_ids:
        q_known = con.execute("SELECT decision_id FROM playbook_decisions WHERE run_id = %s AND decision_id = ANY(%s)",
                              [run_id, list(decision_ids)])  # fmt: skip
    keys = sorted(set(pool_keys))
    if keys:
        q_pools = con.execute(
            "SELECT pool, scope_key, period_start, remaining_cents, empowerment_limit_cents FROM budgets "
            "WHERE (pool, scope_key, period_start) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[])) "
            "ORDER BY pool, scope_key, period_start" + (" FOR UPDATE" if lock_pools else ""),
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
        )
    lock_customers(con, customer_ids)
    if usage_keys:
        q_used = con.execute(
            "SELECT pool, customer_id, period_start, sum(amount_cents) FROM ledger WHERE status <> 'rejected' "
            "AND pool = ANY(%s) AND customer_id = ANY(%s) GROUP BY pool, customer_id, period_start",
            [sorted({k[0] for k in usage_keys}), sorted({k[1] for k in usage_keys})],
        )
    if case_ids:
        ids = sorted(set(case_ids))
        q_cases = con.execute("SELECT * FROM cases WHERE case_id = ANY(%s) ORDER BY case_id FOR UPDATE", [ids])
        q_n = con.execute("SELECT case_id, max(n) FROM case_events WHERE case_id = ANY(%s) GROUP BY case_id", [ids])
    wanted = set(usage_keys)
    return FireReads(
        known={r[0] for r in q_known.fetchall()} if q_known else set(),
        remaining={(p, k, st): (int(rem), None if lim is None else int(lim))
                   for p, k, st, rem, lim in (q_pools.fetchall() if q_pools else [])},
        used={(p, c, st): int(n) for p, c, st, n in (q_used.fetchall() if q_used else []) if (p, c, st) in wanted},
        cases={r["case_id"]: r for r in _dicts(q_cases)} if q_cases else {},
        max_n={r[0]: int(r[1]) for r in q_n.fetchall()} if q_n else {},
    )  # fmt: skip


def take_from_pool(con: Any, pool: str, scope_key: str, period_start: datetime, cents: int) -> None:
    """Raises psycopg.errors.CheckViolation when the pool would go below zero."""
    con.execute(
        "UPDATE budgets SET remaining_cents = remaining_cents - %s WHERE pool = %s AND scope_key = %s AND period_start = %s",
        [cents, pool, scope_key, period_start],
    )


def give_back_to_pool(con: Any, pool: str, scope_key: str, period_start: datetime, cents: int) -> None:
    take_from_pool(con, pool, scope_key, period_start, -cents)


def limit_usage(con: Any, pool: str, period_start: datetime, *, case_id: str | None, customer_id: str | None) -> int:
    """Cents already spent or reserved (not rejected) from ``pool`` on this case (any period) or on this
    customer in this period, whichever is more (the caller holds ``lock_limits`` on both)."""
    if case_id is None and customer_id is None:
        return 0
    row = con.execute(
        """SELECT coalesce(sum(amount_cents) FILTER (WHERE case_id = %(case)s), 0),
                  coalesce(sum(amount_cents) FILTER (WHERE customer_id = %(cust)s AND period_start = %(start)s), 0)
           FROM ledger
           WHERE pool = %(pool)s AND status <> 'rejected'
             AND (case_id = %(case)s OR (customer_id = %(cust)s AND period_start = %(start)s))""",
        {"pool": pool, "case": case_id, "cust": customer_id, "start": period_start},
    ).fetchone()
    return max(int(row[0]), int(row[1])) if row else 0


def customer_usage(con: Any, keys: Sequence[tuple]) -> dict[tuple, int]:
    """{(pool, customer_id, period_start): cents spent or reserved (not rejected)} for the given keys."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT pool, customer_id, period_start, sum(amount_cents) FROM ledger "
        "WHERE status <> 'rejected' AND pool = ANY(%s) AND customer_id = ANY(%s) GROUP BY pool, customer_id, period_start",
        [sorted({k[0] for k in keys}), sorted({k[1] for k in keys})],
    ).fetchall()
    wanted = set(keys)
    return {(p, c, st): int(n) for p, c, st, n in rows if (p, c, st) in wanted}


def refresh_case_compensation(con: Any, case_ids: Sequence[str]) -> None:
    """Set the cases' ``compensation_cents`` to what the ledger holds for them (spent or reserved)."""
    if case_ids:
        con.execute(
            """UPDATE cases SET compensation_cents = coalesce(
                   (SELECT sum(amount_cents) FROM ledger l WHERE l.case_id = cases.case_id AND l.status <> 'rejected'), 0)
               WHERE case_id = ANY(%s)""",
            [sorted(set(case_ids))],
        )


def pending_for_case(con: Any, case_id: str) -> list[str]:
    """The case's ledger entries waiting for approval, oldest first."""
    rows = con.execute(
        "SELECT entry_id FROM ledger WHERE case_id = %s AND status = 'pending_approval' ORDER BY created_at, entry_id",
        [case_id],
    ).fetchall()
    return [r[0] for r in rows]


def insert_ledger(con: Any, entry: dict[str, Any]) -> None:
    cols = list(entry)
    con.execute(f"INSERT INTO ledger ({', '.join(cols)}) VALUES ({_ph(len(cols))})", [entry[c] for c in cols])


def get_ledger(con: Any, entry_id: str) -> dict[str, Any] | None:
    return _one(con.execute("SELECT * FROM ledger WHERE entry_id = %s", [entry_id]))


def lock_ledger(con: Any, entry_id: str) -> dict[str, Any] | None:
    return _one(con.execute("SELECT * FROM ledger WHERE entry_id = %s FOR UPDATE", [entry_id]))


def settle_ledger(con: Any, entry_id: str, status: str, by: str | None, at: datetime) -> None:
    con.execute(
        "UPDATE ledger SET status = %s, settled_by = %s, settled_at = %s WHERE entry_id = %s", [status, by, at, entry_id]
    )


def budget_balances(con: Any) -> Any:
    return _frame(con.execute(
        """
        SELECT b.pool, b.scope_key, b.period, b.period_start, b.amount_cents, b.remaining_cents, b.currency,
               coalesce(sum(l.amount_cents) FILTER (WHERE l.status = 'approved'), 0)::bigint AS spent_cents,
               coalesce(sum(l.amount_cents) FILTER (WHERE l.status = 'pending_approval'), 0)::bigint AS reserved_cents,
               count(l.entry_id) FILTER (WHERE l.status = 'pending_approval') AS pending
        FROM budgets b LEFT JOIN ledger l
          ON l.pool = b.pool AND l.scope_key = b.scope_key AND l.period_start = b.period_start
        GROUP BY b.pool, b.scope_key, b.period, b.period_start, b.amount_cents, b.remaining_cents, b.currency
        ORDER BY b.pool, b.scope_key, b.period_start
        """
    ))  # fmt: skip


def pending_approvals(con: Any) -> Any:
    return _frame(con.execute("SELECT * FROM ledger WHERE status = 'pending_approval' ORDER BY created_at"))


def ledger_frame(con: Any, **filters: Any) -> Any:
    return _frame(con.execute(*ledger_query("%s", **filters)))


# -- outbox -----------------------------------------------------------------------------------------------
def insert_outbox(con: Any, rows: Sequence[tuple]) -> None:
    insert_rows(con, "outbox", _OUTBOX_COLS, rows, ignore=True)


def due_messages(con: Any, now: datetime, limit: int) -> list[tuple]:
    """Due messages, claimed for this transaction: ``SKIP LOCKED`` lets several deliverers share the outbox."""
    return con.execute(
        "SELECT message_id, url, payload::text, attempts FROM outbox "
        "WHERE status = 'pending' AND next_attempt_at <= %s ORDER BY next_attempt_at, message_id LIMIT %s "
        "FOR UPDATE SKIP LOCKED",
        [now, limit],
    ).fetchall()


def claim_due(con: Any, now: datetime, limit: int, lease_s: float = 60.0) -> list[tuple]:
    """Due messages, claimed: each is due again only after ``lease_s`` seconds (when its deliverer died before
    marking it), and ``SKIP LOCKED`` keeps deliverers running at once from taking the same ones."""
    return con.execute(
        """UPDATE outbox SET next_attempt_at = %s + make_interval(secs => %s)
           WHERE message_id IN (SELECT message_id FROM outbox WHERE status = 'pending' AND next_attempt_at <= %s
                                ORDER BY next_attempt_at, message_id LIMIT %s FOR UPDATE SKIP LOCKED)
           RETURNING message_id, url, payload::text, attempts""",
        [now, lease_s, now, limit],
    ).fetchall()


def mark_delivered(con: Any, message_id: str, status_code: int, at: datetime) -> None:
    con.execute(
        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_status = %s, delivered_at = %s, "
        "last_error = NULL WHERE message_id = %s",
        [status_code, at, message_id],
    )


def mark_failed(
    con: Any, message_id: str, *, status: str, next_at: datetime | None, error: str, status_code: int | None
) -> None:
    con.execute(
        "UPDATE outbox SET status = %s, attempts = attempts + 1, next_attempt_at = coalesce(%s, next_attempt_at), "
        "last_error = %s, last_status = %s WHERE message_id = %s",
        [status, next_at, error[:500], status_code, message_id],
    )


def outbox_counts(con: Any) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in con.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()}


def outbox_backlog(con: Any) -> dict[str, Any]:
    row = con.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE status = 'pending'"
    ).fetchone()
    return {"pending": int(row[0]), "oldest_pending": row[1]}


# -- API keys (store/keys.py's twins) ---------------------------------------------------------------------
_KEY_COLS = ("key_id", "role", "name", "employee_id", "created_at", "last_used_at", "revoked_at")


def insert_key(con: Any, key_id: str, key_hash: str, role: str, name: str | None, employee_id: str | None,
               at: datetime) -> None:  # fmt: skip
    con.execute(
        "INSERT INTO api_keys (key_id, key_hash, role, name, employee_id, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
        [key_id, key_hash, role, name, employee_id, at],
    )


def find_key(con: Any, key_hash: str) -> dict[str, Any] | None:
    return _one(con.execute(f"SELECT {', '.join(_KEY_COLS)} FROM api_keys WHERE key_hash = %s", [key_hash]))


def revoke_key(con: Any, key_id: str, at: datetime) -> bool:
    cur = con.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE key_id = %s", [at, key_id])
    return cur.rowcount == 1


def touch_key(con: Any, key_id: str, at: datetime) -> None:
    con.execute("UPDATE api_keys SET last_used_at = %s WHERE key_id = %s", [at, key_id])


def list_keys(con: Any) -> list[dict[str, Any]]:
    return _dicts(con.execute(f"SELECT {', '.join(_KEY_COLS)} FROM api_keys ORDER BY created_at"))


# -- live workers (keymoments/live/worker.py): partition cursors, processed events, heartbeats --------------
PROCESSED_COLS = ("event_id", "stream", "partition", "seq", "customer_id", "processed_at")


def partition_cursor(con: Any, stream: str, partition: int) -> int:
    """The last stream sequence of a partition whose effects are committed (0: none yet)."""
    row = con.execute("SELECT last_seq FROM worker_partitions WHERE stream = %s AND partition = %s",
                      [stream, partition]).fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def advance_partition(con: Any, stream: str, partition: int, *, last_seq: int, last_event_id: str | None,
                      last_event_ts: datetime | None, added: int, worker_id: str, now: datetime) -> None:  # fmt: skip
    """Move a partition's cursor forward, in the transaction that commits the events' effects.

    Only the partition's row: its one owner writes it, so no two transactions wait on each other here (the
    worker's own row, which its partitions share, moves with its heartbeat; see ``heartbeat_worker``). The
    cursor never moves back: a killed owner's last pipeline (its commit already sent) can still commit after
    the next owner has moved on."""
    con.execute(
        """INSERT INTO worker_partitions AS w (stream, partition, last_seq, last_event_id, last_event_ts, events,
                                               worker_id, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (stream, partition) DO UPDATE SET last_seq = GREATEST(w.last_seq, excluded.last_seq),
               last_event_id = coalesce(excluded.last_event_id, w.last_event_id),
               last_event_ts = coalesce(excluded.last_event_ts, w.last_event_ts), events = w.events + excluded.events,
               worker_id = excluded.worker_id, updated_at = excluded.updated_at""",
        [stream, partition, last_seq, last_event_id, last_event_ts, added, worker_id, now],
    )


#: The channel on which a worker's transaction announces, at its commit, the partition cursors it moved.
COMMITS_CHANNEL = "km_commits"


def notify_commit(con: Any, stream: str, cursors: dict[int, int]) -> None:
    """Announce on :data:`COMMITS_CHANNEL` (``NOTIFY``, delivered when the transaction commits, never if it
    rolls back) that the effects of ``stream``'s messages up to ``cursors[partition]`` are committed. A
    listener (a dashboard, ``bench/bench_live.py``) learns of each commit as it happens, without polling. The
    payload is JSON: ``{"schema": …, "stream": …, "cursors": {"<partition>": <last sequence>}}``; its schema
    is the one the transaction writes to (channels are shared by the whole database)."""
    body = orjson.dumps({"stream": stream, "cursors": {str(p): int(s) for p, s in cursors.items()}})
    con.execute("SELECT pg_notify(%s, (jsonb_build_object('schema', current_schema()) || %s::jsonb)::text)",
                [COMMITS_CHANNEL, body.decode()])


def register_worker(con: Any, worker_id: str, *, host: str, pid: int, stream: str, partitions: str, now: datetime) -> None:
    con.execute(
        """INSERT INTO workers (worker_id, host, pid, stream, partitions, started_at, heartbeat_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, stream = excluded.stream,
               partitions = excluded.partitions, started_at = excluded.started_at,
               heartbeat_at = excluded.heartbeat_at, stopped_at = NULL""",
        [worker_id, host, pid, stream, partitions, now, now],
    )


def heartbeat_worker(con: Any, worker_id: str, now: datetime, *, partitions: str | None = None,
                     stopped: bool = False, events: int | None = None, last_event_id: str | None = None,
                     last_seq: int | None = None) -> None:  # fmt: skip
    """The worker is alive (each second): its partitions, and the events it processed and the last one so far."""
    con.execute(
        "UPDATE workers SET heartbeat_at = %s, partitions = coalesce(%s, partitions), "
        "stopped_at = CASE WHEN %s THEN %s ELSE stopped_at END, events = coalesce(%s, events), "
        "last_event_id = coalesce(%s, last_event_id), last_seq = coalesce(%s, last_seq) WHERE worker_id = %s",
        [now, partitions, stopped, now, events, last_event_id, last_seq, worker_id],
    )


def workers_status(con: Any) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT worker_id, host, pid, stream, partitions, started_at, heartbeat_at, stopped_at, last_event_id, "
        "last_seq, events FROM workers ORDER BY started_at DESC LIMIT 100"
    ))  # fmt: skip


def partitions_status(con: Any) -> list[dict[str, Any]]:
    return _dicts(con.execute(
        "SELECT stream, partition, last_seq, last_event_id, last_event_ts, events, worker_id, updated_at "
        "FROM worker_partitions ORDER BY stream, partition"
    ))  # fmt: skip
