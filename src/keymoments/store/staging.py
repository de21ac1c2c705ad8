"""The staging SQL: one pass over a :class:`~keymoments.ingest.source.Source` that normalises each row and says
what is wrong with it.

Each row comes out with the contract's fields normalised (strings trimmed, empty strings as NULL, timestamps
in UTC, ratings and values as numbers, extra columns folded into ``attrs``), its ``event_id`` (given, or the md5
of its content) and ``_reason``: NULL for a good row, else the first rule it breaks, in words. The raw text of
``ts``, ``rating`` and ``value`` is kept only for rejected rows (the rejects file shows what was sent), so good
rows cost no more than their normalised fields.
"""

from __future__ import annotations

from datetime import date

from keymoments.events import EVENT_FIELDS, RATING_SCALES
from keymoments.ingest.files import sql_literal
from keymoments.ingest.source import Source
from keymoments.ingest.timestamps import ANY_TIME, EPOCH_UNITS, TsRange
from keymoments.quoting import quote_ident

__all__ = ["CONTENT_FIELDS", "OUTSIDE_WINDOW", "stage_sql", "valence_sql"]

_STRING_FIELDS = [f for f, t in EVENT_FIELDS.items() if t == "VARCHAR" and f != "event_id"]
_NUMERIC_TYPES = {"DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "REAL", "HUGEINT", "UBIGINT", "TINYINT"}

#: the fields hashed (in this order, after customer_id, journey_id and ts) into an event's content id
CONTENT_FIELDS = (
    "outcome", "rating", "rating_scale", "text", "value", "employee_id", "location_id", "channel", "stage",
)  # fmt: skip

#: timestamp formats tried, in order, after ISO-8601 and numbers (see keymoments.ingest.timestamps)
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
]
#: written-out dates, tried after an ordinal suffix is dropped ("19th November 2023", "Sunday, 19 Nov 2023")
_TS_FORMATS_WORDS = [
    "%d %B %Y", "%d %B %Y %H:%M", "%d %B %Y %H:%M:%S", "%d %b %Y", "%d %b %Y %H:%M", "%d %b %Y %H:%M:%S", "%B %d, %Y", "%B %d %Y", "%b %d %Y",
    "%B %d, %Y %H:%M", "%b %d, %Y %H:%M", "%A, %d %B %Y", "%A %d %B %Y", "%a, %d %b %Y", "%a %d %b %Y", "%d-%b-%Y",
    "%d %B, %Y", "%d %b, %Y", "%A, %B %d, %Y", "%a, %b %d, %Y",
]  # fmt: skip


def _q(col: str) -> str:
    return quote_ident(col)


def _is_numeric(typ: str) -> bool:
    t = typ.upper()
    return t in _NUMERIC_TYPES or t.startswith("DECIMAL")


def _is_integer(typ: str) -> bool:
    return typ.upper() in ("BIGINT", "INTEGER", "SMALLINT", "HUGEINT", "UBIGINT", "TINYINT", "UINTEGER", "USMALLINT")


def _naive_utc(x: str) -> str:
    """A naive TIMESTAMP as TIMESTAMPTZ in UTC."""
    return f"CAST({x} AS TIMESTAMPTZ)"


