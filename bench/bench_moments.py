"""Benchmark: moments of truth with 95% intervals at survey and journey scale.

    .venv/bin/python bench/bench_moments.py [--survey-n 100000] [--journeys 1000000] [--skip-journeys]

1. A wide survey, 100,000 respondents x 14 touchpoints (csat5, ~15% blank = not rated, a segment attribute,
   ``retained`` and ``spend``), written as CSV and taken through the survey ingest
   (:func:`keymoments.ingest.survey.read_survey` -> store), then ``MomentsOfTruth("retained").fit(store)``.
   Goal: ranking with CIs in <= 30 s on 2 cores (the fit; the ingest is timed separately).
2. 1,000,000 journeys x 10 touchpoints (10M events) with an outcome keyed by journey, ingested into a store
   with the events writer, then ``MomentsOfTruth("repurchased").fit(store)``. Goal: <= 2 minutes.
3. ``--recovery-seeds N``: the airline demo's planted drivers over N seeds (2,000 customers each): how often
   the strong drivers are the top ones (by impact and by priority) and how often a null touchpoint's 95%
   interval covers zero.
Each prints the figures, and whether the planted drivers came out on top.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from keymoments.analyze.moments import MomentsOfTruth
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame, ingest_source


def _survey_frame(n: int, k: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[str], list[str]]:
    tps = [f"tp{i:02d}" for i in range(k)]
    mood = rng.normal(0, 0.3, n)
    val = np.clip(0.2 + mood[:, None] + rng.normal(0, 0.45, (n, k)), -1, 1)
    ratings = np.rint((val + 1) * 2 + 1)  # csat5
    beta = np.zeros(k)
    beta[[2, 5, 9]] = [1.5, 1.0, 0.7]  # the planted drivers; every other touchpoint is null
    seg = rng.choice(["business", "leisure"], n, p=[0.3, 0.7])
    eta = 1.0 + val @ beta + 0.4 * (seg == "business")
    df = pd.DataFrame(ratings, columns=tps)
    df = df.mask(rng.random((n, k)) < 0.15)
    df.insert(0, "respondent_id", [f"r{i:07d}" for i in range(n)])
    df["segment"] = seg
    df["retained"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    df["spend"] = np.round(300 * np.exp(0.3 * val @ beta + rng.normal(0, 0.3, n)), 2)
    return df, tps, [tps[i] for i in (2, 5, 9)]


def bench_survey(n: int, k: int, tmp: Path) -> None:
    from keymoments.ingest.survey import read_survey

    rng = np.random.default_rng(1)
    df, tps, drivers = _survey_frame(n, k, rng)
    csv = tmp / "survey.csv"
    df.to_csv(csv, index=False)
    store = Store(tmp / "survey.duckdb", threads=2)
    t0 = time.perf_counter()
    batch = read_survey(
        csv,
        id_col="respondent_id",
        touchpoints=tps,
        scale="csat5",
        outcome_cols=["segment", "retained", "spend"],
    )
    res = ingest_source(store, batch.events)
    ingest_outcomes_frame(
        store,
        batch.outcomes.rename(columns={"respondent_id": "customer_id"})
        if "respondent_id" in batch.outcomes.columns
        else batch.outcomes,
    )
    t_ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    mot = MomentsOfTruth("retained").fit(store)
    t_fit = time.perf_counter() - t0
    s = mot.summary
    top = list(s.sort_values("impact", ascending=False)["touchpoint"][:3])
    nulls = s[~s["touchpoint"].isin(drivers)]
    covered = int(((nulls["ci_low"] <= 0) & (nulls["ci_high"] >= 0)).sum())
    print(f"survey {n:,} x {k}: ingest-survey {t_ingest:.1f} s ({res.accepted:,} events), "
          f"MomentsOfTruth.fit {t_fit:.1f} s (goal <= 30 s) | AUC(cv) {mot.model_fit_['auc_cv']:.3f} | "
          f"top-3 by impact {top} (planted {drivers}) | nulls covering 0: {covered}/{len(nulls)}")  # fmt: skip
    t0 = time.perf_counter()
    MomentsOfTruth("retained", touchpoints=tps, scale="csat5").fit(df)
    print(
        f"survey {n:,} x {k}: the same fit on the wide pandas frame (no store) {time.perf_counter() - t0:.1f} s"
    )
    store.close()


def bench_journeys(n: int, k: int, tmp: Path) -> None:
    rng = np.random.default_rng(2)
    tps = [f"step{i}" for i in range(k)]
    visit = rng.random((n, k)) < 0.85
    visit[:, 0] = True
    mood = rng.normal(0, 0.3, n)
    val = np.clip(0.1 + mood[:, None] + rng.normal(0, 0.4, (n, k)), -1, 1)
    beta = np.zeros(k)
    beta[[1, 4, 8]] = [1.2, 0.8, 1.0]
    eta = -0.5 + np.where(visit, val, 0.0) @ beta
    jid = np.array([f"j{i:07d}" for i in range(n)], dtype=object)
    cid = np.array([f"c{i // 2:07d}" for i in range(n)], dtype=object)
    rows, cols = np.nonzero(visit)
    base = pd.Timestamp("2025-01-01", tz="UTC")
    events = pd.DataFrame({
        "customer_id": cid[rows], "journey_id": jid[rows],
        "ts": base + pd.to_timedelta(rows % 100_000 * 60 + cols * 5, unit="s"),
        "touchpoint": np.array(tps, dtype=object)[cols], "rating": val[rows, cols], "rating_scale": "valence",
    })  # fmt: skip
    out = pd.DataFrame(
        {"journey_id": jid, "repurchased": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)}
    )
    store = Store(tmp / "journeys.duckdb", threads=2)
    t0 = time.perf_counter()
    ingest_events_frame(store, events)
    ingest_outcomes_frame(store, out, key="journey_id")
    t_ingest = time.perf_counter() - t0
    t0 = time.perf_counter()
    mot = MomentsOfTruth("repurchased").fit(store)
    t_fit = time.perf_counter() - t0
    top = list(mot.summary.sort_values("impact", ascending=False)["touchpoint"][:3])
    print(f"journeys {n:,} x {k} ({len(events):,} events): ingest {t_ingest:.1f} s, MomentsOfTruth.fit {t_fit:.1f} s "
          f"(goal <= 120 s) | AUC(cv) {mot.model_fit_['auc_cv']:.3f} | top-3 {top} (planted step1, step4, step8)")  # fmt: skip
    store.close()


def bench_recovery(seeds: int, n: int = 2000) -> None:
    from keymoments.examples import generate_airline

    top_i = top_p = covered = total = 0
    null_impacts = []
    for seed in range(seeds):
        demo = generate_airline(n, seed=seed)
        gt = demo.ground_truth["drivers"]
        mot = MomentsOfTruth("retained", journey=demo.journey, n_boot=500).fit(
            demo.events, outcomes=demo.outcomes, attributes=demo.customers
        )
        s = mot.summary.set_index("touchpoint")
        k = len(gt["strong"])
        top_i += set(s["impact"].sort_values(ascending=False).index[:k]) == set(gt["strong"])
        top_p += set(s.index[:k]) == set(gt["strong"])
        for tp in gt["null"]:
            total += 1
            covered += bool(s.at[tp, "ci_low"] <= 0 <= s.at[tp, "ci_high"])
            null_impacts.append(s.at[tp, "impact"])
    print(f"demo recovery over {seeds} seeds x {n:,} customers: strong drivers on top by impact {top_i}/{seeds}, "
          f"by priority {top_p}/{seeds}; null intervals covering 0: {covered}/{total} "
          f"(mean null impact {np.mean(null_impacts):+.3f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--survey-n", type=int, default=100_000)
    ap.add_argument("--journeys", type=int, default=1_000_000)
    ap.add_argument("--skip-journeys", action="store_true")
    ap.add_argument(
        "--recovery-seeds", type=int, default=0, help="Also check the demo's planted drivers over N seeds."
    )
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    print(
        f"cores available: {os.cpu_count()}; bootstrap: 1000 block replicates (see keymoments.analyze.drivers)"
    )
    with tempfile.TemporaryDirectory() as d:
        bench_survey(a.survey_n, 14, Path(d))
        if not a.skip_journeys:
            bench_journeys(a.journeys, 10, Path(d))
    if a.recovery_seeds:
        bench_recovery(a.recovery_seeds)


if __name__ == "__main__":
    main()
