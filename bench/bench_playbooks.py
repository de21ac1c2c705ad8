"""Benchmark the playbook engine: backtest throughput and live decision latency.

    python bench/bench_playbooks.py [--customers 20000] [--live-seconds 10] [--rate 1000] [--json]

1. **Replay**: the demo airline history (``generate_airline``) is ingested into a DuckDB store and replayed
   through the 10 built-in playbooks. Reported: engine-only events/s per core (CPU time of the pure
   ``evaluate`` loop over pre-fetched tuples, one process, one thread) and end-to-end backtest events/s
   (reading the store included). Goal: >= 50,000 events/s per core.
2. **Live**: events arrive at ``--rate`` per second (a producer thread stamps each with its arrival time); the
   consumer takes what has arrived, evaluates each event and fires (records) the batch's decisions in one
   store transaction. Reported: p50/p99/max of arrival -> decision (evaluate) and arrival -> committed
   (fire). Goal: p99 decision <= 5 ms at 1,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from keymoments.act.engine import Engine
from keymoments.act.library import load_library
from keymoments.act.runner import LiveStream, PlaybookRunner
from keymoments.examples import generate_airline
from keymoments.store import act_tables as sql
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def build_store(path: Path, customers: int, seed: int) -> tuple[Store, float]:
    t = time.perf_counter()
    demo = generate_airline(customers, seed=seed)
    store = Store(path)
    ingest_events_frame(store, demo.events)
    ingest_outcomes_frame(store, demo.outcomes)
    return store, time.perf_counter() - t


def bench_replay(store: Store, repeat: int = 3) -> dict:
    lib = load_library(seed=1)
    cur = store.cursor()
    events = [e for chunk in sql.iter_events(cur, order="ts") for e in chunk]
    cur.close()
    best_cpu, best_wall, decisions = float("inf"), float("inf"), 0
    for _ in range(repeat):
        eng = Engine(lib)
        ev = eng.evaluate
        c0, w0 = time.process_time(), time.perf_counter()
        n_dec = 0
        for e in events:
            d = ev(e)
            if d:
                n_dec += len(d)
        n_dec += len(eng.advance(eng.clock))
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
        decisions = n_dec
    t = time.perf_counter()
    res = PlaybookRunner(store, lib).backtest()
    end_to_end = time.perf_counter() - t
    return {
        "events": len(events),
        "playbooks": len(lib.playbooks),
        "decisions": decisions,
        "engine_events_per_s_per_core_cpu": len(events) / best_cpu,
        "engine_events_per_s_wall": len(events) / best_wall,
        "backtest_end_to_end_events_per_s": res.events / end_to_end,
    }


def bench_live(store: Store, seconds: float, rate: float) -> dict:
    lib = load_library(seed=1)
    runner = PlaybookRunner(store, lib)
    cur = store.cursor()
    events = [e for chunk in sql.iter_events(cur, order="seq") for e in chunk]
    cur.close()
    n = min(len(events), int(seconds * rate))
    # the engine's state holds the history before the stream, as a live runner's would
    engine = Engine(lib, simulate_budgets=False)  # live: the ledger decides budgets
    for e in events[: len(events) - n]:
        engine.evaluate(e)
    stream = events[len(events) - n :]
    q: queue.SimpleQueue = queue.SimpleQueue()
    arrived_at: dict[str, float] = {}
    commit: list[float] = []

    def on_commit(batch, t):  # arrival of the event that led to a decision -> the decision committed
        commit.extend(t - arrived_at[d.decision_id] for d in batch if d.decision_id in arrived_at)

    def produce() -> None:
        t0 = time.perf_counter()
        for i, e in enumerate(stream):
            due = t0 + i / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            q.put((time.perf_counter(), e))
        q.put(None)

    decide: list[float] = []
    evaluate: list[float] = []  # the engine's own time per event (no queueing, no scheduling delay)
    producer = threading.Thread(target=produce, daemon=True)
    with LiveStream(runner, engine, flush_every=0.05, on_commit=on_commit) as live:
        producer.start()
        while (item := q.get()) is not None:
            arrived, e = item
            t0 = time.perf_counter()
            for d in live.submit(e):
                arrived_at[d.decision_id] = arrived
            t1 = time.perf_counter()
            evaluate.append(t1 - t0)
            decide.append(t1 - arrived)
        producer.join()
    ms = 1000.0
    return {
        "events": len(decide),
        "rate_per_s": rate,
        "decisions_fired": live.committed,
        "decision_ms_p50": _pct(decide, 0.5) * ms,
        "decision_ms_p99": _pct(decide, 0.99) * ms,
        "decision_ms_max": max(decide) * ms,
        "evaluate_ms_p50": _pct(evaluate, 0.5) * ms,
        "evaluate_ms_p99": _pct(evaluate, 0.99) * ms,
        "committed_ms_p50": _pct(commit, 0.5) * ms if commit else None,
        "committed_ms_p99": _pct(commit, 0.99) * ms if commit else None,
        "committed_ms_mean": statistics.fmean(commit) * ms if commit else None,
        "flushes": len(live.flush_seconds),
        "flush_ms_p50": _pct(live.flush_seconds, 0.5) * ms if live.flush_seconds else None,
        "flush_ms_max": max(live.flush_seconds) * ms if live.flush_seconds else None,
        "slowest_flushes_ms": [round(x * ms, 1) for x in sorted(live.flush_seconds)[-5:]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--live-seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store, build_s = build_store(Path(tmp) / "bench.duckdb", args.customers, args.seed)
        replay = bench_replay(store)
        live = bench_live(store, args.live_seconds, args.rate)
        store.close()
    out = {"customers": args.customers, "build_seconds": build_s, "replay": replay, "live": live,
           "python": sys.version.split()[0]}  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    r, lv = replay, live
    print(f"replay: {r['events']:,} events, {r['playbooks']} playbooks, {r['decisions']:,} decisions")
    print(f"  engine: {r['engine_events_per_s_per_core_cpu']:,.0f} events/s per core (CPU time), "
          f"{r['engine_events_per_s_wall']:,.0f} events/s wall")
    print(f"  backtest end to end (store read included): {r['backtest_end_to_end_events_per_s']:,.0f} events/s")
    print(f"live at {lv['rate_per_s']:,.0f} events/s over {lv['events']:,} events ({lv['decisions_fired']:,} decisions):")
    print(f"  arrival -> decision  p50 {lv['decision_ms_p50']:.3f} ms  p99 {lv['decision_ms_p99']:.3f} ms  "
          f"max {lv['decision_ms_max']:.3f} ms")
    print(f"  engine time per event p50 {lv['evaluate_ms_p50']:.3f} ms  p99 {lv['evaluate_ms_p99']:.3f} ms")
    print(f"  arrival -> committed p50 {lv['committed_ms_p50']:.3f} ms  p99 {lv['committed_ms_p99']:.3f} ms")
    print(f"  group commits: {lv['flushes']}, p50 {lv['flush_ms_p50']:.1f} ms, slowest {lv['slowest_flushes_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
