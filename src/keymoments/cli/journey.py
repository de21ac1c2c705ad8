"""CLI commands of the journey analytics: journey, peak-end, segments, recovery, milestones, recognition."""

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

OptionalOutcome = Annotated[
    str | None, typer.Option("--outcome", help="An outcome to relate to, e.g. retained (default: the first bool).")
]


def _journey(path: Path | None) -> Any:
    if path is None:
        return None
    from keymoments.events import JourneyModel

    return JourneyModel.from_yaml(path)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("journey")
    @filter_options
    def journey_cmd(
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        journey: JourneyOption = None,
    ) -> None:
        """The journey map: per touchpoint volume, reach, mean valence with CI, failure rate, pit/peak;
        transitions, common paths and drop-offs."""
        from keymoments.analyze.journey import JourneyMap

        fit_and_emit(JourneyMap(_journey(journey), **filters), db, as_json, out)

    @app.command("peak-end")
    @filter_options
    def peak_end_cmd(
        outcome: OutcomeOption,
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        journey: JourneyOption = None,
    ) -> None:
        """Which memory model (mean, peak, end, peak-end, fitted) predicts the outcome best (with --channel: the
        memory of that channel's moments)."""
        from keymoments.analyze.peak_end import PeakEnd

        fit_and_emit(PeakEnd(outcome=outcome, **filters), db, as_json, out)

    @app.command("segments")
    @filter_options
    def segments_cmd(
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        spend: Annotated[str | None, typer.Option(
            "--spend", help="The outcome the what-if values: money (e.g. spend_next_12m) or yes/no (then it counts "
            "customers). Default: a numeric outcome named like spend/revenue/value, else the money paid in events; "
            "never made up.")] = None,
        outcome: Annotated[str | None, typer.Option(
            "--outcome", help="The outcome whose rate (or mean) per tier is shown, and the what-if's when there is "
            "no spend (default: every yes/no outcome).")] = None,
        share: Annotated[float, typer.Option("--share", help="Share of a tier moved up one tier in the what-if.")] = 0.1,
    ) -> None:
        """Customers in valence tiers (unhappy, middling, happy) and the value of elevating the middle."""
        from keymoments.analyze.segments import Segments

        fit_and_emit(Segments(spend=spend, outcome=outcome, share=share, **filters), db, as_json, out)

    @app.command("recovery")
    @filter_options
    def recovery_cmd(
        outcome: OutcomeOption,
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        journey: JourneyOption = None,
    ) -> None:
        """The service recovery paradox: outcome rate after a recovered crisis, an unrecovered one, and none
        (--channel is refused: a crisis and its resolution usually happen on different channels)."""
        from keymoments.analyze.recovery import Recovery

        fit_and_emit(Recovery(outcome=outcome, journey=_journey(journey), **filters), db, as_json, out)

    @app.command("milestones")
    @filter_options
    def milestones_cmd(
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        outcome: OptionalOutcome = None,
    ) -> None:
        """Invisible milestones customers cross (nth journey, anniversaries, spend, firsts), weekly, with outcomes
        (--since/--until: the milestones crossed then, counted over the whole history)."""
        from keymoments.analyze.milestones import Milestones

        fit_and_emit(Milestones(outcome=outcome, **filters), db, as_json, out)

    @app.command("recognition")
    @filter_options
    def recognition_cmd(
        filters: dict[str, Any],
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        out: OutOption = None,
        top: Annotated[int, typer.Option("--top", help="How many employees to show.")] = 10,
    ) -> None:
        """Employees whose customers have peaks, with the moments and quotes, adjusted for volume."""
        from keymoments.analyze.recognition import Recognition

        fit_and_emit(Recognition(top=top, **filters), db, as_json, out)
