"""Benchmark: the analyses and a 10-playbook back-test on Spark (local mode) against DuckDB on the same
generated events, and the Spark driver's memory as the events grow.

    .venv/bin/python bench/bench_spark.py                      # 10M and 40M events (issue 18)
    .venv/bin/python bench/bench_spark.py --quick              # 1M and 4M, to try it
    .venv/bin/python bench/bench_spark.py --sizes 10000000 --engines duckdb --analyses journey_map
    .venv/bin/python bench/bench_spark.py --customers 625000   # the same customers at 10M and 40M events

**Data.** For each size, events are generated (bench_journey_map's generator: journeys of 5-11 of 12
touchpoints, a third of them rated, with the derived columns) in chunks of ``--chunk`` events, each a new range
of journeys: a chunk is inserted into the DuckDB store and written to the Parquet dataset (partitioned by event
date, one file per chunk and date), so neither the generator nor the writer holds more than a chunk. Every
customer gets an outcome (``retained``, leaning on their mean valence). Customers grow with the events (two
journeys each, one customer per 16 events), or, with ``--customers N``, their ids wrap at N, so a larger size has
the same customers with longer histories: the check of the driver's memory against the events alone (a size whose
natural customers are at most N is the same data, in the same folder). The DuckDB engine reads
``DATA/N/duck/km.duckdb`` (events and outcomes); the Spark engine reads the Parquet dataset
``DATA/N/spark/km.events`` through a store whose DuckDB file holds the outcomes only, so nothing it computes
can come from DuckDB's copy of the events. The data stay in ``--data`` (default: a folder under the system's
temporary folder; git ignores ``bench/out/data``) and are reused by the next run of the same size.

**Run.** Each engine runs in its own child process: the journey map, moments of truth for ``retained`` (200
bootstrap draws), the roadmap and a back-test of the 10 built-in playbooks (``PlaybookRunner(store,
load_library()).backtest()``), each timed end to end, in wall seconds and in CPU seconds of the child and its
JVM (on a shared machine the CPU seconds are the steadier figure: per-core rates come from them). Both children sample their resident memory every 50 ms
(the Python process and all its children: the Spark child's JVM) and report the peak, overall and per analysis,
and per analysis the peaks of the Python process alone and of its children (the JVM) alone.
The figures print as one JSON document (and go to ``--out``): seconds per analysis per engine, the Spark ÷
DuckDB ratio, the peak RSS per size, a few counts per analysis that must agree between the engines, the load
average before and after each child, and the check line ``driver RSS 40M / 10M = X (goal <= 1.2)``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANALYSES = ("journey_map", "moments", "roadmap", "backtest")
ENGINES = ("duckdb", "spark")
QUICK = "1000000,4000000"
JOURNEYS_PER_EVENT = 8  # the generator's mean journey length


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def natural_customers(n: int) -> int:
    """The customers the generator makes for ``n`` events when their ids do not wrap (two journeys each)."""
    return (max(1, n // JOURNEYS_PER_EVENT) + 1) // 2


def data_folder(root: Path, n: int, customers: int | None) -> Path:
    """Where the data of ``n`` events go: ``10M``, or ``40M-c625k`` when ``customers`` wraps the ids (a size
    whose natural customers are at most ``customers`` is the same data, and the same folder)."""
    if customers is None or customers >= natural_customers(n):
        return root / _label(n)
    return root / f"{_label(n)}-c{_label(customers)}"


def build(folder: Path, n: int, chunk: int, customers: int | None = None) -> dict:
    """Generate about ``n`` events in chunks into folder/duck/km.duckdb and the Parquet dataset
    folder/spark/km.events, with an outcome per customer in both stores; return what was built.
    ``customers``: customer ids wrap at that number (longer histories instead of more customers)."""
    sys.path.insert(0, str(HERE))
    from bench_journey_map import generate

    from keymoments.quoting import quote_literal
    from keymoments.store.spark import PARTITION
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame

    (folder / "duck").mkdir(parents=True, exist_ok=True)
    (folder / "spark").mkdir(parents=True, exist_ok=True)
    dataset = folder / "spark" / "km.events"
    store = Store(folder / "duck" / "km.duckdb")
    # whole journeys per chunk, an even number of them (a customer has journeys 2c and 2c + 1)
    per_chunk = max(2, (min(chunk, n) // JOURNEYS_PER_EVENT) // 2 * 2)
    total = max(1, n // JOURNEYS_PER_EVENT)
    for i, first in enumerate(range(0, total, per_chunk)):
        size = min(per_chunk, total - first)
        generate(store, size * JOURNEYS_PER_EVENT, first_journey=first, customers=customers)
        with store.session() as con:  # this chunk's journeys only: seq is (journey << 8) + step
            con.execute(
                f"COPY (SELECT *, CAST(ts AT TIME ZONE 'UTC' AS DATE) AS {PARTITION} FROM events "
                f"WHERE seq >= {first << 8} AND seq < {(first + size) << 8}) "
                f"TO {quote_literal(str(dataset))} (FORMAT parquet, PARTITION_BY ({PARTITION}), "
                f"FILENAME_PATTERN {quote_literal(f'chunk{i:04d}_{{i}}')}, OVERWRITE_OR_IGNORE)"
            )
    outcomes = store.query("""
        SELECT customer_id,
               (hash(customer_id) % 1000) / 1000.0 < 0.5 + 0.4 * coalesce(avg(valence), 0) AS retained
        FROM events GROUP BY customer_id
    """)
    ingest_outcomes_frame(store, outcomes)
    events = store.count("events")
    store.close()
    with Store(folder / "spark" / "km.duckdb") as outcomes_only:
        ingest_outcomes_frame(outcomes_only, outcomes)
    files = sum(1 for _ in dataset.rglob("*.parquet"))
    return {"events": events, "customers": len(outcomes), "parquet_files": files,
            "parquet_mib": sum(p.stat().st_size for p in dataset.rglob("*.parquet")) / 2**20}  # fmt: skip


def _summary(name: str, fitted) -> dict:  # noqa: ANN001
    """A few counts of a result that the two engines must agree on."""
    if name == "backtest":
        return {"events": int(fitted.events), "decisions": len(fitted.decisions)}
    d = fitted.to_dict()
    if name == "journey_map":
        return {"events": d["events"], "journeys": d["journeys"], "customers": d["customers"],
                "transitions": len(d["transitions"])}  # fmt: skip
    return {k: (len(v) if isinstance(v, list) else v) for k, v in d.items()
            if isinstance(v, int | list) and not isinstance(v, bool)}  # fmt: skip


def _run_all(store, analyses: list[str], rss: _PeakRSS, out: dict) -> dict:  # noqa: ANN001
    """Fit each analysis into ``out``, printing ``out`` as one JSON line after each (a child killed later, e.g.
    for memory, still leaves the analyses it finished)."""
    from keymoments.act.library import load_library
    from keymoments.act.runner import PlaybookRunner
    from keymoments.analyze.journey import JourneyMap
    from keymoments.analyze.moments import MomentsOfTruth
    from keymoments.analyze.roadmap import Roadmap

    make = {
        "journey_map": lambda: JourneyMap().fit(store),
        "moments": lambda: MomentsOfTruth("retained", n_boot=200).fit(store),
        "roadmap": lambda: Roadmap(outcome="retained").fit(store),
        "backtest": lambda: PlaybookRunner(store, load_library(seed=1)).backtest(),
    }
    out.update(
        seconds={}, cpu_seconds={}, peak_rss_mib={}, peak_rss_python_mib={}, peak_rss_jvm_mib={}, summary={}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in analyses:
            rss.reset()
            c0, t0 = _cpu(), time.perf_counter()
            fitted = make[name]()
            out["seconds"][name] = time.perf_counter() - t0
            out["cpu_seconds"][name] = _cpu() - c0
            out["peak_rss_mib"][name] = rss.peak
            out["peak_rss_python_mib"][name] = rss.peak_self  # each part's own peak: they need not coincide
            out["peak_rss_jvm_mib"][name] = rss.peak_children
            out["summary"][name] = _summary(name, fitted)
            del fitted
            print(json.dumps(out), flush=True)
    return out


def _cpu() -> float:
    """CPU seconds (user and system) of this process and its children (the Spark child's JVM) so far."""
    import psutil

    total = 0.0
    for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


class _PeakRSS:
    """Samples the RSS of this process and all its children (the JVM) every 50 ms; keeps the peak since the
    last :meth:`reset` and overall, in MiB."""

    def __init__(self) -> None:
        import psutil

        self.proc, self.peak, self.overall, self._stop = psutil.Process(), 0.0, 0.0, threading.Event()
        self.peak_self = self.peak_children = 0.0  # the Python process alone; its children (the JVM) alone
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            own = self.proc.memory_info().rss
            children = 0
            for p in self.proc.children(recursive=True):
                try:
                    children += p.memory_info().rss
                except psutil.Error:
                    pass
            total = own + children
            self.peak = max(self.peak, total / 2**20)
            self.peak_self = max(self.peak_self, own / 2**20)
            self.peak_children = max(self.peak_children, children / 2**20)
            self.overall = max(self.overall, self.peak)
            time.sleep(0.05)

    def reset(self) -> None:
        self.peak = self.peak_self = self.peak_children = 0.0

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.overall


def child(
    engine: str, folder: Path, master: str, analyses: list[str], extra: list[str] | None = None
) -> dict:
    rss = _PeakRSS()
    t0 = time.perf_counter()
    if engine == "duckdb":
        from keymoments.store.store import Store

        store = Store(folder / "duck" / "km.duckdb", read_only=True)
        out: dict = {"start_s": time.perf_counter() - t0}
    else:
        from keymoments.store.spark import SparkStore

        conf = {"spark.master": master, "spark.ui.enabled": "false", "spark.driver.memory": "2g"}
        conf.update(kv.split("=", 1) for kv in extra or [])
        store = SparkStore(folder / "spark" / "km.duckdb", read_only=True, conf=conf)
        store.spark.sparkContext.setLogLevel("ERROR")
        out = {"start_s": time.perf_counter() - t0,
               "spark_conf": {k: store.spark.conf.get(k) for k in
                              ("spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled", "spark.driver.memory")}}  # fmt: skip
    _run_all(store, analyses, rss, out)
    store.close()
    out["peak_rss_all_mib"] = rss.stop()
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000000,40000000", help="events per size, comma-separated")
    ap.add_argument("--quick", action="store_true", help=f"the sizes {QUICK}, to try the benchmark")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--analyses", default=",".join(ANALYSES), help=f"a subset of {','.join(ANALYSES)}")
    ap.add_argument("--engines", default=",".join(ENGINES), help="duckdb,spark or one of them")
    ap.add_argument("--chunk", type=int, default=2_000_000, help="events generated and written at a time")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "km-bench-spark",
                    help="where the generated data go (reused by the next run of the same size)")  # fmt: skip
    ap.add_argument("--customers", type=int, default=None,
                    help="customers at every size (ids wrap: more events make longer histories); default: they "
                    "grow with the events, one per 16")  # fmt: skip
    ap.add_argument("--build-only", action="store_true", help="generate the data of each size and stop")
    ap.add_argument("--rebuild", action="store_true", help="generate the data even when --data has them")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "spark.json")
    ap.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting (repeatable)"
    )
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    analyses = [a for a in args.analyses.split(",") if a]
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(analyses) - set(ANALYSES)) + sorted(set(engines) - set(ENGINES))
    if unknown:
        ap.error(f"unknown analyses or engines {unknown}; choose from {ANALYSES} and {ENGINES}")
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), args.master, analyses, args.conf)))
        return 0
    sizes = [int(s) for s in (QUICK if args.quick else args.sizes).split(",")]
    results = []
    for n in sizes:
        folder = data_folder(args.data, n, args.customers)
        marker = folder / "built.json"
        if marker.exists() and not args.rebuild:
            built = json.loads(marker.read_text())
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            built = build(folder, n, args.chunk, args.customers)
            built["build_s"] = time.perf_counter() - t0
            marker.write_text(json.dumps(built))
        if args.build_only:
            print(json.dumps({"folder": str(folder), **built}), flush=True)
            continue
        row: dict = {
            "events": n,
            **{k: v for k, v in built.items() if k != "events"},
            "events_generated": built["events"],
        }
        for engine in engines:
            cmd = [sys.executable, __file__, "--master", args.master, "--analyses", ",".join(analyses),
                   *(f"--conf={kv}" for kv in args.conf), "--child", engine, str(folder)]  # fmt: skip
            before = _load()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            row[engine] = json.loads(lines[-1]) if lines else {}
            if done.returncode != 0:  # keep what it finished, say why it stopped, go on
                sys.stderr.write(done.stderr[-4000:])
                tail = (done.stderr.strip().splitlines() or [""])[-1][:300]
                row[engine]["error"] = (
                    f"exit {done.returncode} after {list(row[engine].get('seconds', {}))}: {tail}"
                )
            row[engine]["load_average"] = {"before": before, "after": _load()}
        if "spark" in row:
            peaks = row["spark"].get("peak_rss_mib", {}).values()
            row["spark"]["driver_peak_rss_mib"] = row["spark"].get(
                "peak_rss_all_mib", max(peaks, default=0.0)
            )
        if "duckdb" in row and "spark" in row:
            both = [
                a
                for a in analyses
                if a in row["spark"].get("seconds", {}) and a in row["duckdb"].get("seconds", {})
            ]
            row["spark_over_duckdb"] = {
                a: row["spark"]["seconds"][a] / row["duckdb"]["seconds"][a] for a in both
            }
            row["engines_agree"] = {
                a: row["spark"]["summary"][a] == row["duckdb"]["summary"][a] for a in both
            }
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        _write(args, sizes, analyses, engines, results)
    if not args.build_only:
        _write(args, sizes, analyses, engines, results, final=True)
    return 0


