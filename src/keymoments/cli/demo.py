"""`keymoments demo`: build the sample airline, ingest it, score it, analyse it and write a report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from keymoments.cli.common import DbOption, JsonOption, echo_json

__all__ = ["register", "run_demo"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def run_demo(
    db: Path,
    *,
    customers: int = 5000,
    seed: int = 0,
    data_dir: Path | None = None,
    report: Path | None = Path("report.html"),
    fresh: bool = False,
    echo=typer.echo,  # noqa: ANN001
) -> dict:
    """Generate, write, ingest, score, act and summarise the demo; return a summary dict.

    The first half of the history is ingested as the airline's past; the playbook library then goes live and
    acts on the second half as it is ingested (cases, budgets, holdouts drawn at decision time); the outcomes,
    with the playbooks' planted effect, are observed at the end (see ``keymoments.examples.airline_playbooks``).
    """
    from keymoments.examples import generate_airline
    from keymoments.examples.airline_playbooks import live_from
    from keymoments.score.store import score_store
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame

    t0 = time.perf_counter()
    data_dir = data_dir or Path(db).resolve().parent / "keymoments-demo"
    _check_store(db, customers, seed, fresh)
    demo = generate_airline(customers, seed=seed)
    paths = demo.write(data_dir)
    echo(f"generated {len(demo.events):,} events for {customers:,} customers → {data_dir}/")
    cut = live_from(demo)
    with Store(db) as store:
        with store.write() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('demo', ?)", [_demo_key(customers, seed)])
        past = demo.events["ts"] < cut
        r = ingest_events_frame(store, demo.events[past], source=f"{paths['events.parquet']} (before {cut:%Y-%m-%d})")
        echo(f"ingested the {r.accepted:,} events before {cut:%Y-%m-%d} ({r.duplicates:,} already there) into {db}")
        echo(f"scored the text of {score_store(store):,} events")
        summary_act = _act(store, demo, paths, echo)
        stats = store.query("""
            SELECT count(*) AS events, count(DISTINCT customer_id) AS customers, count(DISTINCT journey_id) AS journeys,
                   avg(valence) AS mean_valence, count(valence) AS with_valence
            FROM events
        """).iloc[0]
        summary = {
            "db": str(db),
            "data_dir": str(data_dir),
            "events": int(stats.events),
            "customers": int(stats.customers),
            "journeys": int(stats.journeys),
            "with_valence": int(stats.with_valence),
            "mean_valence": float(stats.mean_valence),
            "outcomes": sorted(store.outcome_names()),
            "playbooks": summary_act,
        }
        summary.update(_analyses(store, demo.journey, report, echo))
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _act(store, demo, paths: dict, echo) -> dict:  # noqa: ANN001
    """Run the playbook library live over the second half, then observe the outcomes with its planted effect."""
    import json

    from keymoments.act.library import load_library
    from keymoments.act.report import playbook_report
    from keymoments.act.runner import PlaybookRunner
    from keymoments.examples.airline_playbooks import live_from, outcomes_after
    from keymoments.score.store import score_store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    cut = live_from(demo)
    library = load_library(seed=0)  # the file `keymoments serve` acts with by default
    runner = PlaybookRunner(store, library, source="library")
    runner.go_live()
    now = demo.events[demo.events["ts"] >= cut]
    r = ingest_events_frame(store, now, source=f"{paths['events.parquet']} (from {cut:%Y-%m-%d})")
    scored = score_store(store)  # the server scores text as it arrives: the playbooks see its emotion
    live = runner.run_live(batch=50_000)
    with store.ops.read() as con:
        acted = store.ops.sql.acted_on(con, runner.live_run_id)
    outcomes, truth = outcomes_after(demo, acted)
    outcomes.to_csv(paths["outcomes.csv"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    gt = {**demo.ground_truth, "playbooks": truth}
    paths["ground_truth.json"].write_text(json.dumps(gt, indent=2), encoding="utf-8")
    ingest_outcomes_frame(store, outcomes, key="customer_id", source=str(paths["outcomes.csv"]), observed_at_col="observed_at")
    ingest_outcomes_frame(store, demo.customers, key="customer_id", source=str(paths["customers.csv"]), attributes_only=True)
    rep = playbook_report(store, library, run_id=runner.live_run_id)
    fired = sum(p["fired"] for p in rep["playbooks"])
    spent = sum(b["spent"] for b in rep["budgets"])
    echo(f"ingested the {r.accepted:,} events from {cut:%Y-%m-%d} as they arrived (text scored: {scored:,}) and ran the "
         f"playbook library live on them: {fired:,} actions, {sum(c['cases'] for c in rep['cases']):,} cases, "
         f"{spent:,.2f} spent; outcomes observed at the end")  # fmt: skip
    uplifts = {}
    for p in rep["playbooks"]:
        up = p["uplift"]
        if up and up["ci_low"] == up["ci_low"]:
            uplifts[p["playbook"]] = {k: up[k] for k in ("uplift", "ci_low", "ci_high", "n_treatment", "n_control", "window")}
    for name, u in [(n, uplifts[n]) for n in ("service-recovery",) if n in uplifts]:
        planted = truth["effects"][name]["expected_uplift_reached"]
        echo(f"uplift of {name} on retained within {u['window']}: {u['uplift'] * 100:+.1f} points "
             f"[{u['ci_low'] * 100:+.1f}, {u['ci_high'] * 100:+.1f}] (n={u['n_treatment']:,} treated, "
             f"{u['n_control']:,} held out; planted: {(planted or 0) * 100:+.1f} for the customers it reached); "
             f"{len(uplifts)} playbooks measured")  # fmt: skip
    return {"live_from": cut.isoformat(), "run_id": runner.live_run_id, "actions": fired, "decisions": len(live.decisions),
            "spent": spent, "uplift": uplifts}  # fmt: skip


def _demo_key(customers: int, seed: int) -> str:
    return f"airline customers={customers} seed={seed}"


def _check_store(db: Path, customers: int, seed: int, fresh: bool) -> None:
    """Refuse to mix the demo into a store that holds other data; --fresh replaces the store."""
    from keymoments.exceptions import StoreError
    from keymoments.store.store import Store

    path = Path(db)
    if not path.exists():
        return
    if fresh:
        for p in (path, Path(f"{path}.wal")):
            p.unlink(missing_ok=True)
        return
    with Store(path) as store:
        events = store.count("events")
        row = store.query("SELECT value FROM meta WHERE key = 'demo'")
    if events and (row.empty or row["value"].iloc[0] != _demo_key(customers, seed)):
        what = "other data" if row.empty else f"another demo ({row['value'].iloc[0]})"
        raise StoreError(
            f"{db} already holds {what} ({events:,} events). Use --fresh to replace it, or --db to pick another file."
        )


def _analyses(store, journey, report: Path | None, echo) -> dict:  # noqa: ANN001
    """The headline findings: pits and peaks, and the moments that decide retention."""
    from keymoments.analyze.journey import JourneyMap
    from keymoments.analyze.moments import MomentsOfTruth

    jm_model = JourneyMap(journey).fit(store)
    jm = jm_model.to_dict()
    pits = [t["touchpoint"] for t in jm["touchpoints"] if t["kind"] == "pit"]
    peaks = [t["touchpoint"] for t in jm["touchpoints"] if t["kind"] == "peak"]
    echo(f"pits: {', '.join(pits) or 'none'}; peaks: {', '.join(peaks) or 'none'}")
    mot_model = MomentsOfTruth(outcome="retained", journey=journey).fit(store)
    mot = mot_model.to_dict()
    top = [t for t in mot["touchpoints"] if t.get("moment_of_truth")][:3]
    for t in top:
        echo(
            f"moment of truth: {t['touchpoint']:<12} a bad vs good experience moves retention by "
            f"{t['impact'] * 100:+.1f} points [{t['ci_low'] * 100:+.1f}, {t['ci_high'] * 100:+.1f}] (n={t['n']:,})"
        )
    out: dict = {"pits": pits, "peaks": peaks, "moments_of_truth": [t["touchpoint"] for t in top]}
    if report is not None:
        from keymoments.serve.report import write_report

        path = write_report(store, report, outcome="retained", journey=journey, title="Demo airline: customer journey report",
                            models={"journey": jm_model, "moments": mot_model})  # fmt: skip
        echo(f"wrote {path} (self-contained: open it in any browser, offline)")
        out["report"] = str(path)
    return out


def demo(
    db: DbOption = Path("keymoments.duckdb"),
    customers: Annotated[int, typer.Option("--customers", help="How many customers to simulate.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the generated files go (default ./keymoments-demo).")
    ] = None,
    report: Annotated[Path, typer.Option("--report", help="Where the HTML report goes.")] = Path("report.html"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the store first if it holds other data.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a realistic sample airline dataset, ingest, score and analyse it, run the playbook library live over
    the second half of its history, and write report.html."""
    from keymoments.present import show_progress

    with show_progress():
        summary = run_demo(db, customers=customers, seed=seed, data_dir=data_dir, report=report,
                           fresh=fresh, echo=(lambda *_: None) if as_json else typer.echo)
    if as_json:
        echo_json(summary)
        return
    typer.echo(
        f"\n{summary['events']:,} events, {summary['journeys']:,} journeys, {summary['customers']:,} customers; "
        f"mean valence {summary['mean_valence']:+.2f}; outcomes {', '.join(summary['outcomes'])} "
        f"({summary['seconds']:.1f} s)"
    )
    typer.echo(
        "\nNext:\n"
        f"  keymoments journey --db {db}                      # the journey map: pits and peaks\n"
        f"  keymoments moments --outcome retained --db {db}   # which moments decide loyalty\n"
        f"  keymoments playbooks report --db {db}            # what the playbooks did, and their uplift\n"
        f"  keymoments serve --db {db}                        # the dashboard and the REST API"
    )