def _ts_expr(v: str, typ: str, formats: tuple[str, ...] = ()) -> str:
    """The SQL value ``v`` (a column or a literal) as TIMESTAMPTZ: native timestamps as UTC, numbers as
    ``YYYYMMDD`` dates or epochs, text parsed; NULL if it cannot be read (see keymoments.ingest.timestamps).

    A naive timestamp is taken as UTC by its epoch microseconds (``make_timestamptz``): the same instant a cast
    gives in the store's UTC session, without the time-zone library's per-row work.
    """
    t = typ.upper()
    if "TIME ZONE" in t or t == "TIMESTAMPTZ":
        return v
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"make_timestamptz(epoch_us(CAST({v} AS TIMESTAMP)))"
    if formats:
        return _formatted_ts(v, t, formats)
    if _is_numeric(t):
        return _number_ts(f"CAST({v} AS DOUBLE)")
    text = v if t == "VARCHAR" else f"CAST({v} AS VARCHAR)"
    s = f"trim({text})"
    tz = ", ".join(sql_literal(f) for f in _TS_FORMATS_TZ)
    naive = ", ".join(sql_literal(f) for f in _TS_FORMATS_NAIVE)
    words = ", ".join(sql_literal(f) for f in _TS_FORMATS_WORDS)
    # 'YYYY-MM-DD HH:MM:SS' (or with a T), the commonest export, has no room for an offset: it is read as a naive
    # timestamp in UTC, which skips the time-zone parser. The cast tolerates surrounding spaces, so only the rarer
    # forms need the trimmed text, and they sit inside a CASE: DuckDB computes a subexpression used several
    # times (the trim) for every row unless it is in a CASE branch (measured: 1.6 s of CPU on 10M rows).
    plain = f"CASE WHEN length({text}) = 19 AND {text}[17] = ':' THEN make_timestamptz(epoch_us(TRY_CAST({text} AS TIMESTAMP))) END"
    ordinal = f"regexp_replace({s}, '([0-9])(st|nd|rd|th)\\b', '\\1', 'gi')"
    rare = (
        f"COALESCE(CASE WHEN regexp_full_match({s}, '-?[0-9]+(\\.[0-9]+)?') THEN {_number_ts(f'TRY_CAST({s} AS DOUBLE)')} END, "
        f"try_strptime({s}, [{tz}]), {_naive_utc(f'try_strptime({s}, [{naive}])')}, "
        f"{_naive_utc(f'try_strptime({ordinal}, [{words}])')})"
    )
    return f"COALESCE({plain}, TRY_CAST({text} AS TIMESTAMPTZ), CASE WHEN {text} IS NOT NULL THEN {rare} END)"


def _formatted_ts(v: str, typ: str, formats: tuple[str, ...]) -> str:
    """``v`` read with the user's ``--ts-format``: strptime formats (those with %z or %Z give the offset), or one
    epoch unit."""
    if formats[0] in EPOCH_UNITS:
        x = f"CAST({v} AS DOUBLE)" if _is_numeric(typ) else f"TRY_CAST(trim(CAST({v} AS VARCHAR)) AS DOUBLE)"
        return f"try(to_timestamp({x} / {EPOCH_UNITS[formats[0]]!r}))"
    if _is_integer(typ):
        text = f"CAST({v} AS VARCHAR)"
    elif _is_numeric(typ):  # 19970101.0 as the digits of the number
        text = f"CAST(CASE WHEN {v} = trunc({v}) THEN CAST(CAST({v} AS HUGEINT) AS VARCHAR) ELSE CAST({v} AS VARCHAR) END AS VARCHAR)"
    else:
        text = f"trim(CAST({v} AS VARCHAR))"
    zoned = [f for f in formats if "%z" in f or "%Z" in f]
    naive = [f for f in formats if f not in zoned]
    parts = []
    if zoned:
        parts.append(f"try_strptime({text}, [{', '.join(sql_literal(f) for f in zoned)}])")
    if naive:
        parts.append(_naive_utc(f"try_strptime({text}, [{', '.join(sql_literal(f) for f in naive)}])"))
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"


