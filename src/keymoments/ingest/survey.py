"""Wide survey tables (one row per respondent, one column per touchpoint rating) → events + outcomes.

Each rated cell becomes one event: ``customer_id`` = ``journey_id`` = the respondent id, ``touchpoint`` =
the column name, ``rating`` = the cell on ``--scale``, ``event_id`` = ``survey:<file>:<id>:<touchpoint>``
(so re-ingesting the survey adds nothing). Cells equal to ``--na-value`` or blank mean "not rated" and
produce no event. Non-numeric or out-of-scale cells are rejected row by row with their line number.
The events of one respondent keep the order of the touchpoint columns. Outcome columns become the outcome
table keyed by ``customer_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from keymoments.events import RATING_SCALES, did_you_mean
from keymoments.exceptions import IngestError, InvalidParameterError, MissingColumnError
from keymoments.ingest.files import _reader_sql, _time_options
from keymoments.ingest.source import Source, resolve_columns, suffix_kind
from keymoments.ingest.timestamps import TsRange
from keymoments.quoting import MAX_NAME_LENGTH, quote_ident, quote_literal

__all__ = ["SurveyBatch", "read_survey"]


class SurveyBatch:
    """The events Source and the outcome frame made from one survey file."""

    def __init__(self, events: Source, outcomes: pd.DataFrame | None, respondents: int) -> None:
        self.events = events
        self.outcomes = outcomes
        self.respondents = respondents


def read_survey(
    path: str | Path,
    *,
    id_col: str,
    touchpoints: list[str],
    scale: str,
    outcome_cols: list[str] | None = None,
    na_value: str | None = None,
    ts_col: str | None = None,
    date: str | None = None,
    ts_format: str | list[str] | tuple[str, ...] | None = None,
    ts_range: str | TsRange | None = None,
    constants: dict[str, str] | list[str] | None = None,
    encoding: str | None = None,
) -> SurveyBatch:
    """Reshape a wide survey file into an events Source (long) and an outcomes frame.

    ``ts_format``, ``ts_range`` and ``constants`` are :func:`~keymoments.ingest.files.read_source`'s (for the
    response time of ``ts_col`` or ``date``, and ``--set`` fields: ``channel`` replaces the default ``survey``;
    the fields the reshape makes cannot be set).
    """
    path = Path(path)
    options = _time_options(ts_format, ts_range, constants)
    made = {"event_id", "customer_id", "journey_id", "touchpoint", "rating", "rating_scale", *(["ts"] if ts_col or date else [])}
    clash = sorted(made & set(options["constants"]))
    if clash:
        raise InvalidParameterError(
            f"--set {clash[0]}=… : a survey's {clash[0]} comes from "
            + {"ts": "--ts-col or --date", "rating_scale": "--scale", "touchpoint": "--touchpoints"}.get(clash[0], "its rows")
            + "; give it there."
        )
    channel = "" if "channel" in options["constants"] else ", 'survey' AS channel"
    if not path.exists():
        raise IngestError(f"{path}: no such file.")
    if scale not in RATING_SCALES:
        raise InvalidParameterError(
            f"--scale must be one of {sorted(RATING_SCALES)}; got {scale!r}.{did_you_mean(scale, RATING_SCALES)}"
        )
    touchpoints = [t.strip() for t in touchpoints if t.strip()]
    if not touchpoints:
        raise InvalidParameterError("--touchpoints needs at least one column name, e.g. --touchpoints 'check-in,flight'.")
    kind = suffix_kind(path)
    if kind not in ("csv", "parquet", "jsonl"):
        raise IngestError(f"{path}: a survey must be CSV, Parquet or JSON Lines.")
    reader = _reader_sql(path, kind, encoding=encoding)
    con = duckdb.connect()
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        wanted = [id_col, *touchpoints, *(outcome_cols or []), *([ts_col] if ts_col else [])]
        for c in wanted:
            if c not in cols:
                raise MissingColumnError(
                    f"{path}: column {c!r} is missing.{did_you_mean(c, cols)} The survey's columns are {cols}."
                )
        long = [c for c in wanted if len(c) > MAX_NAME_LENGTH]
        if long:
            raise IngestError(f"{path}: column names may be at most {MAX_NAME_LENGTH} characters; "
                              f"{long[0][:40]!r}… has {len(long[0])}.")  # fmt: skip
        when = quote_ident(ts_col) if ts_col else quote_literal(date or datetime.now(UTC).date().isoformat())
        if "ts" in options["constants"]:  # --set ts=…: the staging reads it from the constant
            when = "NULL"
        na = f" AND trim(CAST(v AS VARCHAR)) <> {quote_literal(str(na_value))}" if na_value is not None else ""
        stem = quote_literal(path.name)
        tp_list = ", ".join(quote_ident(t) for t in touchpoints)
        order = "CASE tp " + " ".join(f"WHEN {quote_literal(t)} THEN {i}" for i, t in enumerate(touchpoints)) + " END"
        tp_cols = ", ".join(f"CAST({quote_ident(t)} AS VARCHAR) AS {quote_ident(t)}" for t in touchpoints)
        sql = f"""
            WITH src AS (
                SELECT row_number() OVER () + 1 AS _line, CAST({quote_ident(id_col)} AS VARCHAR) AS rid,
                       CAST({when} AS VARCHAR) AS ts, {tp_cols}
                FROM {reader}
            ),
            long AS (UNPIVOT src ON {tp_list} INTO NAME tp VALUE v)
            SELECT 'survey:' || {stem} || ':' || rid || ':' || tp AS event_id, rid AS customer_id, rid AS journey_id,
                   ts, tp AS touchpoint, trim(v) AS rating, {quote_literal(scale)} AS rating_scale{channel},
                   CAST(_line AS BIGINT) AS _line
            FROM long
            WHERE v IS NOT NULL AND trim(CAST(v AS VARCHAR)) <> '' {na}
            ORDER BY _line, {order}
        """
        table: pa.Table = con.sql(sql).to_arrow_table()
        respondents = int(con.execute(f"SELECT count(*) FROM {reader}").fetchone()[0])  # type: ignore[index]
        outcomes = None
        if outcome_cols:
            outcomes = con.execute(
                f"SELECT CAST({quote_ident(id_col)} AS VARCHAR) AS customer_id, "
                + ", ".join(quote_ident(c) for c in outcome_cols)
                + f" FROM {reader}"
            ).df()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]}).") from None
    finally:
        con.close()
    types = {f.name: str(f.type) for f in table.schema}
    available = [c for c in types if c != "_line" and not (c == "ts" and "ts" in options["constants"])]
    columns, _extra = resolve_columns(str(path), available, None, constants=options["constants"])
    source = Source(
        name=str(path),
        kind="survey",
        columns=columns,
        source_types={k: ("VARCHAR" if v == "string" else v.upper()) for k, v in types.items()},
        table=table,
        extra=[],
        first_line=2,
        position_name="line",
        line_column="_line",
        **options,
    )
    return SurveyBatch(source, outcomes, respondents)
