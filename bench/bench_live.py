"""Benchmark live operations on the real services: decisions through NATS JetStream, spends on PostgreSQL.

    nice python bench/bench_live.py [--seconds 60] [--rates 1000,5000] [--spend-seconds 10] [--json]

Needs PostgreSQL (``KM_BENCH_DATABASE_URL``, default postgresql://postgres@127.0.0.1:5432/test) and NATS with
JetStream (``KM_BENCH_NATS_URL``, default nats://127.0.0.1:4222); it makes its own schema and stream and drops
them. Writes ``bench/out/live.json``.

1. **Event → decision latency through NATS with 2 workers.** Two ``keymoments worker`` processes (partitions
   0,2 and 1,3 of 4) run the 10 built-in playbooks; this process publishes events of 5,000 customers at
   ``--rates`` events/s for ``--seconds`` each (in ticks of 10 ms) while a process of its own listens on
   PostgreSQL's ``km_commits`` channel, on which each worker transaction announces at its commit the
   partition cursors it moved
   (``NOTIFY``; see ``pg_tables.notify_commit``). An event's latency is from its publication to the first
   announcement of its partition's cursor at or past its stream sequence: the broker, the worker, the
   batch's transaction with its commit (fsync included) and the notification's trip. (Until 2026-12-07 the
   benchmark polled ``processed_events`` every 5 ms instead, which added up to 5 ms and the polling's load.)
   Reported: p50/p90/p99/max, events processed per second while offered, the backlog when publishing stops
   and how long it takes to drain (a rate is held when the backlog stays near zero), the workers' CPU time
   per event, events per transaction, and the 1-minute load average when the rate started and ended. Goal:
   p99 ≤ 50 ms at 1,000 events/s.
2. **Budget spends per second under contention**: processes (or threads) spending 1 cent at a time from one
   pool for ``--spend-seconds``: PostgreSQL with 1 and 4 processes (row lock + ledger entry per spend, one
   transaction each), against the embedded DuckDB store in one process (1 and 4 threads through its single
   writer) and with 4 processes sharing the file through ``locked_store``.

The box is shared and has 2 cores, so the figures are indicative; the JSON says what ran, with the load
average before and after. Latencies are over the events processed (all of them when ``drained`` is true).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

PG_URL = os.environ.get("KM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("KM_BENCH_NATS_URL", "nats://127.0.0.1:4222")
OUT = Path(__file__).resolve().parent / "out" / "live.json"
PARTITIONS = 4
WORKERS = 2
CUSTOMERS = 5_000


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


# -- 1. latency through NATS ----------------------------------------------------------------------------------
def _event(r: random.Random, n: int) -> dict:
    c = r.randrange(CUSTOMERS)
    outcome = r.choices(["completed", "delayed", "cancelled", "lost", "resolved", "approved"], [60, 12, 6, 3, 14, 5])[0]
    return {
        "event_id": f"b{n}", "customer_id": f"c{c}", "journey_id": f"c{c}-j{n // 50_000}",
        "ts": (datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=n)).isoformat(),
        "touchpoint": r.choice(["booking", "check-in", "security", "boarding", "flight", "baggage", "support"]),
        "outcome": outcome, "rating": r.randint(1, 5), "rating_scale": "csat5",
        "employee_id": f"E{r.randrange(200):03d}", "location_id": r.choice(["CPH", "OSL", "ARN"]),
        "value": round(r.uniform(20, 900), 2) if r.random() < 0.1 else None,
    }  # fmt: skip


async def _publish(address, rate: int, seconds: float, sent: dict[str, float], placed: dict[str, tuple]) -> None:
    """Publish ``rate`` events/s for ``seconds`` (in ticks of 10 ms); ``sent[event_id]`` is when each was
    published and ``placed[event_id]`` its (partition, stream sequence), from the broker's acknowledgement."""
    import nats

    from keymoments.live.broker import encode_event, ensure_stream, partition_of

    nc = await nats.connect(address.servers)
    js = nc.jetstream(publish_async_max_pending=20_000)
    await ensure_stream(js, address)
    r = random.Random(rate)
    planned = []  # made before the clock starts: the load generator's own work is not the system's
    for i in range(int(rate * seconds) + rate):
        ev = _event(r, i)
        eid, body = encode_event(ev)
        part = partition_of(ev["customer_id"], PARTITIONS)
        planned.append((eid, part, address.partition_subject(part), body))
    n = 0
    futures: list[tuple[str, int, asyncio.Future]] = []

    async def settle() -> None:
        for (eid, part, _), ack in zip(futures, await asyncio.gather(*(f for *_, f in futures)), strict=True):
            placed[eid] = (part, ack.seq)
        futures.clear()

    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        due = int(rate * elapsed)
        while n < min(due, len(planned)):
            eid, part, subject, body = planned[n]
            sent[eid] = time.time()
            futures.append((eid, part, await js.publish_async(subject, body, headers={"Nats-Msg-Id": eid})))
            n += 1
        if len(futures) > 2_000:
            await settle()
        await asyncio.sleep(0.01)
    await settle()
    await nc.close()