def _number_ts(x: str) -> str:
    """A number as a time: 8 integral digits are a date YYYYMMDD, 14 are YYYYMMDDHHMMSS (NULL when not a valid
    one); any other number is an epoch in the one unit its magnitude fits (seconds below 1e10, milliseconds from
    1e11, microseconds from 1e14, nanoseconds from 1e17 to 1e19); NULL in the gaps between, which fit none."""
    digits = f"CAST(CAST({x} AS HUGEINT) AS VARCHAR)"
    return f"""CASE
        WHEN {x} >= 10000101 AND {x} < 100000000 AND {x} = trunc({x}) THEN {_naive_utc(f"try_strptime({digits}, '%Y%m%d')")}
        WHEN {x} >= 10000101000000 AND {x} < 100000000000000 AND {x} = trunc({x}) THEN {_naive_utc(f"try_strptime({digits}, '%Y%m%d%H%M%S')")}
        WHEN abs({x}) < 1e10 THEN to_timestamp({x})
        WHEN abs({x}) >= 1e11 AND abs({x}) < 1e13 THEN to_timestamp({x} / 1e3)
        WHEN abs({x}) >= 1e14 AND abs({x}) < 1e16 THEN to_timestamp({x} / 1e6)
        WHEN abs({x}) >= 1e17 AND abs({x}) < 1e19 THEN to_timestamp({x} / 1e9)
    END"""


def _double(v: float) -> str:
    """A DOUBLE literal (small expressions cost less to set up per batch than DECIMAL ones cast per row)."""
    return f"CAST({float(v)!r} AS DOUBLE)"


def valence_sql(rating: str, scale: str) -> str:
    """The rating mapped to [-1, 1] by its scale (events.RATING_SCALES); NULL without a rating."""
    parts = []
    for s in RATING_SCALES.values():
        lin = f"({_double(2)} * ({rating} - {_double(s.low)}) / {_double(s.high - s.low)} - {_double(1)})"
        parts.append(f"WHEN {sql_literal(s.name)} THEN {'-' if s.inverted else ''}{lin}")
    return f"CASE {scale} " + " ".join(parts) + " END"


def _range_check_sql(rating: str, scale: str) -> str:
    parts = [
        f"WHEN {sql_literal(s.name)} THEN {rating} BETWEEN {_double(s.low)} AND {_double(s.high)}"
        for s in RATING_SCALES.values()
    ]
    return f"CASE {scale} " + " ".join(parts) + " ELSE false END"


def _raw(col: str) -> str:
    """A source value as the text it was sent as: trimmed, NULL when empty."""
    return f"NULLIF(trim(CAST({col} AS VARCHAR)), '')"


#: the source columns kept as they came, for reasons and the rejects file (raw text is made only when needed)
_KEPT = ("ts", "rating", "value", "attrs")


#: what every reason of a timestamp outside the batch's window says (the writer finds those rows by it)
OUTSIDE_WINDOW = ") is outside the window "


def _day_sql(day: date) -> str:
    return f"CAST({sql_literal(day.isoformat() + ' 00:00:00+00')} AS TIMESTAMPTZ)"


def _after_sql(day: date) -> str:
    """The first instant after ``day`` (10000-01-01 after 9999-12-31, which Python's dates cannot hold)."""
    after = "10000-01-01" if day >= date(9999, 12, 31) else date.fromordinal(day.toordinal() + 1).isoformat()
    return f"CAST({sql_literal(after + ' 00:00:00+00')} AS TIMESTAMPTZ)"


