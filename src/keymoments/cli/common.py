"""Options and output helpers shared by every command."""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from keymoments.present import to_jsonable
from keymoments.store.store import Store

__all__ = [
    "FILTER_OPTIONS",
    "DbOption",
    "JourneyOption",
    "JsonOption",
    "OutcomeOption",
    "echo_json",
    "emit",
    "filter_options",
    "fit_and_emit",
    "open_store",
    "print_table",
    "to_jsonable",
]

DbOption = Annotated[
    Path,
    typer.Option("--db", help="Path of the DuckDB store.", envvar="KM_DB", show_default=True),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
JourneyOption = Annotated[
    Path | None,
    typer.Option("--journey", help="journey.yaml: touchpoint order, flags (first impression, ending…), crises, targets."),
]
#: the --journey of ingest and score: the touchpoints that events without one are tagged with, from their text
TagJourneyOption = Annotated[
    Path | None,
    typer.Option("--journey", help="journey.yaml: tag events without a touchpoint from their text (default: the store's touchpoints)."),
]
OutcomeOption = Annotated[str, typer.Option("--outcome", help="The outcome to explain, e.g. retained or spend_next_12m.")]

#: the event filters every analysis command takes (see keymoments.analyze.filters), declared once here
FILTER_OPTIONS: dict[str, Any] = {
    "segment": Annotated[str | None, typer.Option(
        "--segment", help="Only these customers' events: name=value of a customer attribute or an events column, "
        "e.g. segment=business or tier=gold.")],
    "channel": Annotated[str | None, typer.Option("--channel", help="Only events on this channel, e.g. web.")],
    "since": Annotated[str | None, typer.Option(
        "--since", help="Only events at or after this date or time (ISO-8601; UTC when no zone is given).")],
    "until": Annotated[str | None, typer.Option(
        "--until", help="Only events before this date or time (exclusive; ISO-8601).")],
}  # fmt: skip


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--segment``, ``--channel``, ``--since`` and ``--until``. The command declares a
    ``filters`` parameter and receives them there as one dict, to pass on: ``Analysis(..., **filters)``."""
    sig = inspect.signature(command, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "filters"]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
               for n, a in FILTER_OPTIONS.items()]  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        filters = {n: kwargs.pop(n, None) for n in FILTER_OPTIONS}
        return command(*args, filters=filters, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


console = Console(stderr=False, highlight=False)
if not console.is_terminal:  # piped or captured: don't squeeze tables into 80 columns
    console = Console(stderr=False, highlight=False, width=160)
err_console = Console(stderr=True, highlight=False)


def open_store(
    db: Path, *, must_exist: bool = True, read_only: bool = False, external_access: bool | None = None
) -> Store:
    """Open the store for a command; analysis commands refuse a store that does not exist yet.

    Read-only opens (the analyses, the report) cannot touch files from SQL (see :class:`Store`)."""
    from keymoments.exceptions import StoreError

    if must_exist and str(db) != ":memory:" and not Path(db).exists():
        raise StoreError(
            f"No store at {str(db)!r}. Ingest data first (`keymoments ingest FILE`), run `keymoments demo`, "
            "or point --db at an existing store."
        )
    return Store(db, read_only=read_only, external_access=external_access)


def echo_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    typer.echo(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False))


def emit(analysis: Any, as_json: bool) -> None:
    """Print a fitted analysis: its to_dict() as JSON, or its summary table (after the filters applied)."""
    from keymoments.analyze.filters import describe_filters, filters_of

    if as_json:
        echo_json(analysis.to_dict())
        return
    note = describe_filters(filters_of(analysis))
    if note:
        console.print(f"Filtered: {note}")
    analysis.print_summary()


def fit_and_emit(analysis: Any, db: Path, as_json: bool) -> None:
    """Fit an analysis on the store at ``db`` (read-only) and print it; caveats go to stderr and the JSON."""
    with open_store(db, read_only=True) as store:
        analysis.fit(store)
    emit(analysis, as_json)


def print_table(df: pd.DataFrame, title: str | None = None, floatfmt: str = "{:.3f}") -> None:
    """Print a DataFrame as a human table."""
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else floatfmt.format(v))
            else:
                cells.append("" if v is None else str(v))
        table.add_row(*cells)
    console.print(table)
