"""The playbook back-test on Spark (local mode) against DuckDB on the same demo history.

    python bench/bench_spark_backtest.py [--customers 5000] [--master local[2]] [--out bench/out/spark_backtest.json]

The demo airline (``generate_airline``) is ingested into a DuckDB store and written as the store's Parquet
events dataset; the 10 built-in playbooks (holdouts, a global holdout, budgets, timers, per-employee caps) are
back-tested on both engines. Reported: events, decisions, whether the decisions are identical (they must be),
and the wall time of each back-test; Spark's is the second of two runs (the first starts the Python workers).
The machine's cores and load average are recorded with the figures: on a shared box they move the times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from keymoments.act.library import load_library
from keymoments.act.runner import PlaybookRunner
from keymoments.examples import generate_airline
from keymoments.store.spark import SparkStore, spark_session, write_events_dataset
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame


def timed(runner: PlaybookRunner) -> tuple[float, list]:
    t = time.perf_counter()
    result = runner.backtest(run_id="bench")
    return time.perf_counter() - t, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", type=Path, default=Path("bench/out/spark_backtest.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="km-bench-spark-bt-"))
    demo = generate_airline(args.customers, seed=7)
    duck = Store(folder / "km.duckdb")
    ingest_events_frame(duck, demo.events)
    ingest_outcomes_frame(duck, demo.outcomes)
    write_events_dataset(duck, folder / "km.events")
    session = spark_session({"spark.master": args.master, "spark.ui.enabled": "false",
                             "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"})  # fmt: skip
    session.sparkContext.setLogLevel("ERROR")
    spark = SparkStore(folder / "km.duckdb", session=session)
    lib = load_library(seed=1, global_holdout=0.05)
    duck_s, duck_r = timed(PlaybookRunner(duck, lib))
    timed(PlaybookRunner(spark, lib))  # starts the Python workers
    spark_s, spark_r = timed(PlaybookRunner(spark, lib))
    same = [d.to_dict() for d in duck_r.decisions] == [d.to_dict() for d in spark_r.decisions]
    out = {
        "benchmark": "playbook back-test, 10 built-in playbooks, Spark local mode vs DuckDB",
        "command": f"python bench/bench_spark_backtest.py --customers {args.customers} --master {args.master}",
        "customers": args.customers, "events": duck_r.events, "decisions": len(duck_r.decisions),
        "identical_decisions": same, "duckdb_seconds": round(duck_s, 3), "spark_seconds": round(spark_s, 3),
        "spark_over_duckdb": round(spark_s / duck_s, 1), "spark_events_per_second": round(duck_r.events / spark_s),
        "spark_master": args.master, "cpus": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "machine": platform.platform(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    duck.close()
    session.stop()
    if not same:
        raise SystemExit("the engines decided differently")


if __name__ == "__main__":
    main()
