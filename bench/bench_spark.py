"""Benchmark: the analyses on Spark (local mode) against DuckDB on the same generated events, and the Spark
driver's memory as the events grow.

    .venv/bin/python bench/bench_spark.py [--sizes 10000000,40000000] [--master local[2]] [--out bench/out/spark.json]

For each size, events are generated (bench_journey_map's generator: journeys of 5-11 of 12 touchpoints, a
third of them rated, with the derived columns) into a DuckDB store with an outcome per customer (``retained``,
leaning on the customer's mean valence), and written as the store's Parquet dataset partitioned by event date.
Then, each engine in its own child process (so peak memory is that engine's): the journey map, moments of
truth for ``retained`` and the roadmap, timed end to end. The Spark child samples the resident memory of the
driver (the Python process and its JVM, together) every 50 ms and reports the peak. The figures print as one
JSON document (and go to ``--out``): seconds per analysis per engine, the Spark/DuckDB ratio, and the
driver's peak RSS per size, whose ratio between the largest and the smallest size is the check that driver
memory does not grow with the number of events (goal: <= 1.2x from 10M to 40M).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANALYSES = ("journey_map", "moments", "roadmap")


def build(folder: Path, n: int) -> None:
    """Generate about ``n`` events with outcomes into folder/km.duckdb and its Parquet dataset folder/km.events."""
    sys.path.insert(0, str(HERE))
    from bench_journey_map import generate

    from keymoments.store.spark import write_events_dataset
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame

    store = Store(folder / "km.duckdb")
    generate(store, n)
    outcomes = store.query("""
        SELECT customer_id,
               (hash(customer_id) % 1000) / 1000.0 < 0.5 + 0.4 * coalesce(avg(valence), 0) AS retained
        FROM events GROUP BY customer_id
    """)
    ingest_outcomes_frame(store, outcomes)
    write_events_dataset(store, folder / "km.events")
    store.close()


def _fit_all(store) -> dict[str, float]:  # noqa: ANN001
    from keymoments.analyze.journey import JourneyMap
    from keymoments.analyze.moments import MomentsOfTruth
    from keymoments.analyze.roadmap import Roadmap

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in (
            ("journey_map", lambda: JourneyMap()),
            ("moments", lambda: MomentsOfTruth("retained", n_boot=200)),
            ("roadmap", lambda: Roadmap(outcome="retained")),
        ):
            t0 = time.perf_counter()
            make().fit(store)
            out[name] = time.perf_counter() - t0
    return out


class _PeakRSS:
    """Samples the RSS of this process and all its children (the JVM) and keeps the peak, in MiB."""

    def __init__(self) -> None:
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak


def child(engine: str, folder: Path, master: str) -> dict:
    if engine == "duckdb":
        from keymoments.store.store import Store

        with Store(folder / "km.duckdb", read_only=True) as store:
            return {"seconds": _fit_all(store)}
    from keymoments.store.spark import SparkStore

    rss = _PeakRSS()
    conf = {"spark.master": master, "spark.ui.enabled": "false", "spark.driver.memory": "2g"}
    store = SparkStore(folder / "km.duckdb", read_only=True, conf=conf)
    store.spark.sparkContext.setLogLevel("ERROR")
    seconds = _fit_all(store)
    store.close()
    return {"seconds": seconds, "driver_peak_rss_mib": rss.stop()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000000,40000000")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "spark.json")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.master)))
        return 0
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="km-bench-spark-") as tmp:
            folder = Path(tmp)
            t0 = time.perf_counter()
            build(folder, n)
            row: dict = {"events": n, "build_s": time.perf_counter() - t0}
            for engine in ("duckdb", "spark"):
                cmd = [sys.executable, __file__, "--master", args.master, "--child", engine, str(folder)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                row[engine] = json.loads(out.strip().splitlines()[-1])
            row["spark_over_duckdb"] = {
                a: row["spark"]["seconds"][a] / row["duckdb"]["seconds"][a] for a in ANALYSES
            }
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    rss = [r["spark"]["driver_peak_rss_mib"] for r in results]
    report = {
        "command": f"python bench/bench_spark.py --sizes {args.sizes} --master {args.master}",
        "machine": "2-core dev box (shared)", "master": args.master, "sizes": results,
        "driver_rss_growth": rss[-1] / rss[0] if len(rss) > 1 else None,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
