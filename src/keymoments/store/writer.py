"""Ingest: validate a :class:`~keymoments.ingest.source.Source` and write its events in one transaction.

The whole batch is read by DuckDB into a staging table, each row is normalised (timestamps to UTC, ratings to
valence) and checked against the contract in SQL; rows that fail get one reason each and go to the rejects
file, good rows are de-duplicated on ``event_id`` (given, or a stable hash of the row's content plus its
occurrence number among identical rows, so exact duplicates in one file are kept as process-mining tools keep
them, while re-ingesting the file adds nothing) and inserted with their derived columns (step, next
touchpoint, next timestamp) computed for every journey the batch touches. Everything between BEGIN and
COMMIT: a crash or a kill leaves the store as it was before the batch.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from keymoments.events import EVENT_FIELDS, RATING_CONFIDENCE, RATING_SCALES
from keymoments.exceptions import IngestError
from keymoments.ingest.files import frame_source, sql_literal
from keymoments.ingest.source import Source
from keymoments.store.schema import EVENT_COLUMNS
from keymoments.store.store import Store

__all__ = ["IngestResult", "ingest_events_frame", "ingest_outcomes_frame", "ingest_source"]

_STRING_FIELDS = [f for f, t in EVENT_FIELDS.items() if t == "VARCHAR"]

#: timestamp formats tried, in order, after ISO-8601 and epoch numbers
_TS_FORMATS_TZ = ["%a %b %d %H:%M:%S %z %Y", "%a, %d %b %Y %H:%M:%S %z", "%Y-%m-%d %H:%M:%S %z", "%d/%b/%Y:%H:%M:%S %z"]
_TS_FORMATS_NAIVE = [
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d %b %Y %H:%M",
    "%d %b %Y",
    "%b %d, %Y",
    "%Y%m%d%H%M%S",
]


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


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _ts_expr(col: str, typ: str) -> str:
    v = _q(col)
    t = typ.upper()
    if "TIME ZONE" in t or t == "TIMESTAMPTZ":
        return v
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"CAST({v} AS TIMESTAMPTZ)"
    if t in {"BIGINT", "INTEGER", "DOUBLE", "FLOAT", "HUGEINT", "UBIGINT", "SMALLINT", "REAL"} or t.startswith("DECIMAL"):
        return _epoch_expr(f"CAST({v} AS DOUBLE)")
    s = f"trim(CAST({v} AS VARCHAR))"
    tz = ", ".join(sql_literal(f) for f in _TS_FORMATS_TZ)
    naive = ", ".join(sql_literal(f) for f in _TS_FORMATS_NAIVE)
    return (
        f"COALESCE(TRY_CAST({s} AS TIMESTAMPTZ), "
        f"CASE WHEN regexp_full_match({s}, '-?[0-9]+(\\.[0-9]+)?') THEN {_epoch_expr(f'TRY_CAST({s} AS DOUBLE)')} END, "
        f"try_strptime({s}, [{tz}]), CAST(try_strptime({s}, [{naive}]) AS TIMESTAMPTZ))"
    )


def _epoch_expr(x: str) -> str:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude."""
    return (
        f"CASE WHEN abs({x}) >= 1e17 THEN to_timestamp({x} / 1e9) WHEN abs({x}) >= 1e14 THEN to_timestamp({x} / 1e6) "
        f"WHEN abs({x}) >= 1e11 THEN to_timestamp({x} / 1e3) ELSE to_timestamp({x}) END"
    )


def _valence_sql(rating: str, scale: str) -> str:
    parts = []
    for s in RATING_SCALES.values():
        lin = f"(2.0 * ({rating} - {s.low}) / ({s.high} - {s.low}) - 1.0)"
        parts.append(f"WHEN {sql_literal(s.name)} THEN {'-' if s.inverted else ''}{lin}")
    return f"CASE {scale} " + " ".join(parts) + " END"


def _range_check_sql(rating: str, scale: str) -> str:
    parts = [f"WHEN {sql_literal(s.name)} THEN {rating} BETWEEN {s.low} AND {s.high}" for s in RATING_SCALES.values()]
    return f"CASE {scale} " + " ".join(parts) + " ELSE false END"


