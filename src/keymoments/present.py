"""Presentation helpers shared by the CLI, the server and the analyses: plain JSON values out of numpy/pandas,
and CSV cells that a spreadsheet will not run as formulas, and progress bars for the steps that take a while.

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

__all__ = ["ProgressTask", "csv_safe_frame", "polled", "progress_task", "show_progress", "to_jsonable", "track"]

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