def _write(args: argparse.Namespace, sizes: list[int], analyses: list[str], engines: list[str], results: list[dict],
           final: bool = False) -> None:  # fmt: skip
    """Write the results so far to ``--out`` (after each size, so a later size's failure keeps them)."""
    report = {
        # the fit limit is a setting the results depend on: a run with it set says so in its command
        "command": (f"KM_MAX_FIT_CUSTOMERS={os.environ['KM_MAX_FIT_CUSTOMERS']} "
                    if os.environ.get("KM_MAX_FIT_CUSTOMERS") else "")
        + f"python bench/bench_spark.py --sizes {','.join(map(str, sizes))} --master {args.master}"
        + (f" --analyses {args.analyses}" if set(analyses) != set(ANALYSES) else "")
        + (f" --engines {args.engines}" if set(engines) != set(ENGINES) else "")
        + (f" --customers {args.customers}" if args.customers else "")
        + "".join(f" --conf {kv}" for kv in args.conf),
        "machine": f"{os.cpu_count()}-core {platform.machine()} dev box (shared with other sessions)",
        "master": args.master,
        "customers": f"fixed at {args.customers} (ids wrap: longer histories)" if args.customers
        else "grow with the events (one per 16)",
        "sizes": results,
    }  # fmt: skip
    with_spark = [r for r in results if r.get("spark", {}).get("driver_peak_rss_mib")]
    if len(with_spark) > 1:
        lo, hi = with_spark[0], with_spark[-1]
        growth = hi["spark"]["driver_peak_rss_mib"] / lo["spark"]["driver_peak_rss_mib"]
        report["driver_rss_growth"] = growth
        report["driver_rss_growth_by_analysis"] = {
            a: hi["spark"]["peak_rss_mib"][a] / lo["spark"]["peak_rss_mib"][a]
            for a in analyses
            if a in hi["spark"]["peak_rss_mib"] and a in lo["spark"]["peak_rss_mib"]
        }
        # the figures the README may quote (tests/test_readme_figures.py): one run each, so its range is itself
        report["figures"] = {
            "driver_rss_growth": {"value": growth, "runs": [growth]},
            **{f"driver_rss_growth_{a}": {"value": g, "runs": [g]}
               for a, g in report["driver_rss_growth_by_analysis"].items()},
        }  # fmt: skip
        report["check"] = (
            f"driver RSS {_label(hi['events'])} / {_label(lo['events'])} = {growth:.2f} (goal <= 1.2): "
            + ("met" if growth <= 1.2 else "NOT met")
            + f" (customers {lo['customers']:,} -> {hi['customers']:,})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if final:
        print(json.dumps(report, indent=2))
        if "check" in report:
            print(report["check"])


if __name__ == "__main__":
    raise SystemExit(main())
