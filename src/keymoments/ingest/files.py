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

from keymoments.exceptions import IngestError, InvalidParameterError, UnsupportedFormatError
from keymoments.ingest.source import Mapping as ColumnMapping
from keymoments.ingest.source import Source, parse_constants, resolve_columns, suffix_kind
from keymoments.ingest.timestamps import TsRange, parse_ts_formats, parse_ts_range
from keymoments.ingest.xes import read_xes
from keymoments.quoting import quote_literal

__all__ = ["ENCODINGS", "frame_source", "read_source", "records_source", "sniff_encoding", "sql_literal"]


def sql_literal(text: str) -> str:
    """Quote a string as a SQL literal (:func:`keymoments.quoting.quote_literal`)."""
    return quote_literal(str(text))


#: bytes DuckDB's CSV reader reads at a time
_CSV_BUFFER = 32 << 20

#: the text encodings DuckDB's CSV reader reads (``--encoding``); UTF-8 (with or without a BOM) is the default
ENCODINGS = ("utf-8", "utf-16", "latin-1")

#: bytes looked at to tell a file's encoding
_SNIFF_BYTES = 1 << 16


def _head(path: Path) -> bytes:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:  # type: ignore[operator]
            return fh.read(_SNIFF_BYTES)
    except (OSError, EOFError):
        return b""  # not gzip after all, or unreadable: the reader says why


def _convert_hint(path: Path, source: str) -> str:
    return f"convert it to UTF-8, e.g. `iconv -f {source} -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`"


def sniff_encoding(path: str | Path, given: str | None = None, *, kind: str = "csv") -> str:
    """The encoding of a text file: ``given`` when the user named one (one of :data:`ENCODINGS`), else told from
    its first 64 KiB: a UTF-16 byte-order mark (or the NUL bytes of UTF-16 text without one) → ``utf-16``;
    UTF-8 (with or without a BOM) → ``utf-8``. Anything else is refused with a message that names the encoding
    it looks like and how to read it: UTF-16 big-endian and UTF-32, which DuckDB cannot read, and bytes that are
    not UTF-8 (Latin-1 / Windows-1252 exports), which ``--encoding latin-1`` reads. JSON must be UTF-8."""
    path = Path(path)
    if given is not None:
        enc = given.strip().lower().replace("_", "-")
        enc = {"utf8": "utf-8", "utf16": "utf-16", "utf-16le": "utf-16", "latin1": "latin-1", "iso-8859-1": "latin-1"}.get(enc, enc)
        if enc not in ENCODINGS or (kind != "csv" and enc != "utf-8"):
            allowed = list(ENCODINGS) if kind == "csv" else ["utf-8"]
            raise IngestError(
                f"{path}: --encoding {given!r} is not one keymoments reads {'CSV' if kind == 'csv' else 'JSON'} in; "
                f"use one of {allowed}, or {_convert_hint(path, given.upper())}."
            )
        return enc
    head = _head(path)
    what: str | None = None
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        what, source = "UTF-32", "UTF-32"
    elif head.startswith(b"\xfe\xff") or (len(head) >= 4 and head[0] == 0 and head[1] != 0 and head[2] == 0):
        what, source = "UTF-16 big-endian", "UTF-16BE"
    elif head.startswith(b"\xff\xfe") or (len(head) >= 4 and head[0] != 0 and head[1] == 0 and head[3] == 0):
        if kind == "csv":
            return "utf-16"
        what, source = "UTF-16", "UTF-16"
    if what is not None:
        raise IngestError(f"{path}: the file is {what} text, which keymoments cannot read; {_convert_hint(path, source)}.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            line = head[: exc.start].count(b"\n") + 1
            byte = head[exc.start]
            fix = (
                "pass --encoding latin-1 (Latin-1 and most of Windows-1252), or " if kind == "csv" else ""
            ) + _convert_hint(path, "WINDOWS-1252")
            raise IngestError(
                f"{path}: the file is not UTF-8 (byte 0x{byte:02X} on line {line}); it looks like Latin-1 or "
                f"Windows-1252. To read it, {fix}."
            ) from None
    return "utf-8"


def _reader_sql(
    path: Path, kind: str, delimiter: str | None = None, *, strict: bool = True, encoding: str | None = None
) -> str:
    p = sql_literal(str(path))
    if kind == "csv":
        delim = f", delim={sql_literal(delimiter)}" if delimiter else ""
        lenient = "" if strict else ", strict_mode=false"
        enc = sniff_encoding(path, encoding)
        coding = "" if enc == "utf-8" else f", encoding={sql_literal(enc)}"
        # 32 MiB buffers: a quarter less CPU than DuckDB's default on a 1 GB file (measured), and no more memory
        # than a batch's other buffers
        return (
            f"read_csv({p}, all_varchar=true, header=true, ignore_errors=true, store_rejects=true, "
            f"buffer_size={_CSV_BUFFER}{delim}{lenient}{coding})"
        )
    if kind == "jsonl":
        sniff_encoding(path, encoding, kind="json")
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


def _time_options(
    ts_format: str | list[str] | tuple[str, ...] | None, ts_range: str | TsRange | None, constants: Any
) -> dict[str, Any]:
    """The Source fields of ``--ts-format``, ``--ts-range`` and ``--set``, checked."""
    return {
        "ts_formats": parse_ts_formats(ts_format),
        "ts_range": ts_range if isinstance(ts_range, TsRange) else parse_ts_range(ts_range),
        "constants": parse_constants(constants),
    }


def read_source(
    path: str | Path,
    *,
    mapping: ColumnMapping | None = None,
    kind: str | None = None,
    rating_scale: str | None = None,
    delimiter: str | None = None,
    ts_format: str | list[str] | tuple[str, ...] | None = None,
    ts_range: str | TsRange | None = None,
    constants: dict[str, str] | list[str] | None = None,
    encoding: str | None = None,
) -> Source:
    """Describe an event file as a Source, checking its columns against the contract.

    ``mapping`` renames source columns to contract fields ({source: field}, the CLI's ``--map``).
    ``rating_scale`` applies one scale to every rating when the file has no ``rating_scale`` column.
    ``ts_format`` says how ``ts`` is written (strptime codes, or ``epoch_s`` … ``epoch_ns``); ``ts_range`` the
    days the timestamps must lie in (default: 1990 to the end of next year; ``"any"``), see
    :mod:`keymoments.ingest.timestamps`. ``constants`` gives fields one value for every row (``--set``).
    ``encoding`` is the CSV's text encoding when it is not UTF-8 or BOM-marked UTF-16 (``latin-1``).
    """
    options = _time_options(ts_format, ts_range, constants)
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
        return _arrow_source(str(path), "xes", table, mapping, rating_scale, position="event", **options)
    relation = _reader_sql(path, kind, delimiter, encoding=encoding)
    try:
        types = _describe(relation, str(path))
    except IngestError:
        if kind != "csv":
            raise
        # A stray carriage return or quote inside an unquoted field (real exports have them: the Twitter support
        # corpus does) defeats DuckDB's strict dialect detection for the whole file. Read it leniently instead:
        # the records it cannot split go to the rejects file as malformed lines, and the rest go in.
        relation = _reader_sql(path, kind, delimiter, strict=False, encoding=encoding)
        types = _describe(relation, str(path))
    columns, extra = resolve_columns(str(path), list(types), mapping, constants=options["constants"])
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
        **options,
    )


