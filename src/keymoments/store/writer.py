"""Ingest: validate a :class:`~keymoments.ingest.source.Source` and write its events in one transaction.

The whole batch is read by DuckDB into a staging table (``store.staging``: each row normalised and checked
against the contract in one pass); rows that fail get one reason each and go to the rejects file, good rows
are de-duplicated on ``event_id`` (given, or a stable hash of the row's content plus its occurrence number
among identical rows, so exact duplicates in one file are kept as process-mining tools keep them, while
re-ingesting the file adds nothing) and inserted with their derived columns (step, next touchpoint, next
timestamp) kept right for every journey the batch touches (``store.derive``). The staging table is scratch;
everything that touches the store's tables happens between BEGIN and COMMIT: a crash or a kill leaves the
store as it was before the batch.

:func:`ingest_batches` writes several record batches (concurrent API requests) in one transaction and answers
each with its own counts and rejects, as if each had been written alone, one after the other.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from keymoments.exceptions import IngestError, RejectedRowsError
from keymoments.ingest.files import frame_source, sql_literal
from keymoments.ingest.source import Source
from keymoments.present import csv_safe_frame, polled, progress_task
from keymoments.store.derive import insert_with_derived, mark_duplicates, mark_known
from keymoments.store.staging import OUTSIDE_WINDOW, stage_sql
from keymoments.store.store import Store

__all__ = [
    "MAX_REJECTS", "BatchAnswer", "IngestResult", "batch_shape", "check_rejects", "ingest_batches", "ingest_events_frame",
    "ingest_outcomes_frame", "ingest_source",
]  # fmt: skip

#: the share of a batch's rows that may be rejected before a command refuses the whole of it (--max-rejects)
MAX_REJECTS = 0.10

#: DuckDB's buffer memory while a batch is written (it spills to a temporary folder beyond it)
INGEST_MEMORY_LIMIT = "1200MB"

#: batches with more good rows than this order narrow keys and join the derived columns back
_NARROW_ROWS = 250_000


@dataclass
class IngestResult:
    """What one batch did."""

    source: str
    batch_id: int
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    rejects_path: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchAnswer:
    """One record batch of a group write: its result and its rejected rows (``row``, ``reason``, fields)."""

    result: IngestResult
    rejects: pd.DataFrame


@dataclass
class _Written:
    result: IngestResult
    rejected: pd.DataFrame  # _row (position in its batch), _line, reason, the row's fields as sent
    malformed: list[tuple[int, str]]


def ingest_source(
    store: Store,
    src: Source,
    *,
    rejects_path: str | Path | None = None,
    kind: str = "events",
    memory_limit: str | None = INGEST_MEMORY_LIMIT,
    max_rejects: float | None = None,
) -> IngestResult:
    """Validate and write one batch; return its counts. Atomic: all of the batch's good rows or nothing (inside
    :meth:`Store.transaction`, part of that transaction).

    Refused whole, with nothing written (:class:`IngestError`): a file that cannot be read, and a batch whose
    timestamps fall outside ``src.ts_range`` when ``src.ts_outside`` is "refuse" (the message names the column,
    three of the values and the fix). With ``max_rejects`` (a share, e.g. 0.1), a batch with no good row or with
    more rejected rows than that is refused too (:class:`RejectedRowsError`), after its rejects file is written.

    ``memory_limit`` caps DuckDB's buffer memory while the batch is written (it spills to disk beyond it), so
    a 10M-event file ingests in well under 2 GiB of RSS; None leaves the store's own limit.
    """
    t0 = time.perf_counter()
    previous = None
    small = src.table is not None and src.table.num_rows < 100_000
    # with a limit on rejects, the batch is written in a transaction that its rejects can still undo
    with store.transaction() if max_rejects is not None else nullcontext(), store.session() as con:
        # under the store's lock: the setting is the writer connection's, shared
        if memory_limit and not small:  # small batches (the API's) skip the settings round-trips
            previous = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
            con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
        try:
            (written,) = _write(store, [src], src, kind=kind, t0=t0)
        finally:
            if previous:
                try:
                    con.execute(f"SET memory_limit = {sql_literal(previous)}")
                except duckdb.Error:  # a failed statement aborted the caller's transaction: it is being undone
                    pass
        result = written.result
        if result.rejected:
            result.rejects_path = _write_rejects(src, written.rejected, written.malformed, rejects_path)
        if max_rejects is not None:
            check_rejects(result, max_rejects)
    return result


def check_rejects(result: IngestResult, max_rejects: float = MAX_REJECTS) -> None:
    """Raise :class:`RejectedRowsError` when a batch had no good row, or rejected more than ``max_rejects``
    (a share) of its rows; the message says how many, why, where the rejects file is and how to go on."""
    if result.rows and result.accepted + result.duplicates and result.rejected <= max_rejects * result.rows:
        return
    reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.reasons.items(), key=lambda kv: -kv[1]))
    where = f" Each rejected row and its reason: {result.rejects_path}." if result.rejects_path else ""
    if not result.rows:
        raise RejectedRowsError(f"{result.source}: has no rows; nothing was written.", result)
    share = result.rejected / result.rows
    if not result.accepted + result.duplicates:
        head = f"{result.source}: all {result.rows:,} rows were rejected ({reasons}); nothing was written."
        tail = " Fix the rows (the reasons say how) and ingest again."
    else:
        head = (
            f"{result.source}: {result.rejected:,} of {result.rows:,} rows were rejected ({share:.0%}, more than "
            f"--max-rejects {max_rejects:.0%}; {reasons}); nothing was written."
        )
        tail = " Fix the rows (the reasons say how), or pass a larger --max-rejects (e.g. 100%) to keep the good ones."
    raise RejectedRowsError(head + where + tail, result)


def ingest_batches(store: Store, sources: Sequence[Source]) -> list[BatchAnswer]:
    """Write record batches of one shape (e.g. concurrent API requests) in one transaction.

    Each batch gets its own batch id and answer, the same as if the batches had been written one after the
    other in this order: identical rows are numbered within their own batch, an event sent by two batches is
    accepted from the first and a duplicate in the second, and the journeys they share are derived over all of
    their events. All the batches commit together or not at all.
    """
    t0 = time.perf_counter()
    shape = batch_shape(sources[0])
    if any(batch_shape(s) != shape for s in sources):
        raise ValueError("ingest_batches takes in-memory batches of one shape (see batch_shape).")
    group = sources[0] if len(sources) == 1 else _concat(sources)
    out = []
    for w in _write(store, sources, group, kind=group.kind, t0=t0):
        rejects = w.rejected.drop(columns=["_line"]).rename(columns={"_row": "row"}) if len(w.rejected) else _NO_REJECTS.copy()
        out.append(BatchAnswer(w.result, rejects.reset_index(drop=True) if len(rejects) else rejects))
    return out


#: the rejects of a batch without any (columns as :func:`_rejected_rows` gives them, ``_row`` as ``row``)
_REJECT_COLUMNS = ["_req", "_row", "_line", "reason", "customer_id", "journey_id", "ts", "touchpoint", "rating",
                   "rating_scale", "value", "text"]  # fmt: skip
_NO_REJECTS = pd.DataFrame(columns=["row" if c == "_row" else c for c in _REJECT_COLUMNS if c not in ("_req", "_line")])


def batch_shape(src: Source) -> tuple[Any, ...]:
    """What batches must share to be written together.

    Record batches of text fields (the API's) need the same options and the same extra columns; the contract
    fields they carry may differ, since a field a batch lacks reads as NULL in its rows, as it would alone.
    Other batches need the same columns and types.
    """
    options = (src.kind, tuple(src.extra), "attrs" in src.columns, src.default_rating_scale, src.line_column,
               src.first_line, src.position_name, src.ts_formats, src.ts_range, src.ts_outside,
               tuple(src.constants.items()))  # fmt: skip
    if src.table is None:
        return ("file", src.name, *options)
    if all(pa.types.is_string(f.type) for f in src.table.schema) and all(k == v for k, v in src.columns.items()):
        return ("fields", *options)
    return ("table", src.table.schema, tuple(src.columns.items()), *options)


def _concat(sources: Sequence[Source]) -> Source:
    """One Source over the batches' rows, each tagged with its batch (``_km_req``) and position (``_km_pos``)."""
    names = list(dict.fromkeys(c for s in sources for c in s.table.column_names))  # type: ignore[union-attr]
    parts = []
    for i, s in enumerate(sources):
        t = s.table
        assert t is not None
        n = t.num_rows
        cols = [t[c] if c in t.column_names else pa.nulls(n, pa.string()) for c in names]  # only text batches differ
        cols += [pa.array(np.full(n, i, dtype=np.int32)), _positions(n)]
        parts.append(pa.table(cols, names=[*names, "_km_req", "_km_pos"]))
    table = pa.concat_tables(parts, promote_options="permissive")
    columns = {k: v for s in sources for k, v in s.columns.items()}
    types = {k: v for s in sources for k, v in s.source_types.items()}
    return replace(sources[0], table=table, columns=columns, source_types=types)


def _positions(n: int) -> pa.Array:
    """1, 2, … n: the rows' positions in their batch."""
    return pa.array(np.arange(1, n + 1, dtype=np.int64))


def _write(store: Store, sources: Sequence[Source], src: Source, *, kind: str, t0: float) -> list[_Written]:
    """Stage ``src`` (one source, or several concatenated by :func:`_concat`), write its new events and record
    one batch per source; return what each source did.

    The staging table is scratch, built before the transaction opens (inside the caller's
    :meth:`Store.transaction`, if any); everything that touches the store's tables happens in one transaction.
    """
    name = Path(src.name).name if src.kind not in ("api", "frame") else src.kind
    with store.session() as con:
        try:
            started = datetime.now(UTC)
            with progress_task(f"reading {name}", total=100) as task, polled(task, con.query_progress):
                rows = _stage(con, src, grouped=len(sources) > 1)
            malformed = _csv_rejects(con) if src.kind == "csv" else []
            if len(sources) == 1 and src.ts_outside == "refuse":
                _refuse_outside_window(con, src)
            with progress_task(f"writing {name}"), store.write() as tx:  # several statements: a pulsing bar
                return _write_staged(tx, sources, rows, kind, started, malformed, t0)
        finally:
            try:
                con.execute("DROP TABLE IF EXISTS _stage")
            except duckdb.Error:  # a failed statement aborted the caller's transaction, which drops it
                pass


def _refuse_outside_window(con: duckdb.DuckDBPyConnection, src: Source) -> None:
    """Refuse the batch when any of its timestamps falls outside its window: nearly always dates misread (a
    date taken for epoch seconds lands in 1970), so the message names the column, three values and the fix."""
    marker = sql_literal(f"%{OUTSIDE_WINDOW}%")
    found = con.execute(
        f"SELECT count(*) FROM _stage WHERE _reason LIKE {marker}"
    ).fetchall()[0][0]
    if not found:
        return
    total, lo, hi = con.execute(
        "SELECT count(*), strftime(min(ts), '%Y-%m-%d'), strftime(max(ts), '%Y-%m-%d') FROM _stage WHERE ts IS NOT NULL"
    ).fetchall()[0]
    samples = con.execute(
        f"SELECT _raw_ts, strftime(ts, '%Y-%m-%d %H:%M:%S') FROM _stage WHERE _reason LIKE {marker} "
        "ORDER BY _raw_ts LIMIT 3"
    ).fetchall()
    column = f"--set ts={src.constants['ts']!r}" if "ts" in src.constants else f"column {src.columns.get('ts', 'ts')!r}"
    shown = "; ".join(f"{raw!r} read as {read}" for raw, read in samples)
    window = src.ts_range
    where = "the plausible window" if window.plausible else "--ts-range"
    raise IngestError(
        f"{src.name}: {found:,} of {total:,} timestamps in {column} (ts) fall outside {where} "
        f"{window.describe()} (they run from {lo} to {hi}), e.g. {shown}. Dates misread look like this; nothing "
        "was written. If they are dates in another form, say which with --ts-format (e.g. --ts-format %Y%m%d or "
        "%d/%m/%Y); if they are right, pass --ts-range any (or a range such as --ts-range 1900..2030)."
    )


def _write_staged(
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[Source],
    rows: str,  # the staged rows, with _r, _req and _pos
    kind: str,
    started: datetime,
    malformed: list[tuple[int, str]],
    t0: float,
) -> list[_Written]:
    base, n, good, distinct, empty = con.execute(
        "SELECT (SELECT coalesce(max(batch_id), 0) + 1 FROM batches), count(*), count(*) FILTER (WHERE _reason IS NULL), "
        "count(DISTINCT hash(event_id)) FILTER (WHERE _reason IS NULL), NOT EXISTS (SELECT 1 FROM events) FROM _stage"
    ).fetchall()[0]
    if distinct < good:  # some id repeats (or two ids share a hash): number and mark copies exactly
        mark_duplicates(con, rows)
    if good and not empty:
        mark_known(con)
    accepted = insert_with_derived(con, rows, base, existing=not empty, narrow=good > _NARROW_ROWS) if good else 0
    rejected = _rejected_rows(con, rows) if n > good else pd.DataFrame(columns=_REJECT_COLUMNS)
    counts = _per_request(con, len(sources) > 1, n, good, accepted)
    return _record_batches(con, sources, base, kind, started, counts, rejected, malformed, t0)


def _stage(con: duckdb.DuckDBPyConnection, src: Source, *, grouped: bool) -> str:
    """Read, normalise and check the source into the temp table ``_stage``; return the SQL of its rows with
    ``_r`` (the row's id in ``_stage``), ``_req`` (its batch in a group, else 0) and ``_pos`` (its position)."""
    req = "" if grouped else "0 AS _req, "
    rows = f"(SELECT rowid AS _r, {req}* FROM _stage)"
    ordered = False
    if src.table is not None:  # in-memory batches carry their positions
        table = src.table if grouped else src.table.append_column("_km_pos", _positions(src.table.num_rows))
        sql = stage_sql(src, "_km_source", request='"_km_req"' if grouped else None, position='"_km_pos"')
    elif src.kind == "parquet":
        sql = stage_sql(src, src.relation_sql or "", position="file_row_number + 1")
    else:  # a text file: the positions are the scratch table's row ids, if DuckDB writes it in the file's order
        sql = stage_sql(src, src.relation_sql or "")
        ordered = _keeps_order(con, sql)
        if not ordered:  # numbered as read, in one thread
            sql = stage_sql(src, src.relation_sql or "", position="row_number() OVER ()")
    if src.table is not None:
        con.register("_km_source", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {sql}")
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise IngestError(f"{src.name}: cannot be read ({first}). Nothing was written.") from None
    finally:
        if src.table is not None:
            con.unregister("_km_source")
    if ordered:
        # the row ids count up from the first row's: 0, or 2**55 when the table was made inside a transaction
        first_id = con.execute("SELECT coalesce(min(rowid), 0) FROM _stage").fetchall()[0][0]
        rows = f"(SELECT rowid AS _r, 0 AS _req, rowid - {int(first_id)} + 1 AS _pos, * FROM _stage)"
    return rows


def _keeps_order(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """DuckDB plans to write the staging table in the order it reads the file (an order-keeping batch insert)."""
    return "Batch Create Table As" in con.execute(f"EXPLAIN CREATE TEMP TABLE _stage AS {sql}").fetchall()[0][1]


def _rejected_rows(con: duckdb.DuckDBPyConnection, rows: str) -> pd.DataFrame:
    return con.execute(
        "SELECT _req, _pos AS _row, _line, _reason AS reason, customer_id, journey_id, _raw_ts AS ts, touchpoint, "
        f"_raw_rating AS rating, rating_scale, _raw_value AS value, text FROM {rows} WHERE _reason IS NOT NULL "
        "ORDER BY _req, _pos"
    ).df()


def _per_request(con: duckdb.DuckDBPyConnection, grouped: bool, n: int, good: int, accepted: int) -> dict[int, tuple[int, ...]]:
    """{request: (rows, good rows, accepted rows)}."""
    if not grouped:
        return {0: (n, good, accepted)}
    got = con.execute(
        "SELECT _req, count(*), count(*) FILTER (WHERE _reason IS NULL), "
        "count(*) FILTER (WHERE _reason IS NULL AND NOT _dup) FROM _stage GROUP BY _req"
    ).fetchall()
    return {int(r[0]): tuple(int(x) for x in r[1:]) for r in got}


def _record_batches(
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[Source],
    base: int,
    kind: str,
    started: datetime,
    counts: dict[int, tuple[int, ...]],
    rejected: pd.DataFrame,
    malformed: list[tuple[int, str]],
    t0: float,
) -> list[_Written]:
    """One row in ``batches`` per source, and what each source did."""
    out, values = [], []
    finished = datetime.now(UTC)
    own_rejects = dict(iter(rejected.groupby("_req"))) if len(rejected) else {}
    none = rejected.iloc[0:0].drop(columns=["_req"])
    for i, s in enumerate(sources):
        own = own_rejects[i].drop(columns=["_req"]) if i in own_rejects else none
        bad = malformed if i == 0 else []
        n, good, accepted = counts.get(i, (0, 0, 0))
        reasons = dict(Counter(r.split(" ", 1)[0] for r in own["reason"].tolist())) if len(own) else {}
        if bad:
            reasons["malformed"] = len(bad)
        result = IngestResult(
            source=s.name, batch_id=base + i, rows=n + len(bad), accepted=accepted, duplicates=good - accepted,
            rejected=len(own) + len(bad), reasons=reasons, seconds=time.perf_counter() - t0,
        )  # fmt: skip
        out.append(_Written(result, own, bad))
        values += [base + i, "api" if s.kind == "api" else kind, s.name, started, finished, result.rows, accepted,
                   result.duplicates, result.rejected]  # fmt: skip
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(sources))
    con.execute(
        "INSERT INTO batches (batch_id, kind, source, started_at, finished_at, rows_read, accepted, duplicates, rejected) "
        f"VALUES {rows}",
        values,
    )
    return out


def _csv_rejects(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """Structurally malformed CSV lines that DuckDB's reader skipped: (line, error)."""
    # looked up, not tried: inside a transaction a failed statement would abort it
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('reject_errors', 'reject_scans') AND temporary"
    ).fetchall()[0][0]
    if present < 2:
        return []
    rows = con.execute("SELECT line, error_message FROM reject_errors ORDER BY line").fetchall()
    con.execute("DELETE FROM reject_errors")
    con.execute("DELETE FROM reject_scans")
    seen: dict[int, str] = {}
    for line, message in rows:  # DuckDB may log one line several times (one error per extra column)
        seen.setdefault(int(line), str(message).splitlines()[0])
    return sorted(seen.items())


def _write_rejects(
    src: Source, rejected: pd.DataFrame, malformed: list[tuple[int, str]], path: str | Path | None
) -> str:
    """Write the rejects file (CSV: line, reason, then the row's fields); atomically via rename."""
    skipped = sorted(line for line, _ in malformed)
    positions = []
    for r, given in zip(rejected["_row"].tolist(), rejected["_line"].tolist(), strict=True):
        if pd.notna(given):
            positions.append(int(given))
            continue
        # a data row's line: header + row number + malformed lines skipped before it (no multi-line fields)
        line = int(r) + src.first_line - 1
        for s in skipped:
            if s <= line:
                line += 1
        positions.append(line)
    out = rejected.drop(columns=["_row", "_line"])
    out.insert(0, src.position_name, positions)
    if malformed:
        bad = pd.DataFrame({src.position_name: [m[0] for m in malformed], "reason": [f"malformed line: {m[1]}" for m in malformed]})
        out = pd.concat([out, bad], ignore_index=True).sort_values(src.position_name, kind="stable")
        out[src.position_name] = out[src.position_name].astype("int64")  # not 2486.0 when only malformed lines
    if path is None:
        stem = Path(src.name).name if src.kind not in ("api", "frame") else src.kind
        for suffix in (".gz", ".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".xes", ".tsv"):
            stem = stem.removesuffix(suffix)
        path = Path.cwd() / f"{stem}.rejects.csv"
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rejects-", suffix=".csv")
    os.close(fd)
    csv_safe_frame(out).to_csv(tmp, index=False)  # a field like =HYPERLINK(…) must not run in a spreadsheet
    os.replace(tmp, path)
    return str(path)




def ingest_events_frame(
    store: Store, df: pd.DataFrame, *, source: str = "frame", rejects_path: str | Path | None = None
) -> IngestResult:
    """Ingest a pandas DataFrame of events (contract columns) into the store."""
    return ingest_source(store, frame_source(df, name=source), rejects_path=rejects_path)


def ingest_outcomes_frame(
    store: Store,
    df: pd.DataFrame,
    *,
    key: str = "customer_id",
    source: str = "frame",
    attributes_only: bool = False,
    observed_at: datetime | str | None = None,
    observed_at_col: str | None = None,
) -> dict[str, Any]:
    """Upsert an outcome table: numeric and yes/no columns become outcomes, text columns attributes.

    With ``attributes_only`` every column is stored as an attribute (a customer table: segment, tier, tenure).

    Each outcome row carries the time it was observed (playbook uplift counts only outcomes observed after
    the decision): the column ``observed_at_col`` (one time per row; an empty cell means unknown), else
    ``observed_at`` (one time for the whole table, e.g. the date of a retention snapshot), else the ingest
    time. Re-ingesting a row with the same value and no time of its own keeps the time it was first observed.

    Returns {"rows", "outcomes": [...], "attributes": [...], "observed_at"}; re-ingesting the same table
    changes nothing.
    """
    from keymoments.events import did_you_mean
    from keymoments.exceptions import InvalidParameterError, MissingColumnError

    if key not in ("customer_id", "journey_id"):
        raise InvalidParameterError(f"--key must be customer_id or journey_id; got {key!r}.")
    if key not in df.columns:
        raise MissingColumnError(
            f"{source}: the key column {key!r} is missing; columns are {list(df.columns)}."
            f"{did_you_mean(key, df.columns)} Rename it or pass --key."
        )
    if observed_at is not None and observed_at_col is not None:
        raise InvalidParameterError("Pass either observed_at (one time for the table) or observed_at_col, not both.")
    if df[key].isna().any():
        raise IngestError(f"{source}: {int(df[key].isna().sum())} rows have an empty {key}; fix them and retry.")
    keys = df[key].astype(str)
    if keys.duplicated().any():
        dup = keys[keys.duplicated()].iloc[0]
        raise IngestError(f"{source}: {key} {dup!r} appears more than once; an outcome table has one row per {key}.")
    now = datetime.now(UTC)
    explicit = observed_at is not None or observed_at_col is not None
    if observed_at_col is not None:
        if observed_at_col not in df.columns:
            raise MissingColumnError(
                f"{source}: the observed-at column {observed_at_col!r} is missing; columns are {list(df.columns)}."
                f"{did_you_mean(observed_at_col, df.columns)}"
            )
        when = _observed_times(df[observed_at_col], source, observed_at_col)
    else:
        when = pd.Series(_one_time(observed_at, source) if observed_at is not None else now, index=df.index)
    long_parts: list[pd.DataFrame] = []
    attr_parts: list[pd.DataFrame] = []
    defs: list[tuple[str, str]] = []
    for col in df.columns:
        if col == key or col == observed_at_col:
            continue
        values, dtype = (df[col], None) if attributes_only else _outcome_values(df[col])
        if dtype is None:
            attr_parts.append(pd.DataFrame({"key": keys, "name": col, "value": df[col].astype("string")}))
        else:
            defs.append((col, dtype))
            long_parts.append(pd.DataFrame({"key": keys, "name": col, "value": values, "observed_at": when}))
    with store.write() as con:
        batch_id = store.new_batch_id(con)
        con.execute(
            "INSERT INTO batches (batch_id, kind, source, started_at, finished_at, rows_read, accepted, duplicates, rejected) "
            "VALUES (?, 'outcomes', ?, ?, ?, ?, ?, 0, 0)",
            [batch_id, source, now, datetime.now(UTC), len(df), len(df)],
        )
        for name, dtype in defs:
            con.execute(
                "INSERT OR REPLACE INTO outcome_defs VALUES (?, ?, ?)", [name, key, dtype]
            )
        if long_parts:
            long = pd.concat(long_parts, ignore_index=True)
            long["value"] = long["value"].astype("float64")
            # a row whose value did not change keeps the time it was first observed, unless a time was given
            keep = "" if explicit else (
                "CASE WHEN outcomes.value IS NOT DISTINCT FROM excluded.value THEN outcomes.observed_at ELSE ")
            con.register("_km_outcomes", long)
            con.execute(
                "INSERT INTO outcomes (key_kind, key, name, value, batch_id, observed_at) "
                "SELECT ?, key, name, value, ?, observed_at FROM _km_outcomes "
                "ON CONFLICT (key_kind, key, name) DO UPDATE SET value = excluded.value, batch_id = excluded.batch_id, "
                f"observed_at = {keep}excluded.observed_at{' END' if keep else ''}", [key, batch_id]
            )
            con.unregister("_km_outcomes")
        if attr_parts:
            attrs = pd.concat(attr_parts, ignore_index=True)
            attrs["value"] = attrs["value"].astype(object).where(attrs["value"].notna(), None)
            con.register("_km_attrs", attrs)
            con.execute("INSERT OR REPLACE INTO attributes SELECT ?, key, name, value FROM _km_attrs", [key])
            con.unregister("_km_attrs")
    return {"rows": len(df), "outcomes": [d[0] for d in defs],
            "attributes": [p["name"].iloc[0] for p in attr_parts if len(p)],
            "observed_at": f"column {observed_at_col}" if observed_at_col else when.iloc[0].isoformat() if len(when) else None}  # fmt: skip


def _one_time(value: datetime | str, source: str) -> pd.Timestamp:
    """One observed time (a datetime or an ISO-8601 string; naive is UTC) as a UTC timestamp."""
    t = pd.to_datetime(pd.Series([value]), utc=True, errors="coerce", format="ISO8601").iloc[0]
    if pd.isna(t):
        raise IngestError(f"{source}: observed-at time {value!r} is not a date or time; use ISO-8601, e.g. 2025-12-31.")
    return t


def _observed_times(s: pd.Series, source: str, col: str) -> pd.Series:
    """A column of observed times as UTC timestamps (naive is UTC); empty cells are unknown (NaT)."""
    text = s.astype("string").str.strip()
    empty = s.isna() | (text == "")
    if pd.api.types.is_datetime64_any_dtype(s):
        when = pd.to_datetime(s, utc=True)
    else:
        when = pd.to_datetime(text.where(~empty), utc=True, errors="coerce", format="ISO8601")
    bad = when.isna() & ~empty
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise IngestError(
            f"{source}: {int(bad.sum())} rows have an unreadable time in {col!r} (row {i + 1}: {s.iloc[i]!r}); "
            "use ISO-8601, e.g. 2025-12-31 or 2025-12-31T18:00:00Z."
        )
    return when


_YES = {"yes", "y", "true", "t", "1", "retained", "churned"}
_NO = {"no", "n", "false", "f", "0"}


def _outcome_values(s: pd.Series) -> tuple[pd.Series, str | None]:
    """(values as floats, 'bool' | 'numeric') or (s, None) when the column is not an outcome."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64"), "bool"
    if pd.api.types.is_numeric_dtype(s):
        vals = s.astype("float64")
        uniq = set(vals.dropna().unique().tolist())
        return vals, "bool" if uniq and uniq <= {0.0, 1.0} else "numeric"
    text = s.astype("string").str.strip().str.lower()
    nonnull = text.dropna()
    nonnull = nonnull[nonnull != ""]
    if len(nonnull) and set(nonnull.unique()) <= (_YES | _NO) and not set(nonnull.unique()) <= {"0", "1"} | set():
        if set(nonnull.unique()) <= {"yes", "no", "y", "n", "true", "false", "t", "f"}:
            return text.map(lambda v: None if v is None or v is pd.NA or v == "" else float(v in _YES)).astype("float64"), "bool"
    numeric = pd.to_numeric(s.astype("string").str.strip().replace("", pd.NA), errors="coerce")
    if len(nonnull) and numeric.notna().sum() >= 0.95 * len(nonnull):
        return numeric.astype("float64"), "numeric"
    return s, None
