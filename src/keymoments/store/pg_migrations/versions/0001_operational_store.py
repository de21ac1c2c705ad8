"""The operational store: runs and decisions, holdouts, cases and their timeline, budgets and the ledger, the
outbox, API keys, and the live workers' partitions and processed events.

The tables are the embedded store's (``store/act_tables.py``, ``store/keys.py``), the same definitions written
in PostgreSQL's types (``postgres_ddl``), so one set of rules runs on both; PostgreSQL adds what many concurrent
writers need: ``CHECK`` on the statuses, a trigger that refuses case transitions the lifecycle forbids
(``act/cases.py``'s ``TRANSITIONS``), indexes for the queues, and the live workers' tables.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

from keymoments.store.act_tables import ACT_MIGRATION, postgres_ddl
from keymoments.store.keys import KEYS_MIGRATION

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The tables of the embedded store's migrations 2 and 3 (``act_tables.ACT_MIGRATION``, ``keys.KEYS_MIGRATION``),
#: one definition in two dialects (``postgres_ddl``); like them, frozen: later changes are new revisions.
_SHARED = [postgres_ddl(statement) for statement in ACT_MIGRATION + KEYS_MIGRATION]

_TABLES = [
    *_SHARED,
    # what many concurrent writers need besides: the statuses checked, indexes for the queues
    "ALTER TABLE cases ADD CHECK (status IN ('open', 'in_progress', 'awaiting_approval', 'resolved', 'closed'))",
    "ALTER TABLE ledger ADD CHECK (status IN ('approved', 'pending_approval', 'rejected'))",
    "CREATE INDEX playbook_decisions_playbook ON playbook_decisions (playbook, kind, customer_id)",
    "CREATE INDEX cases_status ON cases (status, opened_at)",
    "CREATE INDEX cases_customer ON cases (customer_id)",
    "CREATE INDEX ledger_pool ON ledger (pool, scope_key, period_start)",
    "CREATE INDEX ledger_case ON ledger (case_id)",
    "CREATE INDEX ledger_customer ON ledger (customer_id, created_at)",
    "CREATE INDEX ledger_actor ON ledger (actor, created_at)",
    "CREATE INDEX outbox_due ON outbox (next_attempt_at, message_id) WHERE status = 'pending'",
    # live workers: each partition's cursor (the last stream sequence whose effects are committed)
    """CREATE TABLE worker_partitions (
        stream TEXT NOT NULL,
        partition INTEGER NOT NULL,
        last_seq BIGINT NOT NULL DEFAULT 0,
        last_event_id TEXT,
        last_event_ts TIMESTAMPTZ,
        events BIGINT NOT NULL DEFAULT 0,
        worker_id TEXT,
        updated_at TIMESTAMPTZ,
        PRIMARY KEY (stream, partition)
    )""",
    """CREATE TABLE workers (
        worker_id TEXT PRIMARY KEY,
        host TEXT,
        pid INTEGER,
        stream TEXT,
        partitions TEXT,
        started_at TIMESTAMPTZ,
        heartbeat_at TIMESTAMPTZ,
        stopped_at TIMESTAMPTZ,
        last_event_id TEXT,
        last_seq BIGINT,
        events BIGINT NOT NULL DEFAULT 0
    )""",
    # events whose effects are committed (dedupe on event_id: redelivery is normal, double effects are not)
    """CREATE TABLE processed_events (
        event_id TEXT PRIMARY KEY,
        stream TEXT NOT NULL,
        partition INTEGER NOT NULL,
        seq BIGINT NOT NULL,
        customer_id TEXT,
        processed_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX processed_events_partition ON processed_events (stream, partition, seq)",
    # the case lifecycle, enforced by the database whoever writes (act/cases.py: TRANSITIONS)
    """CREATE FUNCTION km_check_case_transition() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
            (OLD.status = 'open' AND NEW.status IN ('in_progress', 'awaiting_approval', 'resolved', 'closed'))
            OR (OLD.status = 'in_progress' AND NEW.status IN ('awaiting_approval', 'resolved', 'closed'))
            OR (OLD.status = 'awaiting_approval' AND NEW.status IN ('in_progress', 'resolved', 'closed'))
            OR (OLD.status = 'resolved' AND NEW.status IN ('closed', 'in_progress'))
        ) THEN
            RAISE EXCEPTION 'case % cannot move from % to %', OLD.case_id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER cases_transition BEFORE UPDATE OF status ON cases
       FOR EACH ROW EXECUTE FUNCTION km_check_case_transition()""",
]


def upgrade() -> None:
    for statement in _TABLES:
        op.execute(statement)


def downgrade() -> None:
    for table in ("processed_events", "workers", "worker_partitions", "api_keys", "outbox", "ledger", "budgets",
                  "case_events", "cases", "holdout_assignments", "playbook_decisions", "playbook_runs"):  # fmt: skip
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS km_check_case_transition()")
