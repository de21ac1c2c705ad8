"""Benchmark the REST API on loopback: ingest throughput and the journey-map route's latency on 1M events.

    .venv/bin/python bench/bench_api.py                   # 200 batches of 1,000 events; 1M events for latency
    .venv/bin/python bench/bench_api.py --batches 50 --latency-events 200000
    .venv/bin/python bench/bench_api.py --concurrency 1 2 4 8 --latency-events 0   # ingest only

Goals (issue 7): >= 20,000 events/s ingested over HTTP in batches of 1,000; journey-map p99 <= 500 ms on 1M
events. A real uvicorn server runs in a subprocess on 127.0.0.1; each client keeps one connection alive, and
the ingest run is repeated for each --concurrency (1 = one connection posting batch after batch; more =
a worker pool, whose batches the server writes together), and also timed until the server has scored the
batches' text in the background (``/health``). Prints its figures; never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SERVER = """
import sys, uvicorn
from keymoments.serve.app import create_app
from keymoments.store.store import Store
store = Store(sys.argv[1])
app = create_app(store, close_store=True, warm=tuple(a for a in sys.argv[3:]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db: Path, *warm: str) -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(db), str(port), *warm])
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def _events(n_customers: int, seed: int) -> list[dict]:
    from keymoments.examples import generate_airline

    ev = generate_airline(n_customers, seed=seed).events.copy()
    ev["ts"] = ev["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ev = ev.astype(object).where(ev.notna(), None)
    return ev.to_dict(orient="records")


def _admin_key(db: Path) -> str:
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    with Store(db) as s:
        return create_key(s, "admin", name="bench")[1]


def _health(c: httpx.Client) -> dict:
    r = c.get("/health")
    body = r.json()
    if "text_scoring" not in body:
        raise SystemExit(f"/health answered {r.status_code}: {body}")
    return body["text_scoring"]


def bench_ingest(batches: int, size: int, concurrency: int = 1) -> dict:
    """Post ``batches`` batches of ``size`` events from ``concurrency`` clients, each on its own keep-alive
    connection (an integrator's worker pool); the server writes batches that arrive together in one transaction."""
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "ingest.duckdb"
        key = _admin_key(db)
        n_customers = max(50, int(batches * size / 28) + 50)
        events = _events(n_customers, seed=7)[: batches * size]
        bodies = [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]
        proc, base = _start(db)
        headers = {"X-API-Key": key, "content-type": "application/json"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                c.post("/api/v1/events", content=bodies[0]).raise_for_status()  # warm-up batch (not counted)
            todo = iter(bodies[1:])
            lock = threading.Lock()
            lat: list[float] = []
            accepted = [0]

            def client() -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                    while True:
                        with lock:
                            b = next(todo, None)
                        if b is None:
                            return
                        t = time.perf_counter()
                        r = c.post("/api/v1/events", content=b)
                        r.raise_for_status()
                        with lock:
                            lat.append(time.perf_counter() - t)
                            accepted[0] += r.json()["accepted"]

            t0 = time.perf_counter()
            workers = [threading.Thread(target=client) for _ in range(concurrency)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - t0
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                while (status := _health(c))["busy"]:  # the text, scored in the background
                    time.sleep(0.2)
                scored_after = time.perf_counter() - t0
                again = c.post("/api/v1/events", content=bodies[1]).json()
        finally:
            proc.terminate()
            proc.wait()
    n = size * (len(bodies) - 1)
    lat.sort()
    return {
        "concurrency": concurrency, "batches": len(bodies) - 1, "batch_size": size, "events": n,
        "accepted": accepted[0], "seconds": round(wall, 2), "events_per_s": round(n / wall),
        "batch_p50_ms": round(1000 * statistics.median(lat), 1), "batch_p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
        "replay_duplicates": again["duplicates"], "texts_scored": status["scored"],
        "all_scored_after_s": round(scored_after, 2),
    }  # fmt: skip


def bench_latency(n_events: int, requests: int) -> dict:
    from keymoments.examples import generate_airline
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "latency.duckdb"
        t = time.perf_counter()
        demo = generate_airline(max(100, int(n_events / 28.7)), seed=11)
        with Store(db) as s:
            ingest_events_frame(s, demo.events.head(n_events), source="bench")
            ingest_outcomes_frame(s, demo.outcomes, key="customer_id")
            n = s.count("events")
        build = time.perf_counter() - t
        key = _admin_key(db)
        proc, base = _start(db)  # no warming: the first request pays the fit, the rest hit the cache
        try:
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600) as c:
                t = time.perf_counter()
                c.get("/api/v1/analyses/journey").raise_for_status()
                cold = time.perf_counter() - t
                lat = []
                for _ in range(requests):
                    t = time.perf_counter()
                    c.get("/api/v1/analyses/journey").raise_for_status()
                    lat.append(time.perf_counter() - t)
                lat.sort()
                t = time.perf_counter()  # a filtered map is its own cache entry
                c.get("/api/v1/analyses/journey", params={"channel": "app"}).raise_for_status()
                filtered = time.perf_counter() - t
        finally:
            proc.terminate()
            proc.wait()
    return {
        "events": n, "build_s": round(build, 1), "requests": requests, "cold_ms": round(1000 * cold),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
        "max_ms": round(1000 * lat[-1], 1), "filtered_cold_ms": round(1000 * filtered),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8], help="client connections; one run each")
    ap.add_argument("--latency-events", type=int, default=1_000_000, help="0 skips the journey-map latency run")
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    print(f"keymoments API benchmark ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    runs = []
    for conc in a.concurrency:
        ing = bench_ingest(a.batches, a.batch_size, conc)
        runs.append(ing)
        print(f"ingest over HTTP, {conc} connection(s): {ing['events']:,} events in {ing['batches']} batches of "
              f"{ing['batch_size']:,}: {ing['events_per_s']:,} events/s (goal >= 20,000); batch p50 {ing['batch_p50_ms']} ms, "
              f"p99 {ing['batch_p99_ms']} ms; replaying a batch: {ing['replay_duplicates']} duplicates; "
              f"their {ing['texts_scored']:,} texts scored in the background by {ing['all_scored_after_s']} s")  # fmt: skip
    lat = None
    if a.latency_events:
        lat = bench_latency(a.latency_events, a.requests)
        print(f"journey map on {lat['events']:,} events: cold {lat['cold_ms']:,} ms, then {lat['requests']} requests "
              f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (goal <= 500), max {lat['max_ms']} ms; "
              f"a new filter (channel=app) cold {lat['filtered_cold_ms']:,} ms")  # fmt: skip
    print(json.dumps({"ingest": runs, "journey_latency": lat}))


if __name__ == "__main__":
    main()
