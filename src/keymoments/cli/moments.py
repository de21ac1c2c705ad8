"""CLI commands: moments (touchpoints ranked by priority) and roadmap (fill pits, then build peaks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keymoments.cli.common import (
    DbOption,
    JourneyOption,
    JsonOption,
    OutcomeOption,
    OutOption,
    filter_options,
    fit_and_emit,
)

BootOption = Annotated[int, typer.Option("--n-boot", help="Bootstrap replicates for the 95% intervals.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap (results are reproducible).")]
ValueOption = Annotated[
    float | None,
    typer.Option(
        "--value-per-customer", help="Money per retained customer (default: mean spend of retained ones)."
    ),
]


def _kwargs(journey: Path | None, n_boot: int, seed: int, value: float | None) -> dict[str, Any]:
    return {"journey": journey, "n_boot": n_boot, "seed": seed, "value_per_customer": value}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("moments")
    @filter_options
    def moments_cmd(
        outcome: OutcomeOption,
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        journey: JourneyOption = None,
        n_boot: BootOption = 1000,
        seed: SeedOption = 0,
        value_per_customer: ValueOption = None,
    ) -> None:
        """Moments of truth ranked by priority (impact x reach x gap to target), each with impact, 95% CI and n."""
        from keymoments.analyze.moments import MomentsOfTruth

        fit_and_emit(MomentsOfTruth(outcome, **_kwargs(journey, n_boot, seed, value_per_customer), **filters), db, as_json, out)

    @app.command("roadmap")
    @filter_options
    def roadmap_cmd(
        outcome: OutcomeOption,
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        journey: JourneyOption = None,
        n_boot: BootOption = 1000,
        seed: SeedOption = 0,
        value_per_customer: ValueOption = None,
        peak_target: Annotated[
            float, typer.Option("--peak-target", help="Valence a built peak should reach.")
        ] = 0.8,
        figure: Annotated[
            Path | None,
            typer.Option("--figure", help="Also write the current vs future-state curve as HTML."),
        ] = None,
    ) -> None:
        """Fill pits, then the ending and first impressions, then build peaks: phases with expected value."""
        from keymoments.analyze.roadmap import Roadmap

        rm = Roadmap(outcome, peak_target=peak_target, **_kwargs(journey, n_boot, seed, value_per_customer), **filters)
        fit_and_emit(rm, db, as_json, out)
        if figure is not None:
            rm.figure().write_html(str(figure), include_plotlyjs=True, full_html=True)
