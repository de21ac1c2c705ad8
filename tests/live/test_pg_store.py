"""The operational store on the real PostgreSQL: the embedded store's rules, run unchanged, give the same answers;
the database itself refuses illegal case transitions; the second of two racing agents gets a 409."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from fastapi.testclient import TestClient

from act import test_budget_limits as limits
from act import test_budgets as budgets
from act import test_cases as cases
from act import test_runner as runner_tests
from act.conftest import load_events
from keymoments.act.budgets import Ledger
from keymoments.act.cases import CaseBook
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.exceptions import ConflictError
from keymoments.serve.app import create_app
from keymoments.serve.auth import KeyRing, create_key, list_keys, revoke_key
from keymoments.store.store import Store

LIMIT_RULES = [
    limits.test_three_spends_on_one_case_share_one_limit,
    limits.test_the_rest_of_the_limit_can_be_spent_at_once,
    limits.test_the_limit_holds_per_customer_per_period_across_cases,
    limits.test_a_rejected_reservation_gives_its_room_back,
    limits.test_spends_without_a_case_or_customer_are_judged_alone,
]


@pytest.mark.parametrize("rule", LIMIT_RULES, ids=lambda f: f.__name__)
def test_the_embedded_stores_limit_rules_hold_on_postgresql(rule, pg_store):
    rule(pg_store, Ledger(pg_store, [limits.RECOVERY]))


@pytest.mark.parametrize(
    "rule",
    [budgets.test_within_limit_auto_approves_above_waits_for_a_manager, budgets.test_many_threads_never_overdraw,
     cases.test_lifecycle_approval_and_continuity],
    ids=lambda f: f.__name__,
)  # fmt: skip
def test_the_embedded_stores_ledger_and_case_rules_hold_on_postgresql(rule, pg_store):
    rule(pg_store)


def _operational_state(store: Store) -> dict[str, list]:
    ops = store.ops
    with ops.read() as con:
        dec = ops.sql.decisions_frame(con)
        led = ops.sql.ledger_frame(con, newest_first=False)
        cs = ops.sql.cases_frame(con)
        out = con.execute("SELECT message_id, status, CAST(payload AS VARCHAR) FROM outbox ORDER BY message_id").fetchall()
    return {
        "decisions": sorted(dec[["decision_id", "playbook", "kind", "status", "cost_cents", "case_id"]].itertuples(index=False, name=None)),
        "ledger": sorted(led[["entry_id", "pool", "scope_key", "amount_cents", "status", "case_id"]].itertuples(index=False, name=None)),
        "cases": sorted(cs[["case_id", "status", "owner", "compensation_cents", "approval_entry_id"]].itertuples(index=False, name=None)),
        "outbox": [(m, st, json.loads(body)) for m, st, body in out],  # jsonb keeps its own key order
    }  # fmt: skip


def test_live_runs_record_the_same_on_both_backends(tmp_path, pg_url, pg_schema):
    pf = loads_playbooks(runner_tests.PB)
    states = []
    for kind in ("embedded", "postgresql"):
        url = pg_url if kind == "postgresql" else None
        with Store(tmp_path / f"{kind}.duckdb", database_url=url, database_schema=pg_schema) as store:
            assert store.ops.kind == kind
            load_events(store, runner_tests.HISTORY[:3])
            PlaybookRunner(store, pf).run_live()
            load_events(store, runner_tests.HISTORY[3:])
            PlaybookRunner(store, pf).run_live()
            PlaybookRunner(store, pf).run_live()  # nothing new: nothing written
            states.append(_operational_state(store))
    embedded, postgres = states
    assert embedded["decisions"] and embedded["ledger"] and embedded["cases"] and embedded["outbox"]
    assert postgres == embedded


def test_the_database_refuses_an_illegal_transition_whoever_writes_it(pg_ops):
    with pg_ops.write() as con:
        pg_ops.sql.insert_case(con, {"case_id": "k1", "status": "closed", "trigger_event_ids": []})
    with pytest.raises(psycopg.errors.CheckViolation, match="cannot move from closed to open"):
        with pg_ops.write() as con:
            con.execute("UPDATE cases SET status = 'open' WHERE case_id = 'k1'")


def test_of_two_agents_racing_on_one_case_the_second_gets_a_conflict(pg_ops):
    with pg_ops.write() as con:
        pg_ops.sql.insert_case(con, {"case_id": "k1", "status": "in_progress", "trigger_event_ids": []})
    book = CaseBook(pg_ops)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def agent(name: str, to: str) -> None:
        barrier.wait()
        try:
            book.transition("k1", to, actor=name, expected="in_progress")
            results.append("ok")
        except ConflictError as exc:
            results.append(str(exc))

    ts = [threading.Thread(target=agent, args=("ann", "resolved")), threading.Thread(target=agent, args=("bob", "closed"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(results)[-1] == "ok" and "someone else just moved it" in sorted(results)[0]
    timeline = book.get("k1")["timeline"]
    assert len(timeline) == 1  # one move, recorded once


def test_the_api_answers_409_to_a_stale_move_and_keys_live_in_postgresql(pg_store):
    with pg_store.ops.write() as con:
        pg_store.ops.sql.insert_case(con, {"case_id": "k1", "customer_id": "c1", "status": "in_progress",
                                           "trigger_event_ids": []})  # fmt: skip
    key_id, key = create_key(pg_store, "admin", name="ops")
    assert [k["key_id"] for k in list_keys(pg_store.ops)] == [key_id]
    assert KeyRing(pg_store.ops).lookup(key).role == "admin"
    with TestClient(create_app(pg_store)) as client:
        h = {"X-API-Key": key}
        r = client.post("/api/v1/cases/k1/transition", headers=h, json={"to": "resolved", "expected": "in_progress"})
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        r = client.post("/api/v1/cases/k1/transition", headers=h, json={"to": "closed", "expected": "in_progress"})
        assert r.status_code == 409 and r.json()["status"] == 409 and "someone else" in r.json()["error"]
        revoke_key(pg_store, key_id)
        client.app.state.km.keys.clear()
        assert client.get("/api/v1/cases", headers=h).status_code == 401


def test_uplift_and_the_report_are_the_same_on_both_backends(tmp_path, pg_url, pg_schema):
    """The arms and decision times come from PostgreSQL, the outcomes and their observed times from DuckDB."""
    from keymoments.act.report import playbook_report
    from keymoments.testing.uplift import simulate_uplift

    answers = []
    for kind in ("embedded", "postgresql"):
        url = pg_url if kind == "postgresql" else None
        with Store(tmp_path / f"uplift-{kind}.duckdb", database_url=url, database_schema=pg_schema) as store:
            sim = simulate_uplift(0.2, seed=4, customers=300, stale_share=0.1, store=store)
            rep = playbook_report(store, run_id=sim.uplift.run_id)
            answers.append((sim.uplift.to_dict(), rep["mode"], rep["playbooks"][0]["arms"], rep["playbooks"][0]["uplift"]))
    embedded, postgres = answers
    assert embedded[0]["excluded"]["before"] > 0 and embedded[0]["n_treatment"] > 0
    assert postgres == embedded


def test_going_live_acts_only_on_what_arrives_after_on_postgresql(pg_store):
    pf = loads_playbooks(runner_tests.PB)
    load_events(pg_store, runner_tests.HISTORY[:3])
    runner = PlaybookRunner(pg_store, pf)
    cursor = runner.go_live()
    assert cursor > 0
    assert runner.run_live().decisions == []  # the history is learnt from, never acted on
    load_events(pg_store, runner_tests.HISTORY[3:])
    later = [d for d in runner.run_live().decisions if d.kind == "fire"]
    assert later and all(d.seq > cursor for d in later)
    assert runner.go_live() == runner.run_live().last_seq  # going live again changes nothing


def test_deferred_inserts_write_the_same_rows_in_one_statement_and_fail_the_same(pg_ops):
    """The worker's inserts into the append-only tables go as one statement at the flush: the same rows as one
    insert each (JSON columns kept as JSON, timestamps exact), and a duplicate ledger entry still fails."""
    from datetime import UTC, datetime

    from keymoments.store import pg_tables

    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    events = [("c1", 1, at, "opened", "engine", None, "open", json.dumps({"a": [1, "x'y"], "b": None}))]
    ledger = [("le-1", "recovery", "*", at, 500, "approved", "case-1", "d1", "c1", "engine", "voucher", at, at, "auto")]
    cols_e = ("case_id", "n", "ts", "kind", "actor", "from_status", "to_status", "detail")
    cols_l = ("entry_id", "pool", "scope_key", "period_start", "amount_cents", "status", "case_id", "decision_id",
              "customer_id", "actor", "note", "created_at", "settled_at", "settled_by")  # fmt: skip
    sent: list[str] = []
    with pg_ops.write() as raw:
        real = raw.execute
        con = pg_tables.DeferredInserts(raw)
        raw.execute = lambda sql, *a, **k: (sent.append(sql), real(sql, *a, **k))[1]  # type: ignore[method-assign]
        pg_tables.insert_rows(con, "case_events", cols_e, events)
        pg_tables.insert_rows(con, "ledger", cols_l, ledger, ignore=False)
        assert sent == []  # nothing sent before the flush
        con.flush()
        raw.execute = real  # type: ignore[method-assign]
    assert len(sent) == 1 and sent[0].startswith("WITH ")
    with pg_ops.read() as con:
        row = con.execute("SELECT case_id, n, ts, kind, detail FROM case_events").fetchone()
        entry = con.execute("SELECT entry_id, amount_cents, period_start FROM ledger").fetchone()
    assert row[:4] == ("c1", 1, at, "opened") and json.loads(row[4]) == {"a": [1, "x'y"], "b": None}
    assert entry == ("le-1", 500, at)
    with pytest.raises(psycopg.errors.UniqueViolation):
        with pg_ops.write() as raw:
            con = pg_tables.DeferredInserts(raw)
            pg_tables.insert_rows(con, "ledger", cols_l, ledger, ignore=False)
            con.flush()


def test_statements_prepared_on_a_new_store_are_planned_for_the_tables_as_they_grow(pg_ops):
    """A statement psycopg prepared while the store was small must not keep one plan: with a generic plan the
    worker's read of its cases' last event numbers scanned case_events whole on every batch (3,351 scans of
    28M rows in 50 s of the latency benchmark; the latency rose minute by minute). The store's connections
    plan each execution for the tables as they are (plan_cache_mode = force_custom_plan)."""
    q = "SELECT case_id, max(n) FROM case_events WHERE case_id = ANY(%s) GROUP BY case_id"
    with pg_ops.write() as con:
        for k in range(0, 4000, 100):  # the table grows while the statement runs, as a worker's does
            con.execute("INSERT INTO case_events (case_id, n) SELECT 'c' || i, 1 FROM generate_series(%s::int, %s::int) i",
                        [k, k + 99])  # fmt: skip
            for _ in range(3):
                con.execute(q, [[f"c{k + 5}", "c-none"]], prepare=True).fetchall()
        generic, custom = con.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s", ["%max(n)%"]
        ).fetchone()
    assert generic == 0 and custom == 120
