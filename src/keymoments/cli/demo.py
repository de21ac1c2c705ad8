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
    echo=typer.echo,  # noqa: ANN001
) -> dict:
    """Generate, write, ingest, score and summarise the demo; return a summary dict."""
    from keymoments.examples import generate_airline
    from keymoments.ingest.files import read_source
    from keymoments.score.store import score_store
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame, ingest_source

    t0 = time.perf_counter()
    data_dir = data_dir or Path(db).resolve().parent / "keymoments-demo"
    demo = generate_airline(customers, seed=seed)
    paths = demo.write(data_dir)
    echo(f"generated {len(demo.events):,} events for {customers:,} customers → {data_dir}/")
    with Store(db) as store:
        r = ingest_source(store, read_source(paths["events.parquet"]))
        echo(f"ingested {r.accepted:,} events ({r.duplicates:,} already there, {r.rejected:,} rejected) into {db}")
        ingest_outcomes_frame(store, demo.outcomes, key="customer_id", source=str(paths["outcomes.csv"]))
        ingest_outcomes_frame(store, demo.customers, key="customer_id", source=str(paths["customers.csv"]), attributes_only=True)
        scored = score_store(store)
        echo(f"scored the text of {scored:,} events")
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
        }
        summary.update(_analyses(store, demo.journey, report, echo))
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _analyses(store, journey, report: Path | None, echo) -> dict:  # noqa: ANN001
    """The headline findings; filled in as the analyses land."""
    return {}


def demo(
    db: DbOption = Path("keymoments.duckdb"),
    customers: Annotated[int, typer.Option("--customers", help="How many customers to simulate.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the generated files go (default ./keymoments-demo).")
    ] = None,
    report: Annotated[Path, typer.Option("--report", help="Where the HTML report goes.")] = Path("report.html"),
    as_json: JsonOption = False,
) -> None:
    """Build a realistic sample airline dataset, ingest, score and analyse it, and write report.html."""
    summary = run_demo(db, customers=customers, seed=seed, data_dir=data_dir, report=report,
                       echo=(lambda *_: None) if as_json else typer.echo)
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
        f"  keymoments serve --db {db}                        # the dashboard and the REST API"
    )
