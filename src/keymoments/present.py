"""Presentation helpers shared by the CLI, the server and the analyses: plain JSON values out of numpy/pandas,
CSV cells that a spreadsheet will not run as formulas, an analysis's tables as files, and progress bars for the
steps that take a while.

**Tables.** An analysis's tables are the lists of records in its ``to_dict()`` (the JSON of ``--json``), by key,
plus a dict of records keyed by name (e.g. ``weekly``) as a table with a ``name`` column; :func:`tables_of`
finds them, the first one being the analysis's main table. :func:`write_tables` writes them for ``--out FILE``:
the main table to ``FILE`` itself (``.csv`` or ``.parquet``), each other one beside it as
``<FILE stem>-<table>.<suffix>`` (``journey.csv``, ``journey-transitions.csv``…). Cells holding lists or records
are written as text (a list of names joined by ", ", anything nested as JSON), and every CSV goes through
:func:`csv_safe_frame`.

A neutral module: ``cli/``, ``serve/``, ``analyze/`` and ``score/`` import it; it imports nothing of keymoments.

Progress: code that may run for more than a few seconds opens a :func:`progress_task` and advances it; nothing
is shown unless a command wraps its work in :func:`show_progress`, which draws the tasks as rich bars on stderr
when stderr is a terminal (never into a pipe, a file or ``--json`` output). So the library stays silent and
every command shows the same bars::

    with show_progress():                      # the CLI, around a command's work
        ...
    with progress_task("scoring text", total=len(texts)) as task:   # anywhere below it
        for chunk in chunks:
            ...
            task.advance(len(chunk))
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

__all__ = [
    "TABLE_SUFFIXES", "ProgressTask", "correction_message", "csv_safe_frame", "flat_frame", "polled", "progress_task", "show_progress",
    "table_paths", "tables_of", "to_jsonable", "track", "write_tables",
]  # fmt: skip

#: the file types ``--out`` writes
TABLE_SUFFIXES = (".csv", ".parquet")

#: a cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_safe_cell(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(v):
        return "'" + v
    return v


def csv_safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot run as spreadsheet formulas: a cell starting with ``= + - @``, a
    tab or a carriage return gets a leading ``'``, as OWASP advises. Only text cells change: numeric columns, and
    text that is a plain number (``-3``, ``+1.5e3``), stay as they are. Every CSV keymoments writes goes through it.

    >>> csv_safe_frame(pd.DataFrame({"t": ["=1+1", "-2", "ok"], "n": [-1, 2, 3]})).to_dict("list")
    {'t': ["'=1+1", '-2', 'ok'], 'n': [-1, 2, 3]}
    """
    out = df.copy()
    for i in range(out.shape[1]):  # by position: column names may repeat
        col = out.iloc[:, i]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            out.isetitem(i, col.map(_csv_safe_cell, na_action="ignore"))
    out.columns = [_csv_safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas values into plain JSON types; NaN and inf become null."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        if math.isnan(f) or math.isinf(f):
            return None
        # 12 significant digits: drops the last-bit noise of parallel sums, so the same data gives the same JSON
        return float(f"{f:.12g}")
    if isinstance(obj, pd.Timestamp | datetime | date):
        return obj.isoformat()
    if obj is pd.NaT or obj is None:
        return None
    if isinstance(obj, Path):
        return str(obj)
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return obj


# ------------------------------------------------------------------------------------------------- progress

#: the rich Progress that :func:`show_progress` draws, for the tasks opened in its context
_SHOWN: ContextVar[Any] = ContextVar("keymoments_progress", default=None)


@dataclass(slots=True)
class ProgressTask:
    """One step's bar: :meth:`advance` and :meth:`update` may be called from any thread (a no-op when no
    bar is shown)."""

    _progress: Any = None
    _id: Any = None

    @property
    def shown(self) -> bool:
        """A bar is drawn for this task."""
        return self._progress is not None

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, amount)

    def update(self, completed: float | None = None, *, total: float | None = None, description: str | None = None) -> None:
        if self._progress is not None:
            fields: dict[str, Any] = {}
            if completed is not None:
                fields["completed"] = completed
            if total is not None:
                fields["total"] = total
            if description is not None:
                fields["description"] = description
            self._progress.update(self._id, **fields)


@contextmanager
def progress_task(description: str, total: float | None = None) -> Iterator[ProgressTask]:
    """A step that may take a while, shown as a bar (``total`` None: a pulsing one) while it runs, when a
    command shows progress; the bar goes away when the step ends."""
    progress = _SHOWN.get()
    if progress is None:
        yield ProgressTask()
        return
    task_id = progress.add_task(description, total=total)
    progress.refresh()  # drawn at once, however short the step
    try:
        yield ProgressTask(progress, task_id)
    finally:
        progress.remove_task(task_id)


