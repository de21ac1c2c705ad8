"""Where a worker's batch spends its time: fetch, decode + pure engine, each database statement, commit, ack.

    nice python bench/profile_worker.py [--events 8000] [--batch 64] [--json]

Publishes ``--events`` events of the latency benchmark's kind (5,000 customers, the built-in playbooks) to a
fresh stream first, then runs one in-process :class:`keymoments.live.worker.Worker` over all 4 partitions until
every event is committed, timing each step (the worker's own ``report.timing``) and every SQL statement
(psycopg's ``execute``/``executemany`` wrapped; the key is the statement's first words). Needs PostgreSQL and
NATS as ``bench_live.py`` does; makes its own schema and stream and drops them. Writes
``bench/out/live_profile.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_live import NATS_URL, PARTITIONS, PG_URL, _delete_stream, _event  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "live_profile.json"


def _key(sql: str) -> str:
    s = re.sub(r"\s+", " ", str(sql)).strip()
    return s[:70]


def _instrument(times: dict, counts: Counter) -> None:
    import psycopg

    orig_exec, orig_many = psycopg.Connection.execute, psycopg.Cursor.executemany
    orig_cur_exec = psycopg.Cursor.execute
    local = threading.local()

    def timed(fn, kind):
        def wrap(self, query, *a, **k):
            if getattr(local, "inside", False):
                return fn(self, query, *a, **k)
            local.inside = True
            t = time.perf_counter()
            try:
                return fn(self, query, *a, **k)
            finally:
                local.inside = False
                key = f"{kind} {_key(query if isinstance(query, str) else getattr(query, 'as_string', lambda _c: str(query))(None))}"
                times[key] += time.perf_counter() - t
                counts[key] += 1

        return wrap

    from psycopg import Pipeline

    from keymoments.store import pg_tables

    def timed_call(fn, key):
        def wrap(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[key] += time.perf_counter() - t
                counts[key] += 1

        return wrap

    # the waits of pipeline mode: the reads' round trip (locks included) and the final sync with the commit
    pg_tables.fire_reads = timed_call(pg_tables.fire_reads, "sync fire_reads (all reads and locks, one round trip)")
    Pipeline.__exit__ = timed_call(Pipeline.__exit__, "sync writes + commit (pipeline exit)")
    psycopg.Connection.execute = timed(orig_exec, "exec")
    psycopg.Cursor.executemany = timed(orig_many, "many")
    psycopg.Cursor.execute = timed(orig_cur_exec, "exec")


async def _publish_all(address, n: int) -> None:
    import random

    import nats

    from keymoments.live.broker import encode_event, ensure_stream, partition_of

    nc = await nats.connect(address.servers)
    js = nc.jetstream(publish_async_max_pending=20_000)
    await ensure_stream(js, address)
    r = random.Random(1)
    futs = []
    for i in range(n):
        ev = _event(r, i)
        eid, body = encode_event(ev)
        futs.append(await js.publish_async(address.partition_subject(partition_of(ev["customer_id"], PARTITIONS)),
                                           body, headers={"Nats-Msg-Id": eid}))  # fmt: skip
        if len(futs) >= 2000:
            await asyncio.gather(*futs)
            futs = []
    await asyncio.gather(*futs)
    await nc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from keymoments.act.library import load_library
    from keymoments.live.broker import BrokerAddress
    from keymoments.live.worker import Worker
    from keymoments.store.postgres import PostgresOps

    tag = uuid.uuid4().hex[:8]
    schema, stream = f"km_prof_{tag}", f"KMPROF_{tag.upper()}"
    address = BrokerAddress.parse(f"{NATS_URL}/{stream.lower()}", stream)
    ops = PostgresOps(PG_URL, schema=schema)
    times: dict = defaultdict(float)
    counts: Counter = Counter()
    try:
        asyncio.run(_publish_all(address, args.events))
        _instrument(times, counts)
        worker = Worker(ops, load_library(), address, partitions=PARTITIONS, batch=args.batch, worker_id="prof")
        load0 = os.getloadavg()[0]

        async def go() -> None:
            task = asyncio.create_task(worker.run())
            while worker.report.events < args.events:
                await asyncio.sleep(0.05)
            worker.request_stop()
            await task

        t0 = time.perf_counter()
        asyncio.run(go())
        wall = time.perf_counter() - t0
        rep = worker.report
        batches = max(1, rep.timing.get("batches", 0))
        statements = sorted(((k, round(v * 1000 / batches, 3), counts[k]) for k, v in times.items()),
                            key=lambda x: -x[1])  # fmt: skip
        res = {
            "events": rep.events, "decisions": rep.decisions, "batch": args.batch, "wall_s": round(wall, 2),
            "events_per_s": round(rep.events / wall), "load_average": load0,
            "batches": int(batches), "mean_events_per_batch": round(rep.events / batches, 1),
            "ms_per_batch": {k: round(v * 1000 / batches, 3) for k, v in rep.timing.items()
                             if k not in ("batches", "transactions", "retries")},
            "transactions": int(rep.timing["transactions"]), "retries": int(rep.timing["retries"]),
            "statements_ms_per_batch": [{"sql": k, "ms": ms, "calls": n} for k, ms, n in statements],
            "round_trips_per_batch": round(sum(counts.values()) / batches, 1),
        }  # fmt: skip
    finally:
        ops.drop_schema()
        asyncio.run(_delete_stream(stream))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
