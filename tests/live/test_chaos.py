"""Chaos on the real NATS JetStream and PostgreSQL: workers killed with SIGKILL while events pour in.

Scaled down from the issue's 50,000 events for 5,000 customers to 12,000 events for 1,500 customers (8 each)
so the test stays near a minute on a 2-core machine; the mechanics are the same. Two ``keymoments worker``
processes share 4 partitions (one works, the other stands by for whatever is free); a killer SIGKILLs a
random one five times at random moments and restarts it. Afterwards:

* every event was processed once, and each (playbook, trigger event) has exactly one decision, the same
  decisions the pure engine makes over each partition's events in stream order (so the state rebuilt after
  each kill was the state before it, and decisions followed each customer's event order);
* every case that should exist exists once; no budget is overspent and none lost a spend;
* every outbox action is delivered at least once (two deliverers at once), never two contents under one key.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx

from keymoments.act.outbox import OutboxWorker
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.live.broker import BrokerAddress

from ._live import PLAYBOOKS, make_events, publish, reference_decisions

CUSTOMERS, PER_CUSTOMER, PARTITIONS, KILLS = 1_500, 8, 4, 5


def _spawn(nats_url: str, address: BrokerAddress, env: dict[str, str], pb: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "keymoments", "worker", "--from", f"{nats_url}/{address.subject}", "--stream",
         address.stream, "--playbooks", pb, "--partitions", str(PARTITIONS), "--batch", "200", "--ack-wait", "2",
         "--id", name],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_sigkill_chaos_loses_nothing_and_does_nothing_twice(pg_url, pg_schema, pg_ops, nats_url, stream_name, tmp_path):
    pf_path = tmp_path / "playbooks.yaml"
    pf_path.write_text(PLAYBOOKS)
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    env = {**os.environ, "KM_DATABASE_URL": pg_url, "KM_DATABASE_SCHEMA": pg_schema}
    events = make_events(CUSTOMERS, PER_CUSTOMER, seed=7)
    rng = random.Random(11)

    workers = {n: _spawn(nats_url, address, env, str(pf_path), n) for n in ("w1", "w2")}
    publisher = threading.Thread(
        target=lambda: [publish(nats_url, address, events[i : i + 500], PARTITIONS) or time.sleep(0.15)
                        for i in range(0, len(events), 500)],
        daemon=True,
    )  # fmt: skip
    publisher.start()
    kills = 0
    try:
        while kills < KILLS:
            time.sleep(rng.uniform(0.5, 2.5))
            name = rng.choice(sorted(workers))
            workers[name].send_signal(signal.SIGKILL)
            workers[name].wait(timeout=10)
            kills += 1
            workers[name] = _spawn(nats_url, address, env, str(pf_path), name)
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with pg_ops.read() as con:
                done = con.execute("SELECT count(*) FROM processed_events").fetchone()[0]
            if done == len(events):
                break
            time.sleep(0.5)
        assert done == len(events), f"{done} of {len(events)} events processed"
    finally:
        for p in workers.values():  # the clean way out: SIGTERM finishes the batch in flight and exits 0
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(timeout=60) for n, p in workers.items()}
    assert codes == {"w1": 0, "w2": 0}, {n: p.stderr.read().decode()[-2000:] for n, p in workers.items()}

    ref = reference_decisions(pf, nats_url, address, PARTITIONS)
    with pg_ops.read() as con:
        rows = con.execute("SELECT decision_id, playbook, kind, event_id, customer_id, seq, decided_at "
                           "FROM playbook_decisions").fetchall()  # fmt: skip
        case_rows = con.execute("SELECT case_id, count(*) FROM cases GROUP BY case_id").fetchall()
        spent, = con.execute("SELECT coalesce(sum(amount_cents), 0) FROM ledger WHERE status <> 'rejected'").fetchone()
        remaining, = con.execute("SELECT remaining_cents FROM budgets WHERE pool = 'recovery'").fetchone()
        per_entry = con.execute("SELECT count(*), count(DISTINCT decision_id || entry_id) FROM ledger").fetchone()
        stopped = con.execute("SELECT count(*) FROM workers WHERE stopped_at IS NULL AND worker_id IN ('w1', 'w2')").fetchone()[0]
        pending = [r[0] for r in con.execute("SELECT message_id FROM outbox WHERE status = 'pending'").fetchall()]
    # each (playbook, trigger event) exactly once, and exactly what the engine decides in stream order
    assert len(rows) == len({r[0] for r in rows}) == len(ref)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {(d.decision_id, d.playbook, d.kind, d.event_id) for d in ref.values()}
    # per customer, decisions were made in event order across the restarts
    by_customer = defaultdict(list)
    for r in rows:
        by_customer[r[4]].append((r[5], r[6]))
    for decided in by_customer.values():
        decided.sort()
        assert all(a[1] <= b[1] for a, b in zip(decided, decided[1:], strict=False))
    # every case that should exist exists once
    should = {d.case_id for d in ref.values() if d.kind == "fire" and d.case_id and d.status == "fired"}
    assert {c for c, _n in case_rows} == should and all(n == 1 for _c, n in case_rows)
    # no budget overspent, none lost
    assert remaining >= 0 and spent + remaining == 40_000
    assert per_entry[0] == per_entry[1]
    assert stopped == 0  # both marked stopped by their SIGTERM

    # the outbox: two deliverers at once; every message at least once, one content per idempotency key
    seen: dict[str, set[str]] = defaultdict(set)
    lock = threading.Lock()

    def receiver(request: httpx.Request) -> httpx.Response:
        with lock:
            seen[request.headers["Idempotency-Key"]].add(hashlib.sha256(request.content).hexdigest())
        return httpx.Response(200)

    def deliver() -> None:
        ow = OutboxWorker(pg_ops, secret="s3cret", client=httpx.Client(transport=httpx.MockTransport(receiver)))
        ow.run(max_seconds=60, poll=0.05)
        ow.close()

    ts = [threading.Thread(target=deliver) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert pending and set(pending) <= set(seen)
    assert all(len(bodies) == 1 for bodies in seen.values())
    with pg_ops.read() as con:
        assert con.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 0
