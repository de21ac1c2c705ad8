"""Parallel requests never fail and never spend twice (issue 15, item 3), on a real uvicorn server on loopback.

* 10 concurrent $10 compensations on one case all answer 200, and the case, the ledger and the answers agree on
  $100 (they answered 7 x 500 and 3 x 200, all 10 were in the ledger, and the case showed 30);
* 16 threads of mixed reads and writes for 30 s: no 5xx, and the ledger's total == the sum of the 2xx
  compensation answers == the sum of the cases' totals.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from keymoments.testing.servers import free_port, wait_healthy

HERE = Path(__file__).parent
SECONDS = 30
THREADS = 16

PLAYBOOKS = """\
budgets:
  - {name: recovery, scope: global, period: month, amount: 10000000, empowerment_limit: 40}
playbooks:
  - name: open-cases
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery, owner: team}
"""


@pytest.fixture(scope="module")
def server(small_demo_db, tmp_path_factory):
    """The small demo with cases opened by a live pass, served by uvicorn on loopback; (base url, keys, db)."""
    import shutil

    from keymoments.act.runner import PlaybookRunner
    from keymoments.act.yaml_loader import loads_playbooks
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    tmp = tmp_path_factory.mktemp("concurrency")
    db, yaml = tmp / "km.duckdb", tmp / "playbooks.yaml"
    shutil.copyfile(small_demo_db, db)
    yaml.write_text(PLAYBOOKS)
    with Store(db) as store:
        PlaybookRunner(store, loads_playbooks(PLAYBOOKS)).run_live()
        keys = {role: create_key(store, role, name=role, employee_id="E001" if role == "agent" else None)[1]
                for role in ("admin", "analyst", "agent")}  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "_server.py"), str(db), str(port), str(yaml)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, base)
    yield base, keys, db
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)


def _cases(base: str, keys: dict[str, str]) -> list[dict]:
    with _client(base, keys["admin"]) as c:
        r = c.get("/api/v1/cases", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()["cases"]


def _ledger_cents(base: str, keys: dict[str, str]) -> dict[str, int]:
    """{case_id: cents spent or reserved} from the ledger route."""
    with _client(base, keys["analyst"]) as c:
        r = c.get("/api/v1/budgets/ledger", params={"limit": 5000})
        assert r.status_code == 200, r.text
    out: Counter = Counter()
    for e in r.json()["entries"]:
        if e["status"] != "rejected" and e["case_id"]:
            out[e["case_id"]] += int(e["amount_cents"])
    return dict(out)


@pytest.mark.slow
def test_ten_concurrent_compensations_on_one_case_all_count(server):
    base, keys, _db = server
    case = next(c for c in _cases(base, keys) if c["status"] == "open")
    cid = case["case_id"]
    start = threading.Barrier(10)
    codes: list[int] = []

    def spend() -> None:
        with _client(base, keys["admin"]) as c:
            start.wait()
            r = c.post(f"/api/v1/cases/{cid}/compensate", json={"pool": "recovery", "amount": 10})
            codes.append(r.status_code)

    threads = [threading.Thread(target=spend) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 10
    with _client(base, keys["admin"]) as c:
        body = c.get(f"/api/v1/cases/{cid}").json()
    assert body["compensation"] == 100.0
    assert sum(e["amount_cents"] for e in body["ledger"]) == 10_000
    assert _ledger_cents(base, keys)[cid] == 10_000
    # the case's limit ($40) held across the ten spends: four were within it, six wait for a manager
    assert Counter(e["status"] for e in body["ledger"]) == {"approved": 4, "pending_approval": 6}


@pytest.mark.slow
def test_mixed_reads_and_writes_for_thirty_seconds(server):
    base, keys, _db = server
    before = _ledger_cents(base, keys)
    cases = [c["case_id"] for c in _cases(base, keys) if c["status"] in ("open", "in_progress")][:8]
    assert len(cases) == 8
    spent: Counter = Counter()  # case -> cents answered 2xx
    answers: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def work(n: int) -> None:
        rnd = random.Random(n)
        clients = {role: _client(base, key) for role, key in keys.items()}
        try:
            while time.monotonic() < stop:
                cid = rnd.choice(cases)
                op = rnd.choice(["case", "case", "ledger", "list", "journey", "moments", "budgets",
                                 "compensate", "compensate", "compensate", "status", "agent_compensate"])  # fmt: skip
                cents = rnd.randint(1, 5000)
                try:
                    if op == "case":
                        r = clients["agent"].get(f"/api/v1/cases/{cid}")
                    elif op == "ledger":
                        r = clients["analyst"].get("/api/v1/budgets/ledger", params={"limit": 50})
                    elif op == "list":
                        r = clients["agent"].get("/api/v1/cases", params={"limit": 50})
                    elif op == "journey":
                        r = clients["analyst"].get("/api/v1/analyses/journey")
                    elif op == "moments":
                        r = clients["analyst"].get(
                            "/api/v1/analyses/moments", params={"outcome": "retained", "n_boot": 50}
                        )
                    elif op == "budgets":
                        r = clients["analyst"].get("/api/v1/budgets")
                    elif op in ("compensate", "agent_compensate"):
                        role = "admin" if op == "compensate" else "agent"
                        r = clients[role].post(f"/api/v1/cases/{cid}/compensate",
                                               json={"pool": "recovery", "amount": cents / 100})  # fmt: skip
                        if 200 <= r.status_code < 300:
                            with lock:
                                spent[cid] += cents
                    else:
                        to = rnd.choice(["in_progress", "resolved", "in_progress"])
                        r = clients["admin"].post(f"/api/v1/cases/{cid}/transition", json={"to": to})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{op}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    answers[(op, r.status_code)] += 1
                    if r.status_code >= 500:
                        failures.append(f"{op} {r.status_code}: {r.text[:200]}")
        finally:
            for c in clients.values():
                c.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:10]
    ok_spends = sum(n for (op, code), n in answers.items() if "compensate" in op and code == 200)
    assert ok_spends >= THREADS, answers  # the run did spend, concurrently (hundreds on an idle machine)
    assert sum(answers.values()) >= 4 * THREADS, answers

    after = _ledger_cents(base, keys)
    new = {cid: after.get(cid, 0) - before.get(cid, 0) for cid in cases}
    assert new == {cid: spent[cid] for cid in cases}  # the ledger == the 2xx answers, case by case
    totals = {
        c["case_id"]: round(c["compensation"] * 100) for c in _cases(base, keys) if c["case_id"] in cases
    }
    assert totals == {cid: after.get(cid, 0) for cid in cases}  # the cases' totals == the ledger
    assert sum(totals.values()) - sum(before.get(cid, 0) for cid in cases) == sum(spent.values())