def _stage_sql(src: Source, from_sql: str) -> str:
    cols, types = src.columns, src.source_types

    def raw(f: str) -> str:
        return f"NULLIF(trim(CAST({_q(cols[f])} AS VARCHAR)), '')" if f in cols else "NULL"

    sel = ["row_number() OVER () AS _row", f"{_q(src.line_column)} AS _line" if src.line_column else "NULL::BIGINT AS _line"]
    for f in _STRING_FIELDS:
        if f == "rating_scale":
            continue
        if f == "journey_id":  # a journey defaults to the customer
            sel.append(f"COALESCE({raw('journey_id')}, {raw('customer_id')}) AS journey_id")
            continue
        sel.append(f"{raw(f)} AS {f}")
    if "rating_scale" in cols:
        default = sql_literal(src.default_rating_scale) if src.default_rating_scale else "NULL"
        sel.append(f"COALESCE(lower({raw('rating_scale')}), {default}) AS rating_scale")
    else:
        sel.append(f"{sql_literal(src.default_rating_scale) if src.default_rating_scale else 'NULL'} AS rating_scale")
    sel.append(f"{_ts_expr(cols['ts'], types[cols['ts']])} AS ts" if "ts" in cols else "NULL::TIMESTAMPTZ AS ts")
    sel.append(f"{raw('ts')} AS _raw_ts")
    for f in ("rating", "value"):
        if f in cols:
            typ = types[cols[f]].upper()
            if typ in {"DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "REAL", "HUGEINT"} or typ.startswith("DECIMAL"):
                sel.append(f"CAST({_q(cols[f])} AS DOUBLE) AS {f}")
            else:
                sel.append(f"TRY_CAST({raw(f)} AS DOUBLE) AS {f}")
            sel.append(f"{raw(f)} AS _raw_{f}")
        else:
            sel.append(f"NULL::DOUBLE AS {f}")
            sel.append(f"NULL::VARCHAR AS _raw_{f}")
    extra_json = None
    if src.extra:
        extra_json = "to_json(struct_pack(" + ", ".join(f"{_q(c)} := {_q(c)}" for c in src.extra) + "))"
    if "attrs" in cols:
        base = f"TRY_CAST({raw('attrs')} AS JSON)"
        sel.append(f"{raw('attrs')} AS _raw_attrs")
        sel.append(f"json_merge_patch({extra_json}, {base}) AS attrs" if extra_json else f"{base} AS attrs")
    else:
        sel.append("NULL::VARCHAR AS _raw_attrs")
        sel.append(f"CAST({extra_json} AS JSON) AS attrs" if extra_json else "NULL::JSON AS attrs")

    scale_names = ", ".join(sql_literal(s) for s in RATING_SCALES)
    reason = f"""CASE
        WHEN customer_id IS NULL THEN 'customer_id is empty'
        WHEN _raw_ts IS NULL THEN 'ts is empty'
        WHEN ts IS NULL THEN 'ts ' || _raw_ts || ' is not a timestamp (use ISO-8601 such as 2024-05-01T10:00:00Z, or epoch seconds)'
        WHEN touchpoint IS NULL AND text IS NULL THEN 'touchpoint is empty and there is no text to infer it from'
        WHEN _raw_rating IS NOT NULL AND rating IS NULL THEN 'rating ' || _raw_rating || ' is not a number'
        WHEN rating IS NOT NULL AND rating_scale IS NULL THEN 'rating given without rating_scale (add the column or pass --rating-scale)'
        WHEN rating_scale IS NOT NULL AND rating_scale NOT IN ({scale_names}) THEN 'rating_scale ' || rating_scale || ' is unknown; use one of {", ".join(RATING_SCALES)}'
        WHEN rating IS NOT NULL AND NOT {_range_check_sql("rating", "rating_scale")} THEN 'rating ' || _raw_rating || ' is outside the ' || rating_scale || ' scale'
        WHEN _raw_value IS NOT NULL AND value IS NULL THEN 'value ' || _raw_value || ' is not a number'
        WHEN _raw_attrs IS NOT NULL AND (attrs IS NULL OR json_type(attrs) <> 'OBJECT') THEN 'attrs is not a JSON object'
    END"""
    content = ", ".join(
        ["customer_id", "coalesce(journey_id, '')", "CAST(epoch_us(ts) AS VARCHAR)", "coalesce(touchpoint, '')"]
        + [f"coalesce(CAST({f} AS VARCHAR), '')" for f in ("outcome", "rating", "rating_scale", "text", "value", "employee_id", "location_id", "channel", "stage")]
    )
    return f"""
    SELECT *, {reason} AS _reason
    FROM (SELECT * EXCLUDE (event_id), event_id IS NOT NULL AS _given,
                 COALESCE(event_id, md5(concat_ws(chr(31), {content}))) AS event_id
          FROM (SELECT {", ".join(sel)} FROM {from_sql}))
    """


_DERIVE_WINDOW = "PARTITION BY journey_id ORDER BY ts, seq"

#: DuckDB's buffer memory while a batch is written (it spills to a temporary folder beyond it)
INGEST_MEMORY_LIMIT = "1200MB"


def ingest_source(
    store: Store,
    src: Source,
    *,
    rejects_path: str | Path | None = None,
    progress: bool = False,
    kind: str = "events",
    memory_limit: str | None = INGEST_MEMORY_LIMIT,
) -> IngestResult:
    """Validate and write one batch; return its counts. Atomic: all of the batch's good rows or nothing.

    ``memory_limit`` caps DuckDB's buffer memory while the batch is written (it spills to disk beyond it), so
    a 10M-event file ingests in well under 2 GiB of RSS; None leaves the store's own limit.
    """
    import time

    t0 = time.perf_counter()
    previous = None
    small = src.table is not None and src.table.num_rows < 100_000
    if memory_limit and not small:  # small batches (the API's) skip the settings round-trips
        previous = store.query("SELECT current_setting('memory_limit') AS m")["m"].iloc[0]
        store._con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
    try:
        return _ingest(store, src, rejects_path=rejects_path, progress=progress, kind=kind, t0=t0)
    finally:
        if previous:
            store._con.execute(f"SET memory_limit = {sql_literal(previous)}")


def _ingest(
    store: Store, src: Source, *, rejects_path: str | Path | None, progress: bool, kind: str, t0: float
) -> IngestResult:
    import time

    with store.write() as con:
        if progress:
            con.execute("SET enable_progress_bar = true")
        batch_id = store.new_batch_id(con)
        con.execute(
            "INSERT INTO batches (batch_id, kind, source, started_at) VALUES (?, ?, ?, ?)",
            [batch_id, kind if src.kind != "api" else "api", src.name, datetime.now(UTC)],
        )
        if src.table is not None:
            con.register("_km_source", src.table)
            from_sql = "_km_source"
        else:
            assert src.relation_sql is not None
            from_sql = src.relation_sql
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {_stage_sql(src, from_sql)}")
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise IngestError(f"{src.name}: cannot be read ({first}). Nothing was written.") from None
        finally:
            if src.table is not None:
                con.unregister("_km_source")
        malformed = _csv_rejects(con) if src.kind == "csv" else []
        rows, good, distinct_ids = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE _reason IS NULL), count(DISTINCT event_id) FILTER (WHERE _reason IS NULL) "
            "FROM _stage"
        ).fetchone()  # type: ignore[misc]
        if distinct_ids < good:
            _number_identical_rows(con)
        events_empty = con.execute("SELECT NOT EXISTS (SELECT 1 FROM events)").fetchone()[0]  # type: ignore[index]
        accepted = _insert_with_derived(
            con, batch_id, dedupe_given="event_id" in src.columns and distinct_ids < good, check_existing=not events_empty
        )
        reasons_df = con.execute(
            "SELECT regexp_replace(_reason, ' .*', '') AS field, count(*) AS n FROM _stage "
            "WHERE _reason IS NOT NULL GROUP BY 1"
        ).df()
        rejected_df = con.execute(
            "SELECT _row, _line, _reason AS reason, customer_id, journey_id, _raw_ts AS ts, touchpoint, _raw_rating AS rating, "
            "rating_scale, _raw_value AS value, text FROM _stage WHERE _reason IS NOT NULL ORDER BY _row"
        ).df()
        for t in ("_stage",):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        rejected = len(rejected_df) + len(malformed)
        con.execute(
            "UPDATE batches SET finished_at = ?, rows_read = ?, accepted = ?, duplicates = ?, rejected = ? "
            "WHERE batch_id = ?",
            [datetime.now(UTC), rows + len(malformed), accepted, good - accepted, rejected, batch_id],
        )
        if progress:
            con.execute("SET enable_progress_bar = false")
    reasons = {str(r.field): int(r.n) for r in reasons_df.itertuples()}
    if malformed:
        reasons["malformed"] = len(malformed)
    out = _write_rejects(src, rejected_df, malformed, rejects_path) if rejected else None
    return IngestResult(
        source=src.name,
        batch_id=batch_id,
        rows=rows + len(malformed),
        accepted=accepted,
        duplicates=good - accepted,
        rejected=rejected,
        rejects_path=out,
        reasons=reasons,
        seconds=time.perf_counter() - t0,
    )