def _arrow_source(
    name: str,
    kind: str,
    table: pa.Table,
    mapping: ColumnMapping | None,
    rating_scale: str | None,
    position: str = "row",
    **options: Any,
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
    columns, extra = resolve_columns(name, list(types), mapping, constants=options.get("constants"))
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
        **options,
    )


def frame_source(
    df: pd.DataFrame,
    *,
    name: str = "frame",
    mapping: ColumnMapping | None = None,
    rating_scale: str | None = None,
    ts_format: str | list[str] | tuple[str, ...] | None = None,
    ts_range: str | TsRange | None = None,
    constants: dict[str, str] | list[str] | None = None,
) -> Source:
    """A pandas DataFrame of events as a Source (rows numbered from 1); the options are
    :func:`read_source`'s."""
    options = _time_options(ts_format, ts_range, constants)
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
    return _arrow_source(name, "frame", table, mapping, rating_scale, **options)


def records_source(
    records: Iterable[Mapping[str, Any]],
    *,
    name: str = "api",
    rating_scale: str | None = None,
    ts_format: str | list[str] | tuple[str, ...] | None = None,
    ts_range: str | TsRange | None = None,
    constants: dict[str, str] | list[str] | None = None,
    ts_outside: str | None = None,
) -> Source:
    """A batch of event dicts (the REST API's body) as a Source; values may be of any JSON type.

    The options are :func:`read_source`'s. ``ts_outside`` says what a timestamp outside ``ts_range`` does:
    "reject" its row (the default for the REST API, ``name="api"``, where each event stands alone) or "refuse"
    the batch (the default otherwise)."""
    options = _time_options(ts_format, ts_range, constants)
    options["ts_outside"] = ts_outside or ("reject" if name == "api" else "refuse")
    if options["ts_outside"] not in ("reject", "refuse"):
        raise InvalidParameterError(f"ts_outside must be 'reject' or 'refuse'; got {ts_outside!r}.")
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
    return _arrow_source(name, "api", table, None, rating_scale, **options)
