"""Benchmark: the full journey map on 1M and 10M generated events vs pm4py's directly-follows discovery.

    .venv/bin/pip install pm4py        # the `bench` extra; AGPL, used here only as the peer we compare to
    .venv/bin/python bench/bench_journey_map.py [--sizes 1000000,10000000] [--threads 2] [--no-pm4py]

Events are generated straight into a DuckDB store with SQL (with the derived columns the store materialises
at ingest: step, next_touchpoint, next_ts, is_last), then ``JourneyMap().fit(store)`` is timed end to end
(touchpoint stats with bootstrap CIs, pits/peaks, transitions with median gaps, variants, drop-offs). pm4py's
``discover_dfg`` is timed on the same events read into a pandas frame (the read is not timed). Peak RSS is
the process's high-water mark (psutil / resource), measured in the same process.

Goal (issue 3): 10M events in <= 5 s on 2 cores, >= 10x faster than pm4py's DFG alone, peak RSS <= 4 GiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

N_TOUCHPOINTS = 12


def generate(store, n_events: int, first_journey: int = 0, customers: int | None = None) -> int:  # noqa: ANN001
    """Insert about ``n_events`` synthetic airline-like events (journeys of 5-11 touchpoints), journeys numbered
    from ``first_journey`` (so a large set can be generated in chunks, each a new range of journeys).

    Customer ``c`` has journeys ``2c`` and ``2c + 1``; with ``customers``, customer ids wrap at that number
    (journey ``j`` belongs to customer ``(j // 2) % customers``), so more events make longer histories, not more
    customers."""
    avg_len = 8
    n_journeys = max(1, n_events // avg_len)
    sql = f"""
    INSERT INTO events BY NAME
    WITH j AS (
        SELECT j, 5 + (hash(j) % 7)::INT AS len FROM range({first_journey}, {first_journey + n_journeys}) t(j)
    ), e AS (
        SELECT j, len, unnest(range(len)) AS k FROM j
    ), f AS (
        SELECT j, len, k,
               least(k + ((hash(j) >> k) & 1)::INT, {N_TOUCHPOINTS - 1}) AS tp,
               CASE WHEN k + 1 < len THEN least(k + 1 + ((hash(j) >> (k + 1)) & 1)::INT, {N_TOUCHPOINTS - 1}) END AS ntp,
               hash(j * 131 + k) AS h
        FROM e
    )
    SELECT
        'e' || j || '-' || k AS event_id,
        'c' || {"(j // 2)" if customers is None else f"((j // 2) % {int(customers)})"} AS customer_id,
        'j' || j AS journey_id,
        TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(j * 30 + k * 3600 + (h % 600)::BIGINT) AS ts,
        'tp' || lpad(tp::VARCHAR, 2, '0') AS touchpoint,
        CASE WHEN h % 3 = 0 THEN 'app' WHEN h % 3 = 1 THEN 'web' ELSE 'phone' END AS channel,
        CASE WHEN (h >> 8) % 100 < 3 + (tp = 4)::INT * 10 THEN 'failed' ELSE 'completed' END AS outcome,
        CASE WHEN (h >> 16) % 3 = 0 THEN 1 + ((h >> 20) % 5)::INT END AS rating,
        CASE WHEN (h >> 16) % 3 = 0 THEN 'csat5' END AS rating_scale,
        CASE WHEN (h >> 16) % 3 = 0 THEN
            greatest(-1.0, least(1.0, (((h >> 20) % 5)::DOUBLE - 2) / 2 - (tp = 4)::INT * 0.3 + (tp = 9)::INT * 0.3))
        END AS valence,
        'emp' || ((h >> 28) % 500) AS employee_id,
        (j << 8) + k AS seq,
        1 AS batch_id,
        (k + 1)::INT AS step,
        CASE WHEN ntp IS NOT NULL THEN 'tp' || lpad(ntp::VARCHAR, 2, '0') END AS next_touchpoint,
        CASE WHEN k + 1 < len THEN TIMESTAMPTZ '2024-01-01 00:00:00+00'
             + to_seconds(j * 30 + (k + 1) * 3600 + (hash(j * 131 + k + 1) % 600)::BIGINT) END AS next_ts,
        k + 1 = len AS is_last
    FROM f
    """
    with store.write() as con:
        con.execute(sql)
    return store.count("events")


def peak_rss_mib() -> float:
    try:
        import psutil

        mi = psutil.Process().memory_full_info()
        peak = getattr(mi, "peak_wset", None)  # Windows
        if peak:
            return peak / 2**20
    except Exception:  # noqa: BLE001
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run(n: int, threads: int, with_pm4py: bool, folder: Path) -> dict:
    from keymoments.analyze.journey import JourneyMap
    from keymoments.store.store import Store

    path = folder / f"bench_{n}.duckdb"
    if path.exists():
        path.unlink()
    # generate in a child process, so this process's peak RSS is the journey map's (and then pm4py's)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(path), "--sizes", str(n), "--threads", str(threads)],
                   check=True)  # fmt: skip
    gen_s = time.perf_counter() - t0
    store = Store(path, threads=threads)
    n_events = store.count("events")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        JourneyMap(variants=False).fit(store.events().limit(1000))  # import / compile warm-up, tiny
    t0 = time.perf_counter()
    jm = JourneyMap().fit(store)
    map_s = time.perf_counter() - t0
    # the directly-follows counts alone, as an Ibis group-by over the materialised next_touchpoint
    ev = store.events()
    ev = ev.filter(ev.next_touchpoint.notnull())
    t0 = time.perf_counter()
    dfg_ours = ev.group_by(["touchpoint", "next_touchpoint"]).aggregate(n=ev.count()).execute()
    dfg_s = time.perf_counter() - t0
    res = {
        "dfg_s": dfg_s,
        "dfg_edges": len(dfg_ours),
        "events": n_events,
        "journeys": jm.n_journeys_,
        "transitions": int(jm.transitions_["count"].sum()),
        "generate_s": gen_s,
        "journey_map_s": map_s,
        "rss_after_map_mib": rss_mib(),
        "peak_rss_after_map_mib": peak_rss_mib(),
    }
    if with_pm4py:
        import pm4py

        df = store.query(
            'SELECT journey_id AS "case:concept:name", touchpoint AS "concept:name", '
            'ts AS "time:timestamp" FROM events ORDER BY seq'
        )
        t0 = time.perf_counter()
        dfg, _start, _end = pm4py.discover_dfg(df)
        pm_s = time.perf_counter() - t0
        ours = {(r["from"], r["to"]): int(r["count"]) for r in jm.transitions_.to_dict(orient="records")}
        res.update(
            pm4py_dfg_s=pm_s,
            ratio=pm_s / map_s,
            dfg_ratio=pm_s / dfg_s,
            dfg_matches=dict(dfg) == ours,
            peak_rss_after_pm4py_mib=peak_rss_mib(),
        )
        del df
    store.close()
    path.unlink(missing_ok=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-pm4py", action="store_true")
    ap.add_argument("--folder", default=None, help="where to put the temporary stores")
    ap.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        from keymoments.store.store import Store

        with Store(args.generate, threads=args.threads) as store:
            generate(store, int(args.sizes))
        return
    with_pm4py = not args.no_pm4py
    if with_pm4py:
        try:
            import pm4py  # noqa: F401
        except ImportError:
            print("pm4py is not installed (.venv/bin/pip install pm4py); timing the journey map only.")
            with_pm4py = False
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="km_bench_"))
    print(f"threads={args.threads} cpus={os.cpu_count()} load={os.getloadavg()} folder={folder}")
    for n in (int(s) for s in args.sizes.split(",")):
        r = run(n, args.threads, with_pm4py, folder)
        line = (
            f"{r['events']:>11,} events {r['journeys']:>10,} journeys | generate {r['generate_s']:6.2f} s | "
            f"journey map {r['journey_map_s']:6.2f} s | our DFG alone {r['dfg_s']:5.2f} s | "
            f"peak RSS {r['peak_rss_after_map_mib']:7.0f} MiB"
        )
        if "pm4py_dfg_s" in r:
            line += (
                f" | pm4py DFG {r['pm4py_dfg_s']:6.2f} s | ratio map {r['ratio']:5.1f}x, DFG {r['dfg_ratio']:5.1f}x | "
                f"DFG counts match: {r['dfg_matches']} | peak RSS incl. pm4py {r['peak_rss_after_pm4py_mib']:7.0f} MiB"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