def _number_identical_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Rows whose content hash repeats in the batch get ':2', ':3'… in source order (exact duplicates kept)."""
    con.execute("""
        UPDATE _stage SET event_id = _stage.event_id || ':' || d.k
        FROM (
            SELECT _row, row_number() OVER (PARTITION BY event_id ORDER BY _row) AS k
            FROM _stage
            WHERE NOT _given AND _reason IS NULL AND event_id IN (
                SELECT event_id FROM _stage WHERE NOT _given AND _reason IS NULL GROUP BY event_id HAVING count(*) > 1
            )
        ) d
        WHERE _stage._row = d._row AND d.k > 1
    """)


def _insert_with_derived(
    con: duckdb.DuckDBPyConnection, batch_id: int, *, dedupe_given: bool, check_existing: bool
) -> int:
    """Insert the batch's good new rows, computing step / next_* / is_last for every journey they touch.

    Journeys that already have events in the store are re-derived whole: their old rows are taken out and
    written back with the new ones. Returns the number of events inserted.
    """
    fields = list(EVENT_FIELDS)
    rv = _valence_sql("rating", "rating_scale")
    where = ["_reason IS NULL"]
    if check_existing:
        where.append("event_id NOT IN (SELECT event_id FROM events)")
    qualify = ""
    if dedupe_given:
        dups = con.execute(
            "SELECT count(*) - count(DISTINCT event_id) FROM _stage WHERE _reason IS NULL"
        ).fetchone()[0]  # type: ignore[index]
        if dups:
            qualify = "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _row) = 1"
    new_rows = f"""
        SELECT {", ".join(fields)},
               {rv} AS rating_valence,
               {rv} AS valence,
               CASE WHEN rating IS NULL THEN 0.0 ELSE {RATING_CONFIDENCE} END AS confidence,
               CASE WHEN rating IS NULL THEN 'none' ELSE 'rating' END AS valence_source,
               text IS NULL AS text_scored,
               ({batch_id}::BIGINT << 32) + _row AS seq,
               {batch_id}::INTEGER AS batch_id
        FROM _stage WHERE {" AND ".join(where)} {qualify}
    """
    base_cols = [*fields, "rating_valence", "valence", "confidence", "valence_source", "text_scored", "seq", "batch_id"]
    union = f"({new_rows})"
    if check_existing:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _rows AS {new_rows}")
        n_old = con.execute(
            "SELECT count(*) FROM events WHERE journey_id IN (SELECT DISTINCT journey_id FROM _rows)"
        ).fetchone()[0]  # type: ignore[index]
        union = "_rows"
        if n_old:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _old AS
                SELECT {", ".join(base_cols)} FROM events WHERE journey_id IN (SELECT DISTINCT journey_id FROM _rows)
            """)
            con.execute("DELETE FROM events WHERE journey_id IN (SELECT DISTINCT journey_id FROM _rows)")
            union = f"(SELECT {', '.join(base_cols)} FROM _rows UNION ALL SELECT * FROM _old)"
    order = list(EVENT_COLUMNS)
    derived = {
        "step": f"CAST(row_number() OVER ({_DERIVE_WINDOW}) AS INTEGER)",
        "next_touchpoint": f"lead(touchpoint) OVER ({_DERIVE_WINDOW})",
        "next_ts": f"lead(ts) OVER ({_DERIVE_WINDOW})",
        "is_last": f"lead(ts) OVER ({_DERIVE_WINDOW}) IS NULL",
    }
    select = ", ".join(derived.get(c, c) for c in order)
    n_old_rows = con.execute("SELECT count(*) FROM _old").fetchone()[0] if union.startswith("(SELECT") else 0  # type: ignore[index]
    written = con.execute(f"INSERT INTO events ({', '.join(order)}) SELECT {select} FROM {union}").fetchone()[0]  # type: ignore[index]
    con.execute("DROP TABLE IF EXISTS _rows")
    con.execute("DROP TABLE IF EXISTS _old")
    return int(written - n_old_rows)


