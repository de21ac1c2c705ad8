"""Presentation helpers shared by the CLI, the server and the analyses: plain JSON values out of numpy/pandas,
and CSV cells that a spreadsheet will not run as formulas.

A neutral module: ``cli/``, ``serve/`` and ``analyze/`` import it; it imports nothing of keymoments.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["csv_safe_frame", "to_jsonable"]

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
