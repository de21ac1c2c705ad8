"""Ingest benchmark: events/s and peak RSS for Parquet and CSV files of 1M and 10M generated events.

Run:  .venv/bin/python bench/bench_ingest.py [--sizes 1000000 10000000] [--formats parquet csv] [--repeat 1]

Writes ``bench/out/ingest.json`` (the README's ingest figures come from it): per format and size, the events/s of
each run (the figure is the best; the spread of the runs is its range), the peak RSS and the floor's events/s,
with the load average before and after and the commit.

Each ingest runs in a fresh subprocess so its peak RSS is its own; the timer starts after the imports (what is
measured is the ingest, not the interpreter's start). Two peers run beside it on the same file:

- ``bare``: DuckDB's `CREATE TABLE AS SELECT * FROM read_*` (what a user would otherwise do), so the ratio shows
  what validation, de-duplication, UTC normalisation and the derived columns cost;
- ``floor``: one `INSERT` of the file's rows into a fresh store's events table (the store's 26 columns, scores
  and derived columns as constants or NULL) with no validation, no de-duplication and no ordering: what writing
  the rows into the store costs DuckDB by itself, the ceiling any ingest into this store can reach (a generous one:
  ``seq`` and the derived columns are left NULL, so it writes less than an ingest must).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

GEN_SQL = """
COPY (
  SELECT
    'e' || i AS event_id,
    'c' || (i // 20) AS customer_id,
    'j' || (i // 5) AS journey_id,
    TIMESTAMP '2025-01-01' + to_seconds(i * 7) AS ts,
    ['information','reservation','check-in','security','boarding','flight','arrival','baggage','support'][1 + (i % 5) + (hash(i // 5) % 4)::INT] AS touchpoint,
    ['web','app','phone','airport'][1 + (i % 4)::INT] AS channel,
    CASE WHEN i % 37 = 0 THEN 'failed' ELSE 'completed' END AS outcome,
    CASE WHEN i % 3 = 0 THEN 1 + (hash(i) % 5)::INT END AS rating,
    CASE WHEN i % 3 = 0 THEN 'csat5' END AS rating_scale,
    CASE WHEN i % 10 = 0 THEN 'the staff were friendly but the queue was long' END AS text,
    CASE WHEN i % 5 = 1 THEN round((hash(i) % 50000) / 100.0, 2) END AS value,
    'emp' || (i % 500) AS employee_id,
    ['CPH','ARN','OSL','LHR'][1 + (i % 4)::INT] AS location_id
  FROM range({n}) t(i)
) TO '{path}' {opts}
"""


def generate(n: int, fmt: str, folder: Path) -> Path:
    import duckdb

    path = folder / f"events_{n}.{fmt}"
    if not path.exists():
        opts = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
        duckdb.connect().execute(GEN_SQL.format(n=n, path=path, opts=opts))
    return path


CHILD = r"""
import json, resource, sys, time
import duckdb
from keymoments.ingest.files import read_source
from keymoments.store.schema import EVENT_COLUMNS
from keymoments.store.store import Store
from keymoments.store.writer import ingest_source
mode, path, db = sys.argv[1:4]
t = time.perf_counter()
if mode == "keymoments":
    store = Store(db)
    r = ingest_source(store, read_source(path))
    accepted = r.accepted
    store.close()
elif mode == "floor":
    store = Store(db)
    src = read_source(path)
    given = {f: '"' + c + '"' for f, c in src.columns.items()}
    typed = {"ts": "CAST({} AS TIMESTAMPTZ)", "rating": "CAST({} AS DOUBLE)", "value": "CAST({} AS DOUBLE)"}
    fill = {"confidence": "0.0", "valence_source": "'none'", "text_scored": "false", "batch_id": "1"}
    sel = [typed.get(c, "{}").format(given[c]) if c in given else fill.get(c, "NULL") for c in EVENT_COLUMNS]
    with store.write() as con:
        accepted = con.execute(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {', '.join(sel)} FROM {src.relation_sql}"
        ).fetchall()[0][0]
    store.close()
else:
    con = duckdb.connect(db)
    reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
    con.execute(f"CREATE TABLE raw AS SELECT * FROM {reader}('{path}')")
    accepted = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    con.close()
secs = time.perf_counter() - t
print(json.dumps({"seconds": secs, "accepted": accepted, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(mode: str, path: Path, folder: Path) -> dict:
    db = folder / f"{mode}_{path.stem}_{path.suffix[1:]}.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(db)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    db.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--formats", nargs="+", default=["parquet", "csv"])
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "km_bench_ingest")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each ingest (the figure is the best)")
    args = ap.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    import os

    print(
        f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'format':8} {'events':>11} {'keymoments s':>13} {'events/s':>12} {'peak RSS MB':>12} {'bare duckdb s':>14} {'ratio':>6}"
        f" {'floor s':>8} {'floor ev/s':>11} {'ratio':>6}"
    )
    load_before = os.getloadavg()[0]
    figures = {}
    for n in args.sizes:
        for fmt in args.formats:
            path = generate(n, fmt, args.folder)
            runs = []
            for _ in range(args.repeat):
                km = run("keymoments", path, args.folder)
                bare = run("bare", path, args.folder)
                floor = run("floor", path, args.folder)
                assert km["accepted"] == n == floor["accepted"], (km, floor)
                runs.append((km, bare, floor))
                print(
                    f"{fmt:8} {n:>11,} {km['seconds']:>13.2f} {n / km['seconds']:>12,.0f} {km['peak_rss_mb']:>12,.0f} "
                    f"{bare['seconds']:>14.2f} {km['seconds'] / bare['seconds']:>6.1f}"
                    f" {floor['seconds']:>8.2f} {n / floor['seconds']:>11,.0f} {km['seconds'] / floor['seconds']:>6.1f}"
                )
            figures[f"{fmt}_{n}"] = {
                "events": n,
                "format": fmt,
                "events_per_s": round(max(n / k["seconds"] for k, _, _ in runs)),
                "events_per_s_runs": [round(n / k["seconds"]) for k, _, _ in runs],
                "peak_rss_mb": round(max(k["peak_rss_mb"] for k, _, _ in runs)),
                "floor_events_per_s": round(max(n / f["seconds"] for _, _, f in runs)),
                "bare_duckdb_events_per_s": round(max(n / b["seconds"] for _, b, _ in runs)),
            }
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    command = "bench/bench_ingest.py " + " ".join(sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=out.parent, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=out.parent, capture_output=True, text=True)
    import datetime

    import duckdb

    payload = {
        "command": command.strip(),
        "commit": commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else ""),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "duckdb": duckdb.__version__,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "figures": figures,
    }
    (out / "ingest.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"(peak RSS of this parent: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average now {os.getloadavg()[0]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