def _listen(schema: str, stream: str, out: str) -> None:
    """(A process of its own: ``--_listener``.) Append ``time partition cursor`` to ``out`` for every commit the
    workers announce (``NOTIFY km_commits``, sent by PostgreSQL when a batch's transaction commits): no polling,
    so nothing is added to the latency but the notification's own trip, and no load on the database. In its own
    process, so that the publisher's work never delays the moment a notification is read (the GIL)."""
    import psycopg

    from keymoments.store.pg_tables import COMMITS_CHANNEL

    with psycopg.connect(PG_URL, autocommit=True) as con, open(out, "a", encoding="utf-8") as f:
        con.execute(f"LISTEN {COMMITS_CHANNEL}")
        print("ready", flush=True)
        for note in con.notifies():
            now = time.time()
            body = json.loads(note.payload)
            if body.get("schema") == schema and body.get("stream") == stream:
                f.write("".join(f"{now} {p} {s}\n" for p, s in body["cursors"].items()))
                f.flush()


def _heard(path: Path) -> list[tuple[float, int, int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        t, p, s = line.split()
        rows.append((float(t), int(p), int(s)))
    return rows


def _seen(placed: dict[str, tuple], heard: list) -> dict[str, float]:
    """When each event's effects were committed: the first announcement of its partition's cursor at or past
    the event's stream sequence."""
    by_part: dict[int, list] = {}
    for t, p, s in sorted(heard):
        by_part.setdefault(p, []).append((t, s))
    events: dict[int, list] = {}
    for eid, (p, s) in placed.items():
        events.setdefault(p, []).append((s, eid))
    seen: dict[str, float] = {}
    for p, evs in events.items():
        notes, i, best = by_part.get(p, []), 0, 0
        evs.sort()
        for t, cursor in notes:  # time order; a cursor only moves forward
            best = max(best, cursor)
            while i < len(evs) and evs[i][0] <= best:
                seen[evs[i][1]] = t
                i += 1
    return seen


def latency_run(rate: int, seconds: float, drain_limit: float = 60.0) -> dict:
    from keymoments.live.broker import BrokerAddress
    from keymoments.store.postgres import PostgresOps

    tag = uuid.uuid4().hex[:8]
    schema, stream = f"km_bench_{tag}", f"KMBENCH_{tag.upper()}"
    address = BrokerAddress.parse(f"{NATS_URL}/{stream.lower()}", stream)
    ops = PostgresOps(PG_URL, schema=schema)
    env = {**os.environ, "KM_DATABASE_URL": PG_URL, "KM_DATABASE_SCHEMA": schema}
    claims = [",".join(str(p) for p in range(PARTITIONS) if p % WORKERS == i) for i in range(WORKERS)]
    workers = [
        subprocess.Popen([sys.executable, "-m", "keymoments", "worker", "--from", f"{NATS_URL}/{address.subject}",
                          "--stream", stream, "--partitions", str(PARTITIONS), "--partition", part, "--batch", "256",
                          "--id", f"bench-{i}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i, part in enumerate(claims)
    ]  # fmt: skip
    sent: dict[str, float] = {}
    placed: dict[str, tuple] = {}
    heard_path = Path(tempfile.mkstemp(prefix="km_heard_", suffix=".txt")[1])
    listener = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every worker owns its partitions
            with ops.read() as con:
                owned = con.execute("SELECT count(*) FROM workers WHERE partitions <> '' AND stopped_at IS NULL").fetchone()[0]
            if owned == WORKERS:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # their durable consumers exist and they are fetching
        base_cpu = sum(_cpu_s(w.pid) for w in workers)  # start-up (imports, connections) is not the events'
        load0 = round(os.getloadavg()[0], 2)
        listener = subprocess.Popen([sys.executable, __file__, "--_listener", schema, stream, str(heard_path)],
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        t0 = time.time()
        asyncio.run(_publish(address, rate, seconds, sent, placed))
        stopped_at = time.time()
        t0 = min(sent.values(), default=t0)  # the first publication: making the events beforehand is not offering
        offered_s = stopped_at - t0
        backlog_at_stop = len(sent) - sum(1 for t in _seen(placed, _heard(heard_path)).values() if t <= stopped_at)
        drain_deadline = time.time() + drain_limit
        while time.time() < drain_deadline and len(_seen(placed, _heard(heard_path))) < len(sent):
            time.sleep(0.1)
        seen = _seen(placed, _heard(heard_path))
        drained_s = (max(seen.values()) - stopped_at) if len(seen) == len(sent) else time.time() - stopped_at
        processed_in_window = sum(1 for t in seen.values() if t <= stopped_at)
        lat = [(seen[e] - sent[e]) * 1000 for e in sent if e in seen]
        cpu = sum(_cpu_s(w.pid) for w in workers) - base_cpu
        with ops.read() as con:
            decisions = con.execute("SELECT count(*) FROM playbook_decisions").fetchone()[0]
            txns = con.execute("SELECT count(DISTINCT processed_at) FROM processed_events").fetchone()[0]
        return {
            "rate_offered": rate, "seconds": round(offered_s, 1), "events": len(sent), "processed": len(lat),
            "decisions": int(decisions), "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p90_ms": round(_pct(lat, 0.90), 1) if lat else None,
            "p99_ms": round(_pct(lat, 0.99), 1) if lat else None, "max_ms": round(max(lat), 1) if lat else None,
            "processed_per_s_while_offered": round(processed_in_window / offered_s),
            "backlog_when_publishing_stopped": backlog_at_stop, "drain_s": round(max(0.0, drained_s), 2),
            "drained": len(lat) == len(sent), "load_average_1m": [load0, round(os.getloadavg()[0], 2)],
            "worker_cpu_ms_per_event": round(cpu * 1000 / max(1, len(lat)), 3),
            "events_per_transaction": round(len(lat) / max(1, txns), 1),
        }  # fmt: skip
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        heard_path.unlink(missing_ok=True)
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
        ops.drop_schema()
        asyncio.run(_delete_stream(stream))


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _delete_stream(name: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:  # noqa: BLE001 - gone already
        pass
    await nc.close()


# -- 2. spends per second -------------------------------------------------------------------------------------
def _spender(kind: str, target: str, schema: str, seconds: float, start_at: float, out: str) -> None:
    """One spending process (``--_spender``): spends of 1 cent from the pool 'bench' until ``seconds`` pass."""
    from keymoments.act.budgets import Ledger, locked_store
    from keymoments.act.models import BudgetPool

    pool = [BudgetPool(name="bench", period="total", amount=10_000_000)]
    n = 0
    if kind == "pg":
        from keymoments.store.postgres import PostgresOps

        ops = PostgresOps(target, schema=schema, migrate=False, max_size=1)  # connected before the start
        ledger = Ledger(ops, pool)
        time.sleep(max(0.0, start_at - time.time()))
        end = time.time() + seconds
        while time.time() < end:
            ledger.spend("bench", 1, customer_id=f"c{n % 1000}")
            n += 1
        ops.close()
    else:  # several processes on one DuckDB file: each spend opens it under the file lock
        time.sleep(max(0.0, start_at - time.time()))
        end = time.time() + seconds
        while time.time() < end:
            with locked_store(target) as store:
                Ledger(store, pool).spend("bench", 1, customer_id=f"c{n % 1000}")
            n += 1
    Path(out).write_text(json.dumps({"spends": n}))


def _processes(kind: str, target: str, schema: str, procs: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start_at = time.time() + 4.0
        outs = [str(Path(tmp) / f"s{i}.json") for i in range(procs)]
        ps = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_spender", kind, target, schema, str(seconds), str(start_at), o])
              for o in outs]  # fmt: skip
        for p in ps:
            p.wait(timeout=seconds + 120)
        return sum(json.loads(Path(o).read_text())["spends"] for o in outs) / seconds


def _threads(store, threads: int, seconds: float) -> float:
    from keymoments.act.budgets import Ledger
    from keymoments.act.models import BudgetPool

    ledger = Ledger(store, [BudgetPool(name="bench", period="total", amount=10_000_000)])
    counts = [0] * threads
    end = time.time() + seconds

    def loop(i: int) -> None:
        while time.time() < end:
            ledger.spend("bench", 1, customer_id=f"c{counts[i] % 1000}")
            counts[i] += 1

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds


def spend_run(seconds: float) -> dict:
    from keymoments.store.postgres import PostgresOps
    from keymoments.store.store import Store

    out: dict = {}
    schema = f"km_bench_{uuid.uuid4().hex[:8]}"
    ops = PostgresOps(PG_URL, schema=schema)
    try:
        out["postgresql_1_process"] = round(_processes("pg", PG_URL, schema, 1, seconds))
        out["postgresql_4_processes"] = round(_processes("pg", PG_URL, schema, 4, seconds))
        with ops.read() as con:
            n, total, remaining = con.execute(
                "SELECT count(*), sum(amount_cents), (SELECT remaining_cents FROM budgets) FROM ledger").fetchone()  # fmt: skip
        out["postgresql_books_balance"] = bool(total + remaining == 1_000_000_000 and n == total)
    finally:
        ops.drop_schema()
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "spend.duckdb") as store:
            out["embedded_1_thread"] = round(_threads(store, 1, seconds))
            out["embedded_4_threads"] = round(_threads(store, 4, seconds))
        shared = str(Path(tmp) / "shared.duckdb")
        Store(shared).close()
        out["embedded_4_processes_locked_store"] = round(_processes("duckdb", shared, "", 4, seconds))
    return out


def _figures(res: dict) -> dict:
    """The README's figures (``command`` + ``figures``): per rate offered, the median of the runs' p50 and p99
    and of the events/s processed while offered, each with the range of the runs; the spends per second."""
    figures: dict = {}
    for rate in sorted({r["rate_offered"] for r in res["latency"]}):
        runs = [r for r in res["latency"] if r["rate_offered"] == rate]
        for field, what in (("p50_ms", "p50"), ("p99_ms", "p99"), ("processed_per_s_while_offered", "events/s processed")):
            vals = [r[field] for r in runs if r[field] is not None]
            if vals:
                figures[f"latency_{rate}_{field}"] = {
                    "what": f"event -> committed decision through NATS, 2 workers, {rate} events/s offered for "
                            f"{res['seconds_per_rate']:.0f} s: {what} (median of {len(vals)} runs)",
                    "value": statistics.median(vals), "runs": vals,
                }  # fmt: skip
    for k, v in res["spends_per_s"].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            figures[f"spends_{k}"] = {"what": f"1-cent spends per second from one pool, {k.replace('_', ' ')}",
                                      "value": v, "runs": [v]}  # fmt: skip
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_listener":
        _listen(*sys.argv[2:5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_spender":
        kind, target, schema, seconds, start_at, out = sys.argv[2:8]
        _spender(kind, target, schema, float(seconds), float(start_at), out)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="Seconds each rate is offered.")
    ap.add_argument("--rates", default="1000,5000", help="Offered rates, events/s.")
    ap.add_argument("--repeat", type=int, default=1, help="Runs of each rate (the figures are their medians).")
    ap.add_argument("--spend-seconds", type=float, default=10.0, help="Seconds of each spend loop.")
    ap.add_argument("--drain-limit", type=float, default=60.0, help="Most seconds to wait for a backlog to drain.")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-spends", action="store_true")
    ap.add_argument("--json", action="store_true", help="Print the results as JSON.")
    ap.add_argument("--out", type=Path, default=OUT, help="The results file (default bench/out/live.json).")
    args = ap.parse_args()
    res: dict = {"command": " ".join(["bench/bench_live.py", *sys.argv[1:]]),
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "box": f"{os.cpu_count()} cores, shared with other work (figures are indicative)",
                 "load_average_before": os.getloadavg()[0], "seconds_per_rate": args.seconds,
                 "partitions": PARTITIONS, "workers": WORKERS, "customers": CUSTOMERS, "latency": [], "spends_per_s": {}}  # fmt: skip
    if not args.skip_latency:
        for rate in (int(x) for x in args.rates.split(",")):
            for _ in range(args.repeat):
                r = latency_run(rate, args.seconds, args.drain_limit)
                res["latency"].append(r)
                if not args.json:
                    print(f"{rate:>6} events/s offered for {r['seconds']} s: p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, "
                          f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms; {r['processed_per_s_while_offered']} events/s "
                          f"processed while offered, backlog {r['backlog_when_publishing_stopped']} when publishing "
                          f"stopped, drained in {r['drain_s']} s; {r['decisions']} decisions; "
                          f"{r['events_per_transaction']} events per transaction; {r['worker_cpu_ms_per_event']} worker "
                          f"CPU ms/event; load {r['load_average_1m']}", flush=True)  # fmt: skip
    if not args.skip_spends:
        res["spends_per_s"] = spend_run(args.spend_seconds)
        if not args.json:
            for k, v in res["spends_per_s"].items():
                print(f"spends/s {k}: {v}")
    res["load_average_after"] = os.getloadavg()[0]
    res["figures"] = _figures(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
