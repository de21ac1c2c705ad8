"""Turn event files (CSV, JSON Lines, Parquet, XES) and record batches into :class:`Source` objects.

CSV, JSON Lines and Parquet are read by DuckDB's own readers (no Python row loops); XES is streamed with
lxml; record batches (the REST API, the Python API) become Arrow tables. Files are checked here, before
anything is written: an unreadable file or a missing required column refuses the whole file with a hint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from keymoments.exceptions import IngestError, UnsupportedFormatError
from keymoments.ingest.source import Mapping as ColumnMapping
from keymoments.ingest.source import Source, resolve_columns, suffix_kind
from keymoments.ingest.xes import read_xes
from keymoments.quoting import quote_literal

__all__ = ["frame_source", "read_source", "records_source", "sql_literal"]


def sql_literal(text: str) -> str:
    """Quote a string as a SQL literal (:func:`keymoments.quoting.quote_literal`)."""
    return quote_literal(str(text))


#: bytes DuckDB's CSV reader reads at a time
_CSV_BUFFER = 32 << 20


def _reader_sql(path: Path, kind: str, delimiter: str | None = None, *, strict: bool = True) -> str:
    p = sql_literal(str(path))
    if kind == "csv":
        delim = f", delim={sql_literal(delimiter)}" if delimiter else ""
        lenient = "" if strict else ", strict_mode=false"
        # 32 MiB buffers: a quarter less CPU than DuckDB's default on a 1 GB file (measured), and no more memory
        # than a batch's other buffers
        return (
            f"read_csv({p}, all_varchar=true, header=true, ignore_errors=true, store_rejects=true, "
            f"buffer_size={_CSV_BUFFER}{delim}{lenient})"
        )
    if kind == "jsonl":
        return f"read_json({p}, format='newline_delimited', union_by_name=true)"
    if kind == "parquet":
        return f"read_parquet({p})"
    raise UnsupportedFormatError(f"{path}: no reader for format {kind!r}.")


def _describe(relation_sql: str, name: str) -> dict[str, str]:
    con = duckdb.connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise IngestError(
            f"{name}: cannot be read ({first}). Check the format and that the file is complete."
        ) from None
    finally:
        con.close()
    return {r[0]: r[1] for r in rows}


def read_source(
    path: str | Path,
    *,
    mapping: ColumnMapping | None = None,
    kind: str | None = None,
    rating_scale: str | None = None,
    delimiter: str | None = None,
) -> Source:
    """Describe an event file as a Source, checking its columns against the contract.

    ``mapping`` renames source columns to contract fields ({source: field}, the CLI's ``--map``).
    ``rating_scale`` applies one scale to every rating when the file has no ``rating_scale`` column.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file.")
    if path.is_dir():
        raise IngestError(f"{path}: is a folder; pass the files in it (e.g. {path}/*.csv).")
    kind = kind or suffix_kind(path)
    if not kind:
        raise UnsupportedFormatError(
            f"{path}: cannot tell the format from the name; use .csv, .jsonl, .parquet, .xes or .xes.gz."
        )
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty.")
    if kind == "xes":
        table = read_xes(path)
        return _arrow_source(str(path), "xes", table, mapping, rating_scale, position="event")
    relation = _reader_sql(path, kind, delimiter)
    try:
        types = _describe(relation, str(path))
    except IngestError:
        if kind != "csv":
            raise
        # A stray carriage return or quote inside an unquoted field (real exports have them: the Twitter support
        # corpus does) defeats DuckDB's strict dialect detection for the whole file. Read it leniently instead:
        # the records it cannot split go to the rejects file as malformed lines, and the rest go in.
        relation = _reader_sql(path, kind, delimiter, strict=False)
        types = _describe(relation, str(path))
    columns, extra = resolve_columns(str(path), list(types), mapping)
    return Source(
        name=str(path),
        kind=kind,
        columns=columns,
        source_types=types,
        relation_sql=relation,
        extra=extra,
        first_line=2 if kind == "csv" else 1,
        position_name="row" if kind == "parquet" else "line",
        default_rating_scale=rating_scale,
    )


def _arrow_source(
    name: str,
    kind: str,
    table: pa.Table,
    mapping: ColumnMapping | None,
    rating_scale: str | None,
    position: str = "row",
) -> Source:
    if all(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in table.schema):
        types = {
            f.name: "VARCHAR" for f in table.schema
        }  # the common case (API batches, XES): no DESCRIBE needed
    else:
        con = duckdb.connect()
        try:
            con.register("_t", table)
            types = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM _t").fetchall()}
        finally:
            con.close()
    columns, extra = resolve_columns(name, list(types), mapping)
    return Source(
        name=name,
        kind=kind,
        columns=columns,
        source_types=types,
        table=table,
        extra=extra,
        first_line=1,
        position_name=position,
        default_rating_scale=rating_scale,
    )


def frame_source(
    df: pd.DataFrame,
    *,
    name: str = "frame",
    mapping: ColumnMapping | None = None,
    rating_scale: str | None = None,
) -> Source:
    """A pandas DataFrame of events as a Source (rows numbered from 1)."""
    df = df.copy()
    if "attrs" in df.columns:
        import json

        df["attrs"] = [
            None
            if v is None or (isinstance(v, float) and v != v)
            else (v if isinstance(v, str) else json.dumps(v))
            for v in df["attrs"]
        ]
    table = pa.Table.from_pandas(df, preserve_index=False)
    return _arrow_source(name, "frame", table, mapping, rating_scale)


def records_source(
    records: Iterable[Mapping[str, Any]], *, name: str = "api", rating_scale: str | None = None
) -> Source:
    """A batch of event dicts (the REST API's body) as a Source; values may be of any JSON type."""
    import json

    rows = list(records)
    if not rows:
        raise IngestError(f"{name}: the batch holds no events.")
    for r in rows:
        if type(r) is not dict and not isinstance(r, Mapping):  # the exact type first: the ABC check is slow
            raise IngestError(f"{name}: each event must be a JSON object; got {type(r).__name__}.")
    keys = list(dict.fromkeys(chain.from_iterable(rows)))
    if not keys:
        raise IngestError(
            f"{name}: the events have no fields; each needs at least customer_id, ts and touchpoint."
        )
    lowered: dict[str, str] = {}
    for k in keys:
        if k.lower() in lowered:
            raise IngestError(
                f"{name}: field names {lowered[k.lower()]!r} and {k!r} differ only in case; use one spelling."
            )
        lowered[k.lower()] = k
    cols: dict[str, list[Any]] = {}
    for k in keys:
        col = [r.get(k) for r in rows]
        if not set(map(type, col)) <= {str, type(None)}:  # numbers, booleans, objects: as their text / JSON
            col = [
                v
                if v is None or isinstance(v, str)
                else json.dumps(v)
                if isinstance(v, dict | list)
                else str(v)
                for v in col
            ]
        cols[k] = col
    table = pa.table({k: pa.array(v, type=pa.string()) for k, v in cols.items()})
    return _arrow_source(name, "api", table, None, rating_scale)
