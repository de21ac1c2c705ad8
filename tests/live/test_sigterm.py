"""SIGTERM while a batch is in flight: the worker finishes it (commits its effects and acknowledges its messages)
and exits 0, leaving no message delivered but unacknowledged and nothing acknowledged that is not committed.

The batch is held in flight on purpose: the test holds the customers' advisory locks (the ones a spend takes,
``pg_tables.lock_customers``), so the worker's first batch with a compensation waits inside its transaction;
SIGTERM arrives then, and only after it are the locks released."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psycopg

from keymoments.live.broker import BrokerAddress

from ._live import PLAYBOOKS, make_events, publish


async def _consumer(nats_url: str, address: BrokerAddress) -> tuple[int, int]:
    import nats

    nc = await nats.connect(nats_url)
    info = await nc.jetstream().consumer_info(address.stream, address.durable(0))
    await nc.close()
    return int(info.num_ack_pending or 0), int(info.ack_floor.stream_seq or 0)


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(pg_url, pg_schema, pg_ops, nats_url, stream_name,
                                                                tmp_path):  # fmt: skip
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    events = make_events(20, 10, seed=5)
    publish(nats_url, address, events, 1)
    pb = tmp_path / "playbooks.yaml"
    pb.write_text(PLAYBOOKS)
    env = {**os.environ, "KM_DATABASE_URL": pg_url, "KM_DATABASE_SCHEMA": pg_schema}
    holder = psycopg.connect(pg_url, autocommit=True)
    keys = [f"km-customer:{c}" for c in sorted({e["customer_id"] for e in events})]
    for k in keys:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [k])
    proc = subprocess.Popen(
        [sys.executable, "-m", "keymoments", "worker", "--from", f"{nats_url}/{address.subject}", "--stream",
         address.stream, "--playbooks", str(pb), "--partitions", "1", "--batch", "16", "--id", "w-term"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        waiting = 0
        while time.monotonic() < deadline and not waiting:  # the worker's batch waits on a customer's lock
            waiting = holder.execute(  # on one of these keys (the database is shared: other locks are others')
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND ((classid::bigint << 32) | objid::bigint) IN (SELECT hashtextextended(k, 0) FROM unnest(%s::text[]) k)",
                [keys],
            ).fetchone()[0]
            time.sleep(0.1)
        assert waiting, "the worker never reached a batch with a spend"
        with pg_ops.read() as con:
            before = con.execute("SELECT count(*) FROM processed_events").fetchone()[0]
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None  # still finishing its batch, not gone
    finally:
        holder.close()  # the locks go: the batch in flight can commit
    code = proc.wait(timeout=60)
    out, err = proc.communicate()
    assert code == 0, err[-2000:]
    assert "worker w-term stopped" in out
    with pg_ops.read() as con:
        processed = con.execute("SELECT count(*) FROM processed_events").fetchone()[0]
        (cursor,) = con.execute("SELECT last_seq FROM worker_partitions WHERE partition = 0").fetchone()
        stopped = con.execute("SELECT stopped_at IS NOT NULL FROM workers WHERE worker_id = 'w-term'").fetchone()[0]
    assert processed > before  # the batch that was in flight when SIGTERM came was committed
    ack_pending, ack_floor = asyncio.run(_consumer(nats_url, address))
    assert ack_pending == 0  # nothing left delivered but unacknowledged
    assert ack_floor == cursor == processed  # every committed message acknowledged, nothing acknowledged uncommitted
    assert processed < len(events) and stopped  # it stopped rather than working on