def _ts_reasons(src: Source, raw_ts: str) -> str:
    """The CASE branches about ``ts``: empty, unreadable, not a finite time in years 1 to 9999, outside the
    batch's window (two comparisons per row with constants; the text is built only for the rows that fail)."""
    if src.ts_formats:
        unread = f"'ts ' || {raw_ts} || ' does not match --ts-format ' || {sql_literal(' or '.join(src.ts_formats))}"
    else:
        unread = (
            f"'ts ' || {raw_ts} || ' is not a timestamp (use ISO-8601 such as 2024-05-01T10:00:00Z, epoch seconds, "
            "or say its form with --ts-format)'"
        )
    hard = f"ts >= {_day_sql(ANY_TIME.first)} AND ts < {_after_sql(ANY_TIME.last)}"
    out = [
        f"WHEN ts IS NULL AND {raw_ts} IS NULL THEN 'ts is empty'",
        f"WHEN ts IS NULL THEN {unread}",
        f"WHEN NOT ({hard}) THEN 'ts ' || {raw_ts} || CASE WHEN isfinite(ts) THEN ' is outside the years 1 to 9999' "
        "ELSE ' is not a finite time' END",
    ]
    window: TsRange = src.ts_range
    if not window.is_any:
        read_as = "strftime(ts, '%Y-%m-%d %H:%M:%S')"
        out.append(
            f"WHEN NOT (ts >= {_day_sql(window.first)} AND ts < {_after_sql(window.last)}) THEN 'ts ' || {raw_ts} || "
            f"' (read as ' || {read_as} || {sql_literal(OUTSIDE_WINDOW + window.describe())} || "
            "'; give its form with ts_format if it is another kind of date, or allow it with ts_range=any'"
        )
    return "\n        ".join(out)


def _reason_sql(src: Source) -> str:
    """The first contract rule a normalised row breaks, in words; NULL for a good row.

    The raw text of a value (``_src_*``) is only computed in the branches that need it, for the rows that
    reach them: a good row never pays for it.
    """
    # a CASE, not IN: DuckDB plans an IN list as a join, and then does not keep the file's order
    known_scale = "CASE rating_scale " + " ".join(f"WHEN {sql_literal(s)} THEN true" for s in RATING_SCALES) + " ELSE false END"
    raw_ts, raw_rating, raw_value = _raw("_src_ts"), _raw("_src_rating"), _raw("_src_value")
    return f"""CASE
        WHEN customer_id IS NULL THEN 'customer_id is empty'
        {_ts_reasons(src, raw_ts)}
        WHEN touchpoint IS NULL AND text IS NULL THEN 'touchpoint is empty and there is no text to infer it from'
        WHEN rating IS NULL AND {raw_rating} IS NOT NULL THEN 'rating ' || {raw_rating} || ' is not a number'
        WHEN rating IS NOT NULL AND rating_scale IS NULL THEN 'rating given without rating_scale (add the column or pass --rating-scale)'
        WHEN rating_scale IS NOT NULL AND NOT {known_scale} THEN 'rating_scale ' || rating_scale || ' is unknown; use one of {", ".join(RATING_SCALES)}'
        WHEN rating IS NOT NULL AND NOT {_range_check_sql("rating", "rating_scale")} THEN 'rating ' || {raw_rating} || ' is outside the ' || rating_scale || ' scale'
        WHEN value IS NULL AND {raw_value} IS NOT NULL THEN 'value ' || {raw_value} || ' is not a number'
        WHEN (attrs IS NULL OR json_type(attrs) <> 'OBJECT') AND {_raw("_src_attrs")} IS NOT NULL THEN 'attrs is not a JSON object'
    END"""


