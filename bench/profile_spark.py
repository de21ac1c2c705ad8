"""Profile: where a Spark fit's time goes, query by query (wall time and CPU time of the driver and its JVM).

    PYTHONPATH=src .venv/bin/python bench/profile_spark.py --events 1000000 --label after
    PYTHONPATH=../main/src .venv/bin/python bench/profile_spark.py --events 1000000 --label before

Generates ``--events`` events as bench_spark.py does (reusing its data folder), starts one Spark session
(``local[2]`` and a 2 GiB heap; no other settings unless ``--conf`` names them: what a user gets), and fits each analysis ``--repeat`` times. Every Spark
action (``toPandas``/``collect``/``count`` of a DataFrame, which is how every query of :mod:`keymoments.analyze.sql`
and of Ibis's PySpark backend reaches the driver) is timed in wall seconds and in CPU seconds of this process
and its children (the JVM: its task threads, JIT compiler and garbage collector), with the SQL that ran and
the line of keymoments that sent it. CPU seconds are what to compare on a shared machine: wall seconds there
grow with the other processes' load, CPU seconds much less.

The action hooks wrap PySpark's classes, not keymoments', so the same script profiles any version of
keymoments (``PYTHONPATH`` picks it): the ``before`` and ``after`` of docs/experiments.md. Results are merged
into ``--out`` under ``--label``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_spark import _cpu, _label, build  # noqa: E402 - bench/ is not a package


def _hook(log: list[dict]) -> None:
    """Time every action of a PySpark (classic) DataFrame, with its SQL and the keymoments line that ran it."""
    from pyspark.sql import SparkSession
    from pyspark.sql.classic.dataframe import DataFrame

    plain_sql = SparkSession.sql

    def sql(self, query, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        df = plain_sql(self, query, *args, **kwargs)
        df._km_sql = query
        return df

    SparkSession.sql = sql
    for name in ("toPandas", "collect", "count", "toArrow"):
        plain = getattr(DataFrame, name)

        def action(self, *args, _plain=plain, _name=name, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            c0, t0 = _cpu(), time.perf_counter()
            out = _plain(self, *args, **kwargs)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            frames = [f for f in traceback.extract_stack()[:-1] if "/keymoments/" in f.filename]
            caller = frames[-1] if frames else None
            where = [
                f
                for f in frames
                if "/analyze/sql.py" not in f.filename and "/store/spark.py" not in f.filename
            ]
            at = where[-1] if where else caller
            log.append({
                "action": _name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "from": f"{Path(at.filename).name}:{at.lineno}" if at else "?",
                "sql": " ".join(str(getattr(self, "_km_sql", "")).split())[:400],
            })  # fmt: skip
            return out

        setattr(DataFrame, name, action)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--analyses", default="journey_map,moments,roadmap")
    ap.add_argument(
        "--repeat", type=int, default=2, help="fits per analysis (the first pays the JVM's warm-up)"
    )
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--label", default="after")
    ap.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)"
    )
    ap.add_argument("--data", type=Path, default=None, help="bench_spark.py's --data folder")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "spark_profile.json")
    args = ap.parse_args(argv)
    data = args.data or Path(tempfile.gettempdir()) / "km-bench-spark"
    folder = data / _label(args.events)
    if not (folder / "built.json").exists():
        built = build(folder, args.events, 2_000_000)
        (folder / "built.json").write_text(json.dumps(built))

    import keymoments
    from keymoments.analyze.journey import JourneyMap
    from keymoments.analyze.moments import MomentsOfTruth
    from keymoments.analyze.roadmap import Roadmap
    from keymoments.store.spark import SparkStore

    log: list[dict] = []
    _hook(log)
    t0 = time.perf_counter()
    conf = {"spark.master": args.master, "spark.ui.enabled": "false", "spark.driver.memory": "2g"}
    conf.update(kv.split("=", 1) for kv in args.conf)
    store = SparkStore(folder / "spark" / "km.duckdb", read_only=True, conf=conf)
    store.spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0
    make = {"journey_map": JourneyMap, "moments": lambda: MomentsOfTruth("retained", n_boot=200),
            "roadmap": lambda: Roadmap(outcome="retained")}  # fmt: skip
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.analyses.split(","):
            for i in range(args.repeat):
                log.clear()
                load = os.getloadavg()[0]
                c0, t0 = _cpu(), time.perf_counter()
                make[name]().fit(store)
                fits.append({
                    "analysis": name, "run": i + 1, "wall_s": round(time.perf_counter() - t0, 2),
                    "cpu_s": round(_cpu() - c0, 2), "load_before": round(load, 2), "queries": list(log),
                })  # fmt: skip
                print(f"{name} #{i + 1}: {fits[-1]['wall_s']} s wall, {fits[-1]['cpu_s']} s CPU, "
                      f"{len(log)} queries (load {load:.1f})", file=sys.stderr, flush=True)  # fmt: skip
    result = {
        "events": args.events, "master": args.master, "keymoments": str(Path(keymoments.__file__).parent),
        "spark_conf": {k: store.spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled")},
        "session_start_s": round(start_s, 2), "cpus": os.cpu_count(), "fits": fits,
    }  # fmt: skip
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out.setdefault("command", "python bench/profile_spark.py --events N --label LABEL")
    out.setdefault("runs", {})[f"{args.label}@{_label(args.events)}"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
