"""Options and output helpers shared by every command."""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    "OutOption",
    "OutcomeOption",
    "analysis_engine",
    "echo_json",
    "emit",
    "engine_options",
    "filter_options",
    "fit_and_emit",
    "open_analysis_store",
    "open_store",
    "print_table",
    "to_jsonable",
    "writing_store",
]

DbOption = Annotated[
    Path,
    typer.Option("--db", help="Path of the DuckDB store.", envvar="KM_DB", show_default=True),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Also save the tables of --json as FILE.csv or FILE.parquet: the main table in FILE, each other one "
        "beside it as FILE-<table> (e.g. journey.csv, journey-transitions.csv).",
    ),
]
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


#: the engine an analysis command runs on (see keymoments.store.spark), declared once here; every command with
#: the event filters takes them
ENGINE_OPTIONS: dict[str, Any] = {
    "engine": Annotated[str | None, typer.Option(
        "--engine", envvar="KM_ENGINE", help="duckdb (the embedded store, default) or spark (events on Apache "
        "Spark; session settings from the Spark configuration, e.g. spark-defaults.conf).")],
    "events_path": Annotated[str | None, typer.Option(
        "--events", envvar="KM_EVENTS_PATH", help="With --engine spark: the Parquet events dataset "
        "(default: the store's path with .events, as `ingest --engine spark` writes it).")],
    "events_table": Annotated[str | None, typer.Option(
        "--events-table", envvar="KM_EVENTS_TABLE", help="With --engine spark: an existing Spark/Hive table of "
        "events to analyse instead (rename its columns with --map).")],
    "spark_map": Annotated[list[str] | None, typer.Option(
        "--map", help="With --engine spark: source=field renames a column of the events onto the contract, "
        "e.g. --map event_time=ts (repeatable).")],
    "spark_conf": Annotated[list[str] | None, typer.Option(
        "--conf", help="With --engine spark: a Spark setting key=value on top of the Spark configuration, e.g. "
        "--conf spark.master=spark://host:7077 (repeatable).")],
}  # fmt: skip

#: the engine options of the command being run (set by filter_options, read by open_analysis_store)
_ENGINE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("keymoments_engine", default=None)


def _pairs(values: list[str] | None, option: str, example: str) -> dict[str, str]:
    from keymoments.exceptions import InvalidParameterError

    out: dict[str, str] = {}
    for v in values or []:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"{option} takes key=value, e.g. {option} {example}. Got {v!r} instead.")
        out[key.strip()] = value.strip()
    return out


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--segment``, ``--channel``, ``--since`` and ``--until``. The command declares a
    ``filters`` parameter and receives them there as one dict, to pass on: ``Analysis(..., **filters)``.
    It also gets the engine options (``--engine``, ``--events``, ``--events-table``, ``--map``, ``--conf``),
    which :func:`fit_and_emit` and :func:`open_analysis_store` apply."""
    return _with_options(command, FILTER_OPTIONS)


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command that reads the events but takes no event filters (``serve``) the engine options alone
    (``--engine``, ``--events``, ``--events-table``, ``--map``, ``--conf``), which :func:`open_analysis_store`
    applies: the same definition as the analysis commands'."""
    return _with_options(command, {})


def _with_options(command: Callable[..., Any], filter_opts: dict[str, Any]) -> Callable[..., Any]:
    """``command`` with ``filter_opts`` (handed over as ``filters``, when any) and the engine options (held for
    :func:`open_analysis_store` while the command runs) added to its parameters."""
    sig = inspect.signature(command, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "filters"]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
               for n, a in {**filter_opts, **ENGINE_OPTIONS}.items()]  # fmt: skip

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _ENGINE.set({n: kwargs.pop(n, None) for n in ENGINE_OPTIONS})
        if filter_opts:
            kwargs["filters"] = {n: kwargs.pop(n, None) for n in filter_opts}
        try:
            return command(*args, **kwargs)
        finally:
            _ENGINE.reset(token)

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
    from keymoments.config import Settings

    settings = Settings()
    return Store(db, read_only=read_only, external_access=external_access, database_url=settings.database_url, database_schema=settings.database_schema)


