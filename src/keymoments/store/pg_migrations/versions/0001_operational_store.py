"""The operational store: runs and decisions, holdouts, cases and their timeline, budgets and the ledger, the
outbox, API keys, and the live workers' partitions and processed events.

The tables mirror the embedded store's (``store/act_tables.py``, ``store/keys.py``) column for column, so one
set of rules runs on both; PostgreSQL adds what many concurrent writers need: the ``CHECK`` on a pool's
remaining money, a trigger that refuses case transitions the lifecycle forbids (``act/cases.py``'s
``TRANSITIONS``), and indexes for the queues.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    """CREATE TABLE playbook_runs (
        run_id TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        source TEXT,
        file_hash TEXT,
        seed BIGINT,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        events BIGINT,
        decisions BIGINT,
        last_seq BIGINT
    )""",
    """CREATE TABLE playbook_decisions (
        run_id TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        mode TEXT NOT NULL,
        playbook TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        trigger TEXT,
        customer_id TEXT,
        journey_id TEXT,
        event_id TEXT,
        ts TIMESTAMPTZ,
        seq BIGINT,
        arm TEXT,
        cost_cents BIGINT,
        budget TEXT,
        budget_key TEXT,
        needs_approval BOOLEAN,
        budget_blocked BOOLEAN,
        employee_id TEXT,
        location_id TEXT,
        case_id TEXT,
        actions JSONB,
        detail JSONB,
        decided_at TIMESTAMPTZ,
        PRIMARY KEY (run_id, decision_id)
    )""",
    "CREATE INDEX playbook_decisions_playbook ON playbook_decisions (playbook, kind, customer_id)",
    """CREATE TABLE holdout_assignments (
        playbook TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        arm TEXT NOT NULL,
        share DOUBLE PRECISION,
        global_share DOUBLE PRECISION,
        first_seen TIMESTAMPTZ,
        PRIMARY KEY (playbook, customer_id)
    )""",
    """CREATE TABLE cases (
        case_id TEXT PRIMARY KEY,
        playbook TEXT,
        customer_id TEXT,
        journey_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'awaiting_approval', 'resolved', 'closed')),
        owner TEXT,
        first_owner TEXT,
        team TEXT,
        priority TEXT,
        reason TEXT,
        trigger_event_ids JSONB,
        compensation_cents BIGINT DEFAULT 0,
        currency TEXT,
        approval_entry_id TEXT,
        opened_at TIMESTAMPTZ,
        sla_due_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ,
        resolved_at TIMESTAMPTZ,
        closed_at TIMESTAMPTZ,
        handoffs INTEGER DEFAULT 0,
        decision_id TEXT
    )""",
    "CREATE INDEX cases_status ON cases (status, opened_at)",
    "CREATE INDEX cases_customer ON cases (customer_id)",
    """CREATE TABLE case_events (
        case_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        ts TIMESTAMPTZ,
        kind TEXT,
        actor TEXT,
        from_status TEXT,
        to_status TEXT,
        detail JSONB,
        PRIMARY KEY (case_id, n)
    )""",
    """CREATE TABLE budgets (
        pool TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        period TEXT NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        amount_cents BIGINT NOT NULL,
        remaining_cents BIGINT NOT NULL CHECK (remaining_cents >= 0),
        currency TEXT,
        empowerment_limit_cents BIGINT,
        PRIMARY KEY (pool, scope_key, period_start)
    )""",
    """CREATE TABLE ledger (
        entry_id TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        period_start TIMESTAMPTZ NOT NULL,
        amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
        status TEXT NOT NULL CHECK (status IN ('approved', 'pending_approval', 'rejected')),
        case_id TEXT,
        decision_id TEXT,
        customer_id TEXT,
        actor TEXT,
        note TEXT,
        created_at TIMESTAMPTZ,
        settled_at TIMESTAMPTZ,
        settled_by TEXT
    )""",
    "CREATE INDEX ledger_pool ON ledger (pool, scope_key, period_start)",
    "CREATE INDEX ledger_case ON ledger (case_id)",
    "CREATE INDEX ledger_customer ON ledger (customer_id, created_at)",
    "CREATE INDEX ledger_actor ON ledger (actor, created_at)",
    """CREATE TABLE outbox (
        message_id TEXT PRIMARY KEY,
        decision_id TEXT,
        playbook TEXT,
        action_type TEXT,
        url TEXT,
        payload JSONB,
        status TEXT NOT NULL,
        attempts INTEGER DEFAULT 0,
        next_attempt_at TIMESTAMPTZ,
        last_error TEXT,
        last_status INTEGER,
        created_at TIMESTAMPTZ,
        delivered_at TIMESTAMPTZ
    )""",
    "CREATE INDEX outbox_due ON outbox (next_attempt_at, message_id) WHERE status = 'pending'",
    """CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        name TEXT,
        employee_id TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        last_used_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ
    )""",
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
