"""Outcome tables (one row per customer or journey, one column per outcome) read into a DataFrame."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from keymoments.exceptions import IngestError, InvalidParameterError
from keymoments.ingest.files import _reader_sql
from keymoments.ingest.source import suffix_kind

__all__ = ["read_outcomes"]


def read_outcomes(path: str | Path, mapping: list[str] | None = None, *, encoding: str | None = None) -> pd.DataFrame:
    """Read an outcome table with DuckDB's readers (CSV cells as text; the store types each column).
    ``encoding``: the CSV's text encoding when it is not UTF-8 or BOM-marked UTF-16 (``latin-1``)."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file.")
    kind = suffix_kind(path)
    if kind not in ("csv", "jsonl", "parquet"):
        raise IngestError(f"{path}: an outcome table must be CSV, JSON Lines or Parquet.")
    con = duckdb.connect()
    try:
        df = con.execute(f"SELECT * FROM {_reader_sql(path, kind, encoding=encoding)}").df()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]}).") from None
    finally:
        con.close()
    renames = {}
    for item in mapping or []:
        if "=" not in item:
            raise InvalidParameterError(f"--map takes source=name; got {item!r}.")
        a, b = (x.strip() for x in item.split("=", 1))
        if a not in df.columns:
            raise IngestError(f"{path}: --map names column {a!r}, which the table does not have.")
        renames[a] = b
    return df.rename(columns=renames)