T = TypeVar("T")


def track(items: Sequence[T] | Iterable[T], description: str, total: float | None = None) -> Iterator[T]:
    """Yield ``items``, advancing a :func:`progress_task` bar by one for each (a loop whose steps take a while)."""
    if total is None and isinstance(items, Sequence):
        total = len(items)
    with progress_task(description, total=total) as task:
        for item in items:
            yield item
            task.advance(1)


@contextmanager
def show_progress(enabled: bool | None = None, *, console: Any = None) -> Iterator[None]:
    """Draw the :func:`progress_task` bars opened in this block on stderr (or a rich ``console``), if ``enabled``
    (default: stderr is a terminal). The bars are transient: what stays on the terminal is what the command
    prints."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or _SHOWN.get() is not None:
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
        redirect_stdout=False,  # stdout stays the command's own (a pipe, a file, --json), never the bar's stream
    )
    token = _SHOWN.set(progress)
    try:
        with progress:
            yield
    finally:
        _SHOWN.reset(token)


@contextmanager
def polled(task: ProgressTask, poll: Any, every: float = 0.25) -> Iterator[None]:
    """Update ``task`` from ``poll()`` (a percentage, or a negative number when unknown) on a thread while the
    block runs: for work that reports its progress only when asked (a DuckDB statement)."""
    if not task.shown:
        yield
        return
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            try:
                pct = float(poll())
            except Exception:  # noqa: BLE001 - a progress read must never break the work it watches
                logging.getLogger("keymoments").debug("progress polling stopped", exc_info=True)
                return
            if pct >= 0:
                task.update(pct)

    thread = threading.Thread(target=run, name="km-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
def _is_records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def tables_of(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The tables of an analysis's ``to_dict()``: every list of records, and every dict whose values are records
    (as rows with a ``name`` column), by key, in the dict's order. Empty lists are tables without rows."""
    out: dict[str, pd.DataFrame] = {}
    for k, v in data.items():
        if _is_records(v):
            out[str(k)] = pd.DataFrame.from_records(v)
        elif isinstance(v, list) and not v and k not in ("warnings", "order", "recognised", "outcomes"):
            out[str(k)] = pd.DataFrame()
        elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            out[str(k)] = pd.DataFrame.from_records([{"name": n, **x} for n, x in v.items()])
    return out


def _flat_cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) or x is None for x in v):
        return ", ".join("" if x is None else str(x) for x in v)
    if isinstance(v, list | tuple | dict):
        return json.dumps(to_jsonable(v), ensure_ascii=False)
    return v


def flat_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose cells are scalars: a list of names becomes "a, b", anything nested JSON text."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(_flat_cell)
    return out


def table_paths(out: str | Path, names: list[str]) -> dict[str, Path]:
    """Where :func:`write_tables` puts each table: the first at ``out``, the others at ``<stem>-<name><suffix>``."""
    out = Path(out)
    return {n: out if i == 0 else out.with_name(f"{out.stem}-{n}{out.suffix}") for i, n in enumerate(names)}


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path) -> dict[str, Path]:
    """Write an analysis's tables for ``--out``: CSV (formula-safe) or Parquet by ``out``'s suffix; see the
    module docstring for the file names. Returns {table: path}."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"--out must end in {' or '.join(TABLE_SUFFIXES)} (the file type); got {str(out)!r}.")
    if not tables:
        raise ValueError("This analysis has no table to write.")
    paths = table_paths(out, list(tables))
    for name, df in tables.items():
        flat = flat_frame(df)
        path = paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            csv_safe_frame(flat).to_csv(path, index=False)
        else:
            flat.to_parquet(path, index=False)
    return paths


def correction_message(touchpoint: str, refit: dict[str, Any]) -> str:
    """What a correction did, in a sentence: "Tagged billing: 3 other texts now billing (5 changed tag in all;
    the tagger learnt from 4 corrections)."."""
    others = int(refit.get("others_now_this_tag", 0))
    moved = f"{others} other text{'' if others == 1 else 's'} now {touchpoint}" if others else f"no other text became {touchpoint}"
    return (f"Tagged {touchpoint}: {moved} ({refit['changed']} changed tag in all; the tagger learnt from "
            f"{refit['corrections']} correction{'' if refit['corrections'] == 1 else 's'}).")
