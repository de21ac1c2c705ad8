"""Helpers of the live tests and benchmarks (real NATS JetStream and PostgreSQL): publish events, read a
partition back in stream order, the reference decisions, and the SIGKILL chaos run with its four checks.

:func:`chaos` runs two ``keymoments worker`` processes over a stream while events are published and a random
worker is SIGKILLed and restarted ``kills`` times, then checks the issue's four properties (raising
``AssertionError`` with what broke) and returns its figures: the default suite runs it with 12,000 events
(``tests/live/test_chaos.py``), ``bench/bench_chaos.py`` at the issue's size (50,000 events, 5,000 customers).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from keymoments.act.engine import Engine
from keymoments.live.broker import BrokerAddress, ensure_stream, publish_events
from keymoments.live.worker import _tuple

PLAYBOOKS = """
budgets: [{name: recovery, scope: global, period: total, amount: 400, empowerment_limit: 30}]
playbooks:
  - name: recover
    trigger: {type: crisis}
    governance: {cooldown_hours: 1}
    actions:
      - {type: open_case, team: recovery, reason: "{outcome} at {touchpoint}", sla_hours: 24}
      - {type: compensate, amount: 10, budget: recovery}
      - {type: notify, template: "sorry about your {touchpoint}", url: "http://127.0.0.1:9/hook"}
  - name: big-recover
    trigger: {type: crisis, outcome: [lost]}
    actions:
      - {type: compensate, amount: 40, budget: recovery}
  - name: loyal
    trigger: {type: milestone, metric: events, at: [5, 10]}
    actions: [{type: notify, template: "thanks for {customer_id}"}]
"""

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def make_events(customers: int, per_customer: int, seed: int = 0) -> list[dict[str, Any]]:
    """Events of many customers, interleaved; each customer's in time order."""
    r = random.Random(seed)
    out = []
    for c in range(customers):
        t = T0 + timedelta(minutes=r.randint(0, 600))
        for k in range(per_customer):
            t += timedelta(minutes=r.randint(5, 240))
            outcome = r.choices(["completed", "delayed", "cancelled", "lost", "resolved"], [60, 15, 8, 4, 13])[0]
            out.append({"event_id": f"c{c}-e{k}", "customer_id": f"c{c}", "ts": t.isoformat(),
                        "touchpoint": r.choice(["booking", "check-in", "flight", "baggage"]), "outcome": outcome,
                        "rating": r.randint(1, 5), "rating_scale": "csat5", "employee_id": f"emp{r.randint(0, 9)}"})  # fmt: skip
    # interleave customers but keep each customer's order
    queues = {}
    for e in out:
        queues.setdefault(e["customer_id"], []).append(e)
    mixed = []
    keys = list(queues)
    while keys:
        k = r.choice(keys)
        mixed.append(queues[k].pop(0))
        if not queues[k]:
            keys.remove(k)
    return mixed


async def _publish(nats_url: str, address: BrokerAddress, events: list[dict], partitions: int, raw: bool) -> None:
    import nats

    from keymoments.live.broker import encode_event, partition_of

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, address)
    if raw:  # no Nats-Msg-Id: JetStream keeps duplicates, so the workers' own dedupe is what is tested
        for ev in events:
            await js.publish(address.partition_subject(partition_of(ev["customer_id"], partitions)), encode_event(ev)[1])
    else:
        await publish_events(js, address, events, partitions)
    await nc.close()


def publish(nats_url: str, address: BrokerAddress, events: list[dict], partitions: int, *, raw: bool = False) -> None:
    asyncio.run(_publish(nats_url, address, events, partitions, raw))


async def _read(nats_url: str, address: BrokerAddress, partition: int) -> list[tuple[int, dict]]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(address.partition_subject(partition), stream=address.stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL))  # fmt: skip
    out: list[tuple[int, dict]] = []
    while True:
        try:
            msgs = await sub.fetch(1000, timeout=1.0)
        except TimeoutError:
            break
        out += [(m.metadata.sequence.stream, orjson.loads(m.data)) for m in msgs]
        if msgs[-1].metadata.num_pending == 0:
            break
    await sub.unsubscribe()
    await nc.close()
    return out


def stream_order(nats_url: str, address: BrokerAddress, partition: int) -> list[tuple[int, dict]]:
    """The partition's messages in stream order: (sequence, event)."""
    return asyncio.run(_read(nats_url, address, partition))


def reference_decisions(pf: Any, nats_url: str, address: BrokerAddress, partitions: int) -> dict[str, Any]:
    """{decision_id: Decision} that the pure engine makes over each partition's events in stream order,
    skipping an event id seen before (as the workers do)."""
    out = {}
    for p in range(partitions):
        eng = Engine(pf, simulate_budgets=False)
        seen: set[str] = set()
        for seq, ev in stream_order(nats_url, address, p):
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            for d in eng.evaluate(_tuple(ev, seq)):
                out[d.decision_id] = d
    return out


