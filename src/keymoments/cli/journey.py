"""CLI commands of the journey analytics: journey, peak-end, segments, recovery, milestones, recognition."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keymoments.cli.common import DbOption, JourneyOption, JsonOption, OutcomeOption, emit, open_store

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
    def journey_cmd(
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        journey: JourneyOption = None,
        segment: Annotated[
            str | None, typer.Option("--segment", help="Only customers with this attribute, e.g. segment=business.")
        ] = None,
        channel: Annotated[str | None, typer.Option("--channel", help="Only events on this channel.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="Only events at or after this date.")] = None,
        until: Annotated[str | None, typer.Option("--until", help="Only events before this date.")] = None,
    ) -> None:
        """The journey map: per touchpoint volume, reach, mean valence with CI, failure rate, pit/peak;
        transitions, common paths and drop-offs."""
        from keymoments.analyze.journey import JourneyMap

        with open_store(db, read_only=True) as store:
            jm = JourneyMap(_journey(journey), segment=segment, channel=channel, since=since, until=until).fit(store)
        emit(jm, as_json)

    @app.command("peak-end")
    def peak_end_cmd(
        outcome: OutcomeOption,
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        journey: JourneyOption = None,
    ) -> None:
        """Which memory model (mean, peak, end, peak-end, fitted) predicts the outcome best."""
        from keymoments.analyze.peak_end import PeakEnd

        with open_store(db, read_only=True) as store:
            pe = PeakEnd(outcome=outcome).fit(store)
        emit(pe, as_json)

    @app.command("segments")
    def segments_cmd(
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        spend: Annotated[str | None, typer.Option("--spend", help="Outcome holding spend (default: detected).")] = None,
        share: Annotated[float, typer.Option("--share", help="Share of a tier moved up one tier in the what-if.")] = 0.1,
    ) -> None:
        """Customers in valence tiers (unhappy, middling, happy) and the value of elevating the middle."""
        from keymoments.analyze.segments import Segments

        with open_store(db, read_only=True) as store:
            sg = Segments(spend=spend, share=share).fit(store)
        emit(sg, as_json)

    @app.command("recovery")
    def recovery_cmd(
        outcome: OutcomeOption,
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        journey: JourneyOption = None,
    ) -> None:
        """The service recovery paradox: outcome rate after a recovered crisis, an unrecovered one, and none."""
        from keymoments.analyze.recovery import Recovery

        with open_store(db, read_only=True) as store:
            rc = Recovery(outcome=outcome, journey=_journey(journey)).fit(store)
        emit(rc, as_json)

    @app.command("milestones")
    def milestones_cmd(
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        outcome: OptionalOutcome = None,
    ) -> None:
        """Invisible milestones customers cross (nth journey, anniversaries, spend, firsts), weekly, with outcomes."""
        from keymoments.analyze.milestones import Milestones

        with open_store(db, read_only=True) as store:
            ms = Milestones(outcome=outcome).fit(store)
        emit(ms, as_json)

    @app.command("recognition")
    def recognition_cmd(
        db: DbOption = Path("keymoments.duckdb"),
        as_json: JsonOption = False,
        top: Annotated[int, typer.Option("--top", help="How many employees to show.")] = 10,
    ) -> None:
        """Employees whose customers have peaks, with the moments and quotes, adjusted for volume."""
        from keymoments.analyze.recognition import Recognition

        with open_store(db, read_only=True) as store:
            rg = Recognition(top=top).fit(store)
        emit(rg, as_json)