def _normalise_sql(src: Source) -> list[str]:
    """The select list that maps the source's columns onto the contract's fields, plus ``_src_*``: the
    source's own ts, rating, value and attrs, untouched."""
    cols, types, constants = src.columns, src.source_types, src.constants

    def raw(f: str) -> str:
        if f in constants:
            return _raw(sql_literal(constants[f]))
        return _raw(_q(cols[f])) if f in cols else "NULL::VARCHAR"

    def source(f: str) -> str:
        """The source's own value of field ``f``, untouched."""
        if f in constants:
            return sql_literal(constants[f])
        return _q(cols[f]) if f in cols else "NULL::VARCHAR"

    sel = [f"{raw('event_id')} AS _given_id"]
    for f in _STRING_FIELDS:
        if f == "journey_id":  # a journey defaults to the customer
            sel.append(f"COALESCE({raw('journey_id')}, {raw('customer_id')}) AS journey_id")
        elif f == "rating_scale":
            default = sql_literal(src.default_rating_scale) if src.default_rating_scale else "NULL"
            sel.append(f"COALESCE(lower({raw('rating_scale')}), {default}) AS rating_scale")
        else:
            sel.append(f"{raw(f)} AS {f}")
    if "ts" in constants:
        sel.append(f"{_ts_expr(sql_literal(constants['ts']), 'VARCHAR', src.ts_formats)} AS ts")
    elif "ts" in cols:
        sel.append(f"{_ts_expr(_q(cols['ts']), types[cols['ts']], src.ts_formats)} AS ts")
    else:
        sel.append("NULL::TIMESTAMPTZ AS ts")
    for f in ("rating", "value"):
        if f in cols and _is_numeric(types[cols[f]]):
            sel.append(f"CAST({_q(cols[f])} AS DOUBLE) AS {f}")
        else:
            sel.append(f"TRY_CAST({raw(f)} AS DOUBLE) AS {f}")
    extra_json = None
    extra = [f"{_q(c)} := {_q(c)}" for c in src.extra]
    extra += [f"{_q(k)} := {sql_literal(v)}" for k, v in constants.items() if k not in EVENT_FIELDS]
    if extra:
        extra_json = "to_json(struct_pack(" + ", ".join(extra) + "))"
    if "attrs" in cols:
        base = f"TRY_CAST({raw('attrs')} AS JSON)"
        sel.append(f"json_merge_patch({extra_json}, {base}) AS attrs" if extra_json else f"{base} AS attrs")
    else:
        sel.append(f"CAST({extra_json} AS JSON) AS attrs" if extra_json else "NULL::JSON AS attrs")
    sel += [f"{source(f)} AS _src_{f}" for f in _KEPT]
    return sel


def stage_sql(src: Source, from_sql: str, *, request: str | None = None, position: str | None = None) -> str:
    """SELECT one staged row per source row.

    Columns: ``_req`` and ``_pos`` when ``request`` and ``position`` give their SQL (a row's batch within a
    group, and its 1-based position in its batch), ``_line`` (a line number the source carries, else NULL), the contract's fields normalised, ``event_id``, ``_given`` (the id was given, not a
    content hash), ``_dup`` (false here; the writer marks copies of events already in the batch or the store),
    ``_reason`` and, for rejected rows only, ``_raw_ts``, ``_raw_rating``, ``_raw_value``.

    The statement is projections only: DuckDB keeps the source's order when it writes it to a table, so a
    source without a position column can take its positions from the table's row ids (the writer checks).
    The content hash is the recipe every store has used: md5 over the fields joined by the unit separator.
    """
    content = ", ".join(
        ["customer_id", "coalesce(journey_id, '')", "CAST(epoch_us(ts) AS VARCHAR)", "coalesce(touchpoint, '')"]
        + [f"coalesce(CAST({f} AS VARCHAR), '')" for f in CONTENT_FIELDS]
    )
    line = f"{_q(src.line_column)} AS _line" if src.line_column else "NULL::BIGINT AS _line"
    given = {"_req": request, "_pos": position}
    inner = [f"{sql} AS {name}" for name, sql in given.items() if sql] + [line]
    outer = [name for name, sql in given.items() if sql] + ["_line"]
    fields = [f for f in EVENT_FIELDS if f != "event_id"]
    raw_kept = ", ".join(f"CASE WHEN _reason IS NOT NULL THEN {_raw(f'_src_{f}')} END AS _raw_{f}" for f in _KEPT[:3])
    return f"""
    SELECT {", ".join(outer)}, {", ".join(fields)},
           COALESCE(_given_id, md5(concat_ws(chr(31), {content}))) AS event_id,
           _given_id IS NOT NULL AS _given, false AS _dup, _reason, {raw_kept}
    FROM (SELECT *, {_reason_sql(src)} AS _reason
          FROM (SELECT {", ".join(inner + _normalise_sql(src))} FROM {from_sql}))
    """