# -- chaos ------------------------------------------------------------------------------------------------------
def _spawn(nats_url: str, address: BrokerAddress, env: dict[str, str], pb: str, name: str, partitions: int,
           log: Path) -> subprocess.Popen:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "keymoments", "worker", "--from", f"{nats_url}/{address.subject}", "--stream",
         address.stream, "--playbooks", pb, "--partitions", str(partitions), "--batch", "200", "--ack-wait", "2",
         "--id", name],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip


async def _deliveries(nats_url: str, address: BrokerAddress, partitions: int) -> tuple[int, int]:
    """(deliveries by the workers' durable consumers, messages in the stream)."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    delivered = 0
    for p in range(partitions):
        info = await js.consumer_info(address.stream, address.durable(p))
        delivered += int(info.delivered.consumer_seq or 0)
    messages = int((await js.stream_info(address.stream)).state.messages)
    await nc.close()
    return delivered, messages


def chaos(ops: Any, pg_url: str, schema: str, nats_url: str, address: BrokerAddress, workdir: Path, *,
          customers: int, per_customer: int, partitions: int = 4, kills: int = 5, seed: int = 7,
          chunk: int = 500, pause: float = 0.15, kill_gap: tuple[float, float] = (0.5, 2.5),
          drain_s: float = 300.0, deliver_s: float = 60.0) -> dict[str, Any]:  # fmt: skip
    """Start two workers; once one owns partitions, publish ``customers * per_customer`` events (``PLAYBOOKS``) in
    chunks of ``chunk`` every ``pause`` s while, ``kills`` times, a worker that owns partitions is SIGKILLed at a
    random moment (a gap drawn from ``kill_gap`` seconds) and restarted; wait until every event is processed;
    stop the workers with SIGTERM (each must exit 0); deliver the outbox with two deliverers at once. Check:

    1. each (playbook, trigger event) has exactly one decision, the ones the pure engine makes over each
       partition in stream order, made in each customer's event order across the restarts;
    2. every case that should exist exists once;
    3. no budget is overspent and none lost a spend (spent + remaining = the pool, one ledger entry per spend);
    4. every outbox action was delivered at least once, never two contents under one idempotency key.

    Returns the figures (seconds, events, kills, redeliveries, decisions, cases, spends, outbox)."""
    import httpx

    from keymoments.act.outbox import OutboxWorker
    from keymoments.act.yaml_loader import loads_playbooks

    t0 = time.monotonic()
    pf_path = workdir / "playbooks.yaml"
    pf_path.write_text(PLAYBOOKS)
    log = workdir / "workers.log"
    pf = loads_playbooks(PLAYBOOKS)
    env = {**os.environ, "KM_DATABASE_URL": pg_url, "KM_DATABASE_SCHEMA": schema}
    events = make_events(customers, per_customer, seed=seed)
    rng = random.Random(seed + 4)
    interrupted = 0
    spawned: dict[str, datetime] = {}

    def spawn(name: str) -> subprocess.Popen:
        spawned[name] = datetime.now(UTC)
        return _spawn(nats_url, address, env, str(pf_path), name, partitions, log)

    def owner() -> list[str]:
        """The workers (started since their last spawn: a killed one's row says what it owned) that own partitions,
        waiting up to two minutes for one (a worker takes a few seconds to start on a busy box)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with ops.read() as con:
                rows = con.execute("SELECT worker_id, partitions, started_at FROM workers").fetchall()
            found = sorted(w for w, parts, started in rows if parts and w in spawned and started >= spawned[w])
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no worker took a partition within 2 minutes: {log.read_text()[-2000:]}")

    workers = {n: spawn(n) for n in ("w1", "w2")}
    owner()  # events start flowing once a worker works, so that every kill interrupts work
    publisher = threading.Thread(
        target=lambda: [publish(nats_url, address, events[i : i + chunk], partitions) or time.sleep(pause)
                        for i in range(0, len(events), chunk)],
        daemon=True,
    )  # fmt: skip
    publisher.start()
    killed_at: list[float] = []
    done = 0
    try:
        while len(killed_at) < kills:  # each kill: a worker that owns partitions, at a random moment
            time.sleep(rng.uniform(*kill_gap))
            name = rng.choice(owner())
            workers[name].send_signal(signal.SIGKILL)
            workers[name].wait(timeout=10)
            killed_at.append(round(time.monotonic() - t0, 2))
            with ops.read() as con:
                in_flight = con.execute("SELECT count(*) FROM processed_events").fetchone()[0] < len(events)
            interrupted += in_flight
            workers[name] = spawn(name)
        publisher.join(timeout=drain_s)
        assert not publisher.is_alive(), "the publisher did not finish"
        published_s = time.monotonic() - t0
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with ops.read() as con:
                done = con.execute("SELECT count(*) FROM processed_events").fetchone()[0]
            if done == len(events):
                break
            time.sleep(0.5)
        processed_s = time.monotonic() - t0
        assert done == len(events), f"{done} of {len(events)} events processed"
    finally:
        for p in workers.values():  # the clean way out: SIGTERM finishes the batch in flight and exits 0
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(timeout=60) for n, p in workers.items()}
    assert codes == {"w1": 0, "w2": 0}, f"exit codes {codes}: {log.read_text()[-2000:]}"
    delivered, messages = asyncio.run(_deliveries(nats_url, address, partitions))

    ref = reference_decisions(pf, nats_url, address, partitions)
    with ops.read() as con:
        rows = con.execute("SELECT decision_id, playbook, kind, event_id, customer_id, seq, decided_at "
                           "FROM playbook_decisions").fetchall()  # fmt: skip
        case_rows = con.execute("SELECT case_id, count(*) FROM cases GROUP BY case_id").fetchall()
        spent, entries = con.execute(
            "SELECT coalesce(sum(amount_cents), 0), count(*) FROM ledger WHERE status <> 'rejected'").fetchone()  # fmt: skip
        (remaining,) = con.execute("SELECT remaining_cents FROM budgets WHERE pool = 'recovery'").fetchone()
        per_entry = con.execute("SELECT count(*), count(DISTINCT decision_id || entry_id) FROM ledger").fetchone()
        running = con.execute(
            "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND worker_id IN ('w1', 'w2')").fetchone()[0]  # fmt: skip
        pending = [r[0] for r in con.execute("SELECT message_id FROM outbox WHERE status = 'pending'").fetchall()]
    # 1. each (playbook, trigger event) exactly once, and exactly what the engine decides in stream order
    assert len(rows) == len({r[0] for r in rows}) == len(ref), f"{len(rows)} decisions, {len(ref)} expected"
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {(d.decision_id, d.playbook, d.kind, d.event_id)
                                                          for d in ref.values()}  # fmt: skip
    by_customer = defaultdict(list)  # per customer, decisions were made in event order across the restarts
    for r in rows:
        by_customer[r[4]].append((r[5], r[6]))
    for decided in by_customer.values():
        decided.sort()
        assert all(a[1] <= b[1] for a, b in zip(decided, decided[1:], strict=False)), "decided out of order"
    # 2. every case that should exist exists once
    should = {d.case_id for d in ref.values() if d.kind == "fire" and d.case_id and d.status == "fired"}
    assert {c for c, _n in case_rows} == should and all(n == 1 for _c, n in case_rows), "cases differ"
    # 3. no budget overspent, none lost
    assert remaining >= 0 and spent + remaining == 40_000, f"spent {spent} + remaining {remaining} != 40000"
    assert per_entry[0] == per_entry[1], "a spend recorded twice"
    assert running == 0, "a worker was not marked stopped by its SIGTERM"

    # 4. the outbox: two deliverers at once; every message at least once, one content per idempotency key
    seen: dict[str, set[str]] = defaultdict(set)
    posts = [0]
    lock = threading.Lock()

    def receiver(request: httpx.Request) -> httpx.Response:
        with lock:
            posts[0] += 1
            seen[request.headers["Idempotency-Key"]].add(hashlib.sha256(request.content).hexdigest())
        return httpx.Response(200)

    def deliver() -> None:
        ow = OutboxWorker(ops, secret="s3cret", client=httpx.Client(transport=httpx.MockTransport(receiver)))
        ow.run(max_seconds=deliver_s, poll=0.05)
        ow.close()

    ts = [threading.Thread(target=deliver) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert pending and set(pending) <= set(seen), "an outbox message was never delivered"
    assert all(len(bodies) == 1 for bodies in seen.values()), "two contents under one idempotency key"
    with ops.read() as con:
        left = con.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    assert left == 0, f"{left} outbox messages still pending"
    return {
        "events": len(events), "customers": customers, "partitions": partitions, "workers": 2, "kills": kills,
        "killed_at_s": killed_at, "kills_with_events_left": interrupted,
        "published_s": round(published_s, 1), "processed_s": round(processed_s, 1),
        "seconds": round(time.monotonic() - t0, 1), "deliveries": delivered, "stream_messages": messages,
        "redeliveries": delivered - messages, "decisions": len(rows), "cases": len(case_rows),
        "spends": int(entries), "spent_cents": int(spent), "remaining_cents": int(remaining),
        "outbox_messages": len(pending), "outbox_posts": posts[0], "checks_passed": True,
    }  # fmt: skip
