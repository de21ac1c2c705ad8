"""Chaos at the issue's size: 50,000 events for 5,000 customers while a worker is SIGKILLed five times.

    nice python bench/bench_chaos.py [--customers 5000] [--per-customer 10] [--kills 5]

Two ``keymoments worker`` processes (4 partitions) on the real NATS JetStream and PostgreSQL; once a worker
works, events are published in chunks of 1,000 every 0.3 s while the worker that owns partitions is SIGKILLed
and restarted at random moments (2-10 s apart), then :func:`keymoments.testing.live.chaos` waits for every
event and checks the issue's four properties: one decision per (playbook, trigger event), the ones the pure
engine makes, in each customer's order; every case once; no budget overspent or spend lost; every outbox action
delivered at least once with one content per key. It raises if any fails. Needs PostgreSQL
(``KM_BENCH_DATABASE_URL``) and NATS (``KM_BENCH_NATS_URL``); makes its own schema and stream and drops them.
Writes ``bench/out/chaos.json``: time taken, redeliveries (JetStream deliveries beyond one per message), kills
that left events to process, decisions, cases, spends, outbox, and the load average. Takes a few minutes on the
2-core box (the default suite's ``tests/live/test_chaos.py`` runs the same at 12,000 events).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_live import NATS_URL, PG_URL, _delete_stream  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "chaos.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=5_000)
    ap.add_argument("--per-customer", type=int, default=10)
    ap.add_argument("--kills", type=int, default=5)
    args = ap.parse_args()

    import asyncio

    from keymoments.live.broker import BrokerAddress
    from keymoments.store.postgres import PostgresOps
    from keymoments.testing.live import chaos

    tag = uuid.uuid4().hex[:8]
    schema, stream = f"km_chaos_{tag}", f"KMCHAOS_{tag.upper()}"
    address = BrokerAddress.parse(f"{NATS_URL}/{stream.lower()}", stream)
    ops = PostgresOps(PG_URL, schema=schema)
    load0 = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = chaos(ops, PG_URL, schema, NATS_URL, address, Path(tmp), customers=args.customers,
                        per_customer=args.per_customer, kills=args.kills, chunk=1_000, pause=0.3,
                        kill_gap=(2.0, 10.0), drain_s=600, deliver_s=300)  # fmt: skip
    finally:
        ops.drop_schema()
        asyncio.run(_delete_stream(stream))
    out = {"box": f"{os.cpu_count()} cores, shared with other work", "load_average_before": round(load0, 2),
           **out, "load_average_after": round(os.getloadavg()[0], 2)}  # fmt: skip
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