def _csv_rejects(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """Structurally malformed CSV lines that DuckDB's reader skipped: (line, error)."""
    try:
        rows = con.execute("SELECT line, error_message FROM reject_errors ORDER BY line").fetchall()
        con.execute("DELETE FROM reject_errors")
        con.execute("DELETE FROM reject_scans")
    except duckdb.Error:
        return []
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
    if path is None:
        stem = Path(src.name).name if src.kind not in ("api", "frame") else src.kind
        for suffix in (".gz", ".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".xes", ".tsv"):
            stem = stem.removesuffix(suffix)
        path = Path.cwd() / f"{stem}.rejects.csv"
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rejects-", suffix=".csv")
    os.close(fd)
    out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return str(path)


def ingest_events_frame(
    store: Store, df: pd.DataFrame, *, source: str = "frame", rejects_path: str | Path | None = None
) -> IngestResult:
    """Ingest a pandas DataFrame of events (contract columns) into the store."""
    return ingest_source(store, frame_source(df, name=source), rejects_path=rejects_path)


def ingest_outcomes_frame(
    store: Store, df: pd.DataFrame, *, key: str = "customer_id", source: str = "frame", attributes_only: bool = False
) -> dict[str, Any]:
    """Upsert an outcome table: numeric and yes/no columns become outcomes, text columns attributes.

    With ``attributes_only`` every column is stored as an attribute (a customer table: segment, tier, tenure).

    Returns {"rows", "outcomes": [...], "attributes": [...]} ; re-ingesting the same table changes nothing.
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
    if df[key].isna().any():
        raise IngestError(f"{source}: {int(df[key].isna().sum())} rows have an empty {key}; fix them and retry.")
    keys = df[key].astype(str)
    if keys.duplicated().any():
        dup = keys[keys.duplicated()].iloc[0]
        raise IngestError(f"{source}: {key} {dup!r} appears more than once; an outcome table has one row per {key}.")
    long_parts: list[pd.DataFrame] = []
    attr_parts: list[pd.DataFrame] = []
    defs: list[tuple[str, str]] = []
    for col in df.columns:
        if col == key:
            continue
        values, dtype = (df[col], None) if attributes_only else _outcome_values(df[col])
        if dtype is None:
            attr_parts.append(pd.DataFrame({"key": keys, "name": col, "value": df[col].astype("string")}))
        else:
            defs.append((col, dtype))
            long_parts.append(pd.DataFrame({"key": keys, "name": col, "value": values}))
    with store.write() as con:
        batch_id = store.new_batch_id(con)
        con.execute(
            "INSERT INTO batches (batch_id, kind, source, started_at, finished_at, rows_read, accepted, duplicates, rejected) "
            "VALUES (?, 'outcomes', ?, ?, ?, ?, ?, 0, 0)",
            [batch_id, source, datetime.now(UTC), datetime.now(UTC), len(df), len(df)],
        )
        for name, dtype in defs:
            con.execute(
                "INSERT OR REPLACE INTO outcome_defs VALUES (?, ?, ?)", [name, key, dtype]
            )
        if long_parts:
            long = pd.concat(long_parts, ignore_index=True)
            long["value"] = long["value"].astype("float64")
            con.register("_km_outcomes", long)
            con.execute(
                f"INSERT OR REPLACE INTO outcomes SELECT {sql_literal(key)}, key, name, value, {batch_id} FROM _km_outcomes"
            )
            con.unregister("_km_outcomes")
        if attr_parts:
            attrs = pd.concat(attr_parts, ignore_index=True)
            attrs["value"] = attrs["value"].astype(object).where(attrs["value"].notna(), None)
            con.register("_km_attrs", attrs)
            con.execute(f"INSERT OR REPLACE INTO attributes SELECT {sql_literal(key)}, key, name, value FROM _km_attrs")
            con.unregister("_km_attrs")
    return {"rows": len(df), "outcomes": [d[0] for d in defs], "attributes": [p["name"].iloc[0] for p in attr_parts if len(p)]}


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
