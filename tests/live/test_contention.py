"""Many processes, one truth: budgets on PostgreSQL are never overspent and never lose a spend.

Four spending processes (the code path of a worker's and an agent's spends, ``Ledger.spend``; 375 attempts
each) and two API processes (``POST /cases/{id}/compensate``, 500 requests from 16 client threads) make 2,000
spend attempts of 1.00 at once against one pool of 500.00: exactly 500 succeed, the ledger holds exactly those 500 and sums to the pool,
the pool has nothing left, and every refusal was an answer, not an error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from keymoments.act.budgets import Ledger
from keymoments.act.models import BudgetPool
from keymoments.serve.auth import create_key
from keymoments.testing.servers import free_port, wait_healthy

HERE = Path(__file__).parent
PLAYBOOKS = """
budgets: [{name: contended, scope: global, period: total, amount: 500}]
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions: [{type: open_case, team: recovery}]
"""


def test_2000_concurrent_spends_admit_exactly_500(pg_url, pg_schema, pg_ops, tmp_path):
    ops = pg_ops
    pb = tmp_path / "playbooks.yaml"
    pb.write_text(PLAYBOOKS)
    now = datetime.now(UTC)
    with ops.write() as con:
        for i in range(100):
            ops.sql.insert_case(con, {"case_id": f"case-{i}", "playbook": "recover", "customer_id": f"c{i}",
                                      "status": "in_progress", "trigger_event_ids": [], "compensation_cents": 0,
                                      "opened_at": now, "updated_at": now})  # fmt: skip
    _, key = create_key(ops, "admin", name="contention test")

    ports = [free_port(), free_port()]
    apis = [
        subprocess.Popen([sys.executable, str(HERE / "_api_server.py"), pg_url, pg_schema, str(tmp_path / f"api{i}.duckdb"),
                          str(port), str(pb)], stderr=subprocess.PIPE)  # fmt: skip
        for i, port in enumerate(ports)
    ]
    spenders: list[subprocess.Popen] = []
    try:
        for port, proc in zip(ports, apis, strict=True):
            wait_healthy(proc, f"http://127.0.0.1:{port}")
        start_at = time.time() + 3.0  # the spenders' imports and connections are done by then
        outs = [tmp_path / f"spender{i}.json" for i in range(4)]
        spenders = [
            subprocess.Popen([sys.executable, str(HERE / "_spender.py"), pg_url, pg_schema, "375", str(start_at), str(out)])
            for out in outs
        ]
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers={"X-API-Key": key}, timeout=60) for p in ports]

        def compensate(i: int) -> int:
            time.sleep(max(0.0, start_at - time.time()))
            r = clients[i % 2].post(f"/api/v1/cases/case-{i % 100}/compensate", json={"pool": "contended", "amount": 1})
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert r.json()["status"] == 409 and "overdraw" in r.json()["error"]
            return r.status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(compensate, range(500)))
        for c in clients:
            c.close()
        for p in spenders:
            assert p.wait(timeout=120) == 0
        spent = [json.loads(o.read_text()) for o in outs]
    finally:
        for p in apis + spenders:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    api_ok = codes.count(200)
    direct_ok = sum(s["ok"] for s in spent)
    assert codes.count(200) + codes.count(409) == 500
    assert sum(s["ok"] + s["refused"] for s in spent) == 1500
    assert api_ok + direct_ok == 500, (api_ok, direct_ok)
    assert api_ok > 0 and direct_ok > 0  # both kinds of process really competed
    with ops.read() as con:
        n, total = con.execute("SELECT count(*), sum(amount_cents) FROM ledger WHERE pool = 'contended'").fetchone()
        cases_total = con.execute("SELECT sum(compensation_cents) FROM cases").fetchone()[0]
    assert (n, total) == (500, 50_000)
    assert cases_total == api_ok * 100  # every approved compensation is on its case, none lost
    assert Ledger(ops, [BudgetPool(name="contended", period="total", amount=500)]).remaining("contended") == 0