@contextmanager
def writing_store(db: Path) -> Iterator[Store]:
    """The store for a command that writes (created if needed). If the command fails and the store file is one
    it created, with nothing committed to it, the file is removed: a failed first ingest leaves no store behind."""
    path = Path(db)
    new = str(db) != ":memory:" and not path.exists()
    store = open_store(db, must_exist=False)
    try:
        yield store
    except BaseException:
        empty = new and store.count("batches") == 0
        store.close()
        if empty:
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    store.close()


def echo_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    typer.echo(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False))


def check_out(out: Path | None) -> None:
    """Refuse an --out of a file type we do not write, before any work is done."""
    from keymoments.exceptions import InvalidParameterError
    from keymoments.present import TABLE_SUFFIXES

    if out is not None and out.suffix.lower() not in TABLE_SUFFIXES:
        raise InvalidParameterError(
            f"--out must end in {' or '.join(TABLE_SUFFIXES)} (the file type); got {str(out)!r}."
        )


def save_tables(analysis: Any, out: Path) -> None:
    """Write a fitted analysis's tables for --out, and say where each went (on stderr)."""
    from keymoments.present import write_tables

    tables = analysis.tables()
    paths = write_tables(tables, out)
    err_console.print("wrote " + ", ".join(f"{p} ({n}, {len(tables[n]):,} rows)" for n, p in paths.items()),
                      soft_wrap=True)  # fmt: skip


def emit(analysis: Any, as_json: bool, out: Path | None = None) -> None:
    """Print a fitted analysis: its to_dict() as JSON, or its summary table (after the filters applied); with
    ``out``, also save its tables there."""
    from keymoments.analyze.filters import describe_filters, filters_of

    if out is not None:
        save_tables(analysis, out)
    if as_json:
        echo_json(analysis.to_dict())
        return
    note = describe_filters(filters_of(analysis))
    if note:
        console.print(f"Filtered: {note}")
    analysis.print_summary()


def analysis_engine() -> str:
    """The engine the running command's analyses use: ``--engine``, else ``KM_ENGINE``, else duckdb."""
    from keymoments.config import Settings
    from keymoments.exceptions import InvalidParameterError

    engine = (_ENGINE.get() or {}).get("engine") or Settings().engine
    if engine not in ("duckdb", "spark"):
        from keymoments.events import did_you_mean

        raise InvalidParameterError(
            f"--engine must be duckdb or spark. Got {engine!r} instead.{did_you_mean(str(engine), ['duckdb', 'spark'])}"
        )
    return str(engine)


def open_analysis_store(db: Path, *, serving: bool = False, read_only: bool = True) -> Store:
    """The store an analysis command reads: the DuckDB store at ``db`` (read-only unless ``read_only=False``:
    a command that records something, such as ``playbooks backtest --record``), or, with ``--engine spark``
    (or ``KM_ENGINE=spark``), a :class:`~keymoments.store.spark.SparkStore` whose events are on Spark.

    ``serving``: the store ``serve`` owns: created when missing, writable (keys, cases, posted batches), SQL on
    it unable to touch files, and its operational state on PostgreSQL when ``KM_DATABASE_URL`` is set; on
    Spark, only the events are read from (and posted batches appended to) the Spark dataset."""
    engine = analysis_engine()
    if engine == "duckdb":
        return (open_store(db, must_exist=False, external_access=False) if serving
                else open_store(db, read_only=read_only))
    from keymoments.config import Settings
    from keymoments.store.spark import SparkStore

    opts = _ENGINE.get() or {}
    settings = Settings()
    return SparkStore(
        db,
        events=opts.get("events_path"),
        table=opts.get("events_table"),
        mapping=_pairs(opts.get("spark_map"), "--map", "event_time=ts"),
        conf=_pairs(opts.get("spark_conf"), "--conf", "spark.master=local[4]"),
        read_only=read_only and not serving,
        **({"external_access": False, "database_url": settings.database_url,
            "database_schema": settings.database_schema} if serving else {}),
    )  # fmt: skip


def fit_and_emit(analysis: Any, db: Path, as_json: bool, out: Path | None = None) -> None:
    """Fit an analysis on the store at ``db`` (read-only; its events on the engine the command names) and print
    it; caveats go to stderr and the JSON; with ``out``, its tables are saved there too (see :data:`OutOption`)."""
    check_out(out)
    with open_analysis_store(db) as store:
        analysis.fit(store)
    emit(analysis, as_json, out)


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
