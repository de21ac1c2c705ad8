"""Two agents racing on one case, through real HTTP servers: the second always gets a clear 409.

Each race starts two requests at once (a barrier) against a running API: on PostgreSQL two API processes
sharing the operational store (one request to each), on the embedded DuckDB store one process (its handlers run
in threads). Of two agents taking one unassigned case, two managers moving one case, and two managers approving
one reserved spend, exactly one succeeds and the other is answered 409 with what happened, and the case's
timeline records the one change once. Each race is run several times, so an unchecked path would show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from keymoments.testing.servers import free_port, wait_healthy

HERE = Path(__file__).parent
RACES = 4

PLAYBOOKS = """\
budgets:
  - {name: recovery, scope: global, period: month, amount: 100000, empowerment_limit: 40}
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery}
"""


def _start(url: str, schema: str, db: Path, yaml: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "_api_server.py"), url, schema, str(db), str(port), str(yaml)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module", params=["embedded", "postgresql"])
def servers(request, tmp_path_factory):
    """(base URL of the first agent's server, of the second's, keys by name): two processes sharing
    PostgreSQL, or one process on the embedded store (the tests' case ids are their own, so they share it)."""
    import psycopg

    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    from .conftest import new_schema

    backend = request.param
    tmp_path = tmp_path_factory.mktemp(f"races-{backend}")
    url, schema = "-", "-"
    if backend == "postgresql":
        url, schema = request.getfixturevalue("pg_url"), new_schema()
        request.addfinalizer(lambda: psycopg.connect(url, autocommit=True).execute(
            f'DROP SCHEMA IF EXISTS "{schema}" CASCADE').connection.close())  # fmt: skip
    yaml = tmp_path / "playbooks.yaml"
    yaml.write_text(PLAYBOOKS)
    dbs = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    with Store(dbs[0], database_url=None if url == "-" else url, database_schema=schema) as store:
        sql = store.ops.sql
        with store.ops.write() as con:
            for i in range(RACES):
                for kind, status in (("take", "open"), ("move", "in_progress"), ("approve", "in_progress")):
                    sql.insert_case(con, {"case_id": f"{kind}-{i}", "playbook": "recover", "customer_id": f"c{i}",
                                          "status": status, "owner": None, "trigger_event_ids": []})  # fmt: skip
        keys = {name: create_key(store, role, name=name, employee_id=emp)[1]
                for name, role, emp in (("ann", "agent", "E1"), ("bob", "agent", "E2"), ("max", "admin", None),
                                        ("mia", "admin", None))}  # fmt: skip
    procs = [_start(url, schema, dbs[0], yaml)]
    if backend == "postgresql":
        procs.append(_start(url, schema, dbs[1], yaml))
    try:
        for proc, base in procs:
            wait_healthy(proc, base, 90)
        yield procs[0][1], procs[-1][1], keys
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _race(first: tuple[str, str, str, dict], second: tuple[str, str, str, dict]) -> list[tuple[str, int, dict]]:
    """Send two requests (base, key, path, body) at once; [(which, status, answer)] in the order given."""
    start = threading.Barrier(2)
    out: dict[str, tuple[int, dict]] = {}

    def go(which: str, base: str, key: str, path: str, body: dict) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as c:
            c.get("/health")  # connected before the start
            start.wait()
            r = c.post(path, json=body)
            out[which] = (r.status_code, r.json())

    ts = [threading.Thread(target=go, args=("first", *first)), threading.Thread(target=go, args=("second", *second))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [(w, *out[w]) for w in ("first", "second")]


def _one_wins(results: list[tuple[str, int, dict]], says: str) -> str:
    codes = sorted(code for _w, code, _a in results)
    assert codes == [200, 409], results
    (loser,) = [a for _w, code, a in results if code == 409]
    assert loser["status"] == 409 and says in loser["error"], loser
    return next(w for w, code, _a in results if code == 200)


def _case(base: str, key: str, case_id: str) -> dict:
    r = httpx.get(f"{base}/api/v1/cases/{case_id}", headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_of_two_agents_taking_one_case_the_second_gets_409(servers):
    a, b, keys = servers
    for i in range(RACES):
        path = f"/api/v1/cases/take-{i}/assign"
        res = _race((a, keys["ann"], path, {"expected_owner": None}), (b, keys["bob"], path, {"expected_owner": None}))
        winner = _one_wins(res, "someone else just gave it to")
        case = _case(a, keys["max"], f"take-{i}")
        assert case["owner"] == {"first": "E1", "second": "E2"}[winner] and case["status"] == "in_progress"
        assert case["handoffs"] == 0 and [e["kind"] for e in case["timeline"]] == ["assigned"]
    # a stale screen, no race: the case was unassigned when the caller looked, someone has it now
    owner = _case(a, keys["max"], "take-0")["owner"]
    late = keys["bob"] if owner == "E1" else keys["ann"]
    r = httpx.post(f"{b}/api/v1/cases/take-0/assign", headers={"X-API-Key": late}, json={"expected_owner": None},
                   timeout=30)  # fmt: skip
    assert r.status_code == 409 and f"someone else just gave it to {owner}" in r.json()["error"]
    assert _case(a, keys["max"], "take-0")["owner"] == owner


def test_of_two_managers_moving_one_case_the_second_gets_409(servers):
    a, b, keys = servers
    for i in range(RACES):
        path = f"/api/v1/cases/move-{i}/transition"
        res = _race((a, keys["max"], path, {"to": "resolved", "expected": "in_progress"}),
                    (b, keys["mia"], path, {"to": "closed", "expected": "in_progress"}))  # fmt: skip
        winner = _one_wins(res, "someone else just moved it")
        case = _case(a, keys["max"], f"move-{i}")
        assert case["status"] == {"first": "resolved", "second": "closed"}[winner]
        assert [e["kind"] for e in case["timeline"]] == ["status"]


def test_of_two_managers_approving_one_spend_the_second_gets_409(servers):
    a, b, keys = servers
    for i in range(RACES):
        r = httpx.post(f"{a}/api/v1/cases/approve-{i}/compensate", headers={"X-API-Key": keys["max"]},
                       json={"pool": "recovery", "amount": 50}, timeout=30)  # above the $40 limit: reserved
        assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", r.text
        path = f"/api/v1/cases/approve-{i}/approve"
        res = _race((a, keys["max"], path, {"approved": True}), (b, keys["mia"], path, {"approved": False}))
        winner = _one_wins(res, "not pending approval")
        case = _case(a, keys["max"], f"approve-{i}")
        assert [e["status"] for e in case["ledger"]] == [{"first": "approved", "second": "rejected"}[winner]]
        assert case["status"] == "in_progress"
        assert [e["kind"] for e in case["timeline"]].count("approval") == 2  # the reservation, then one settlement
