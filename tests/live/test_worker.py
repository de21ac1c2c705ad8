"""``keymoments worker`` on the real NATS JetStream and PostgreSQL: decisions once, in order, acknowledged after
their effects are committed; SIGTERM finishes cleanly."""

from __future__ import annotations

import asyncio
import threading
import time

from keymoments.act.yaml_loader import loads_playbooks
from keymoments.live.broker import BrokerAddress
from keymoments.live.worker import Worker

from ._live import PLAYBOOKS, make_events, publish, reference_decisions


def _wait_for(pred, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _processed(ops) -> int:
    with ops.read() as con:
        return int(con.execute("SELECT count(*) FROM processed_events").fetchone()[0])


def _start(worker: Worker) -> threading.Thread:
    t = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    t.start()
    return t


def _work_through(pg_ops, nats_url, address, pf, events, partitions: int, batch: int, prepare=None) -> Worker:
    """Publish ``events`` over ``partitions``, run one worker (``prepare(worker)`` first) until every event is
    processed, stop it; return it."""
    publish(nats_url, address, events, partitions)
    w = Worker(pg_ops, pf, address, partitions=partitions, batch=batch)
    if prepare is not None:
        prepare(w)
    t = _start(w)
    _wait_for(lambda: _processed(pg_ops) == len(events), what="every event")
    w.request_stop()
    t.join(timeout=30)
    assert not t.is_alive()
    return w


def test_worker_decides_as_the_engine_does_and_only_once(pg_ops, nats_url, stream_name):
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    events = make_events(60, 8, seed=1)
    publish(nats_url, address, events[:300], 4)
    w = Worker(pg_ops, pf, address, partitions=4, batch=50)
    t = _start(w)
    _wait_for(lambda: _processed(pg_ops) == 300, what="the first 300 events")
    publish(nats_url, address, events[:10], 4)  # within JetStream's duplicate window: dropped by the broker
    publish(nats_url, address, events[300:], 4)
    publish(nats_url, address, events[:40], 4, raw=True)  # 40 published again, kept: the worker dedupes on event_id
    _wait_for(lambda: _processed(pg_ops) == len(events) and w.report.skipped >= 40, what="every event")
    w.request_stop()
    t.join(timeout=30)
    assert not t.is_alive()
    ref = reference_decisions(pf, nats_url, address, 4)
    with pg_ops.read() as con:
        rows = con.execute("SELECT decision_id, playbook, kind, event_id FROM playbook_decisions").fetchall()
        cases = con.execute("SELECT count(*), count(DISTINCT case_id) FROM cases").fetchone()
        spent, = con.execute("SELECT coalesce(sum(amount_cents), 0) FROM ledger WHERE status <> 'rejected'").fetchone()
        remaining, = con.execute("SELECT remaining_cents FROM budgets WHERE pool = 'recovery'").fetchone()
        stopped, = con.execute("SELECT stopped_at FROM workers WHERE worker_id = %s", [w.worker_id]).fetchone()
    assert len(rows) == len({r[0] for r in rows})  # one decision per (playbook, trigger event)
    assert {r[0] for r in rows} == set(ref)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {(d.decision_id, d.playbook, d.kind, d.event_id) for d in ref.values()}
    opened = {d.case_id for d in ref.values() if d.kind == "fire" and d.case_id and d.status == "fired"}
    assert cases == (len(opened), len(opened))
    assert spent + remaining == 40_000 and remaining >= 0  # never overspent, nothing lost
    assert stopped is not None
    assert w.report.events == len(events) and w.report.skipped >= 40


def test_an_optimistic_batch_that_would_overdraw_is_done_again_with_the_pools_locked(pg_ops, nats_url, stream_name,
                                                                                       monkeypatch):  # fmt: skip
    """The worker reads the pools without locking them and lets the UPDATE that takes the money lock the row;
    here every optimistic read is told the pools hold far more than they do (as if others had spent since), so
    once the pool runs dry the UPDATE breaks CHECK (remaining_cents >= 0), and the batch is done again with the
    pools locked first: its decisions blocked as they should be, the books exact."""
    from keymoments.store import pg_tables

    real = pg_tables.fire_reads

    def stale(*args, lock_pools=True, **kwargs):
        reads = real(*args, lock_pools=lock_pools, **kwargs)
        if not lock_pools:
            reads.remaining = {k: (left + 1_000_000, limit) for k, (left, limit) in reads.remaining.items()}
        return reads

    monkeypatch.setattr(pg_tables, "fire_reads", stale)
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    w = _work_through(pg_ops, nats_url, address, pf, make_events(80, 8, seed=2), 2, 40)
    with pg_ops.read() as con:
        spent, entries = con.execute(
            "SELECT coalesce(sum(amount_cents), 0), count(*) FROM ledger WHERE status <> 'rejected'").fetchone()  # fmt: skip
        remaining, = con.execute("SELECT remaining_cents FROM budgets WHERE pool = 'recovery'").fetchone()
        blocked = con.execute("SELECT count(*) FROM playbook_decisions WHERE budget_blocked").fetchone()[0]
        decided = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM playbook_decisions").fetchone()
    assert w.report.timing["retries"] >= 1 and w.report.restarts == 0  # retried in place, never rebuilt
    assert spent + remaining == 40_000 and remaining >= 0 and blocked > 0  # the pool ran dry, never below zero
    assert decided[0] == decided[1] == len(reference_decisions(pf, nats_url, address, 2))


def _listen(pg_url, heard: list, stop: threading.Event, ready: threading.Event) -> None:
    import json

    import psycopg

    from keymoments.store.pg_tables import COMMITS_CHANNEL

    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"LISTEN {COMMITS_CHANNEL}")
        ready.set()
        while not stop.is_set():
            heard.extend(json.loads(n.payload) for n in con.notifies(timeout=0.1))


def test_a_commit_is_announced_when_it_commits_and_never_when_it_rolls_back(pg_url, pg_ops, pg_schema):
    from keymoments.store import pg_tables

    heard: list = []
    stop, ready = threading.Event(), threading.Event()
    t = threading.Thread(target=_listen, args=(pg_url, heard, stop, ready), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        with pg_ops.write() as con:
            pg_tables.notify_commit(con, "S", {0: 7, 3: 12})
            time.sleep(0.3)
            assert heard == []  # not before the commit
        try:
            with pg_ops.write() as con:
                pg_tables.notify_commit(con, "S", {0: 99})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        _wait_for(lambda: len(heard) >= 1, timeout=10, what="the announcement")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(5)
    assert heard == [{"schema": pg_schema, "stream": "S", "cursors": {"0": 7, "3": 12}}]


def test_the_partitions_of_a_worker_commit_together(pg_ops, nats_url, stream_name):
    """Group commit: batches of several partitions that wait while a transaction runs go in the next one
    together (one processed_at, the batch's clock, for rows of several partitions), and the decisions are
    still exactly the engine's."""
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    w = _work_through(pg_ops, nats_url, address, pf, make_events(120, 8, seed=4), 4, 20)
    with pg_ops.read() as con:
        spans = [r[0] for r in con.execute(
            "SELECT count(DISTINCT partition) FROM processed_events GROUP BY processed_at").fetchall()]  # fmt: skip
        decided = {r[0] for r in con.execute("SELECT decision_id FROM playbook_decisions").fetchall()}
    assert max(spans) >= 2 and w.report.timing["transactions"] < w.report.timing["batches"]
    assert decided == set(reference_decisions(pf, nats_url, address, 4))


def test_a_failed_group_commit_rebuilds_every_partition_in_it(pg_ops, nats_url, stream_name, monkeypatch):
    """A transaction that fails (here the first two, by a fault injected at the write) fails every partition
    whose batch was in it: each rebuilds from the stream, nothing is acknowledged before it commits, and the
    decisions come out exactly once, as the engine makes them."""
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    fails = [2]

    def prepare(w: Worker) -> None:
        real = w._record

        def flaky(*args, **kwargs):
            if fails[0] > 0:
                fails[0] -= 1
                raise OSError("injected: the connection dropped")
            return real(*args, **kwargs)

        monkeypatch.setattr(w, "_record", flaky)

    w = _work_through(pg_ops, nats_url, address, pf, make_events(60, 8, seed=5), 2, 30, prepare)
    with pg_ops.read() as con:
        decided = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM playbook_decisions").fetchone()
    assert w.report.restarts >= 1
    assert decided[0] == decided[1] == len(reference_decisions(pf, nats_url, address, 2))


def test_an_acknowledgement_that_fails_after_the_commit_rebuilds_and_does_nothing_twice(pg_ops, nats_url,
                                                                                        stream_name, monkeypatch):  # fmt: skip
    """The commit went through but acknowledging failed (the broker connection dropped): the partition rebuilds
    from the stream, the redelivered messages are at or below its cursor, and nothing is decided twice."""
    from nats.aio.msg import Msg

    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    real, fails = Msg.ack, [1]

    async def flaky_ack(self):
        if fails[0] > 0:
            fails[0] -= 1
            raise OSError("injected: the broker connection dropped")
        return await real(self)

    monkeypatch.setattr(Msg, "ack", flaky_ack)
    w = _work_through(pg_ops, nats_url, address, pf, make_events(40, 8, seed=6), 2, 25)
    with pg_ops.read() as con:
        decided = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM playbook_decisions").fetchone()
    assert fails == [0] and w.report.restarts >= 1
    assert decided[0] == decided[1] == len(reference_decisions(pf, nats_url, address, 2))


def test_a_stop_does_not_wait_for_ever_on_a_partition_that_cannot_finish(pg_ops, nats_url, stream_name, monkeypatch):
    """A partition stuck in its batch (here: its work never returns) must not keep the worker from stopping: after
    the grace the stop goes on, the partition is reported unfinished, and its messages stay unacknowledged for
    JetStream to deliver again."""
    pf = loads_playbooks(PLAYBOOKS)
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    publish(nats_url, address, make_events(10, 2, seed=3), 2)
    w = Worker(pg_ops, pf, address, partitions=2, batch=50)
    w.stop_grace_s = 1.0
    started = threading.Event()

    async def stuck(js, p):  # noqa: ANN001, ANN202
        started.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(w, "_work", stuck)
    t = _start(w)
    assert started.wait(30)
    t0 = time.monotonic()
    w.request_stop()
    t.join(timeout=20)
    assert not t.is_alive(), "the worker did not stop"
    assert time.monotonic() - t0 < 10
    assert w.report.unfinished == [0, 1] and w.report.to_dict()["unfinished"] == [0, 1]
    assert _processed(pg_ops) == 0
