"""A :class:`Source`: what to read and how its columns map onto the event contract.

Readers in this package look at a file (or a batch of records), check it against the contract and describe
it as a Source; the store executes the read, the validation and the write in one transaction
(:func:`keymoments.store.writer.ingest_source`). Nothing here writes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from keymoments.events import EVENT_FIELDS, REQUIRED_FIELDS, did_you_mean
from keymoments.exceptions import InvalidParameterError, MissingColumnError
from keymoments.ingest.timestamps import TsRange, plausible_range

__all__ = [
    "SYNONYMS", "Mapping", "Source", "parse_constants", "parse_mapping", "parse_share", "resolve_columns", "suffix_kind",
]  # fmt: skip

#: Column names often used for contract fields; used only to suggest a --map, never applied silently.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "ts": ("timestamp", "time", "date", "datetime", "created_at", "time:timestamp", "event_time", "occurred_at"),
    "customer_id": ("customer", "customerid", "client_id", "user_id", "user", "account_id", "author_id", "respondent"),
    "journey_id": ("case", "case_id", "case:concept:name", "ticket_id", "trip_id", "booking_id", "session_id"),
    "touchpoint": ("activity", "concept:name", "event", "step", "action", "interaction", "stage_name"),
    "employee_id": ("resource", "org:resource", "agent", "agent_id", "staff_id"),
    "text": ("comment", "feedback", "message", "review", "body", "content", "verbatim"),
    "rating": ("score", "stars", "csat", "grade"),
}


@dataclass
class Source:
    """A readable input plus the mapping of contract fields to its columns.

    Exactly one of ``relation_sql`` (a DuckDB table function call, e.g. ``read_parquet('x.parquet')``) and
    ``table`` (an in-memory Arrow table) is set. ``columns`` maps each present contract field to the source
    column that holds it; ``extra`` lists the source columns that go into ``attrs``.
    """

    name: str
    kind: str
    columns: dict[str, str]
    source_types: dict[str, str]
    relation_sql: str | None = None
    table: pa.Table | None = None
    extra: list[str] = field(default_factory=list)
    #: line number of the first data row (2 for a CSV with a header line, 1 for JSON Lines)
    first_line: int = 1
    #: 'line' for text formats, 'row' for Parquet / Arrow, 'event' for XES
    position_name: str = "line"
    #: a fixed rating_scale for every row, when the input has none (e.g. a survey's --scale)
    default_rating_scale: str | None = None
    #: a column that holds each row's line number in the original file (e.g. a reshaped survey)
    line_column: str | None = None
    #: how ``ts`` is written, when the user said (strptime formats, or one epoch unit: see ingest.timestamps)
    ts_formats: tuple[str, ...] = ()
    #: the days the batch's timestamps must lie in
    ts_range: TsRange = field(default_factory=plausible_range)
    #: what a timestamp outside ``ts_range`` does: "refuse" the whole batch (files, frames) or "reject" its row
    #: (the REST API, where each event stands alone)
    ts_outside: str = "refuse"
    #: one value for every row (``--set field=value``): contract fields, or else keys of ``attrs``
    constants: dict[str, str] = field(default_factory=dict)


Mapping = dict[str, str] | list[tuple[str, str]]


def _pairs(mapping: Mapping | None) -> list[tuple[str, str]]:
    if not mapping:
        return []
    return list(mapping.items()) if isinstance(mapping, dict) else list(mapping)


def parse_mapping(items: list[str] | None) -> list[tuple[str, str]]:
    """Parse ``--map source=field`` items into (source, field) pairs; one source may feed several fields."""
    mapping: list[tuple[str, str]] = []
    for item in items or []:
        if "=" not in item:
            raise InvalidParameterError(f"--map takes source=field (e.g. --map timestamp=ts); got {item!r}.")
        src, dst = (s.strip() for s in item.split("=", 1))
        if dst not in EVENT_FIELDS:
            raise InvalidParameterError(
                f"--map {item!r}: {dst!r} is not an event field; fields are {list(EVENT_FIELDS)}."
                f"{did_you_mean(dst, EVENT_FIELDS)}"
            )
        mapping.append((src, dst))
    return mapping


def parse_constants(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """Parse ``--set field=value`` items: a contract field (``touchpoint=purchase``, ``channel=store``) or any
    other name, which becomes a key of every event's ``attrs``."""
    out: dict[str, str] = {}
    pairs = list(items.items()) if isinstance(items, dict) else [tuple(i.split("=", 1)) if "=" in i else (i,) for i in items or []]
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidParameterError(f"--set takes field=value (e.g. --set touchpoint=purchase); got {pair[0]!r}.")
        name, value = str(pair[0]).strip(), str(pair[1]).strip()
        if not name:
            raise InvalidParameterError(f"--set {name}={value}: the field name is empty.")
        if name in ("event_id", "attrs"):
            raise InvalidParameterError(
                f"--set cannot give {name}: "
                + ("one id for every row would make them one event." if name == "event_id" else "set its keys one by one (--set region=north).")
            )
        if name in out:
            raise InvalidParameterError(f"--set gives {name!r} twice.")
        out[name] = value
    return out


def parse_share(text: str | float | None, option: str = "--max-rejects") -> float | None:
    """A share as a fraction: ``10%``, ``0.1``; ``None`` or ``none`` for no limit."""
    if text is None:
        return None
    if isinstance(text, int | float):
        value = float(text)
    else:
        t = text.strip().lower()
        if t in ("none", "any", "off"):
            return None
        try:
            value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
        except ValueError:
            raise InvalidParameterError(f"{option} takes a share such as 10% or 0.1; got {text!r}.") from None
    if not 0 <= value <= 1:
        raise InvalidParameterError(f"{option} must be between 0% and 100%; got {text!r}.")
    return value


def resolve_columns(
    name: str,
    available: list[str],
    mapping: Mapping | None,
    *,
    required: tuple[str, ...] = REQUIRED_FIELDS,
    constants: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Match the input's columns to contract fields; return ({field: column}, extra columns).

    A field in ``constants`` (``--set``) needs no column, and may not have one as well.
    Raises MissingColumnError naming what is missing, the closest column and the --map that fixes it.
    """
    constants = constants or {}
    pairs = _pairs(mapping)
    for src, _dst in pairs:
        if src not in available:
            raise MissingColumnError(
                f"{name}: --map names column {src!r}, which the input does not have; its columns are "
                f"{available}.{did_you_mean(src, available)}"
            )
    columns: dict[str, str] = {dst: src for src, dst in pairs}
    mapped_sources = {src for src, _ in pairs}
    for col in available:
        if col in EVENT_FIELDS and col not in columns and col not in mapped_sources:
            columns[col] = col
    for field_name in constants:
        clash = columns.get(field_name) or (field_name if field_name in available else None)
        if clash is not None:
            raise InvalidParameterError(
                f"{name}: --set {field_name}=… gives a value the input's column {clash!r} already holds; "
                "drop one of them (or --map the column to another field)."
            )
    need = list(required)
    if "touchpoint" in need and "touchpoint" not in columns and "touchpoint" not in constants and "text" in columns:
        need.remove("touchpoint")  # text-only events: the touchpoint is inferred by tagging
    missing = [f for f in need if f not in columns and f not in constants]
    if missing:
        hints = []
        for f in missing:
            lowered = {c.lower(): c for c in available}
            guess = next((lowered[s] for s in SYNONYMS.get(f, ()) if s in lowered), None)
            if guess is None:
                close = did_you_mean(f, [c for c in available if c not in columns.values()])
                guess = close.split("'")[1] if close else None
            if guess is not None:
                hints.append(f"column {f!r} is missing; did you mean {guess!r}? Use --map {guess}={f}")
            else:
                hints.append(f"column {f!r} is missing; add it, use --map SOURCE={f}, or give one value for every row with --set {f}=VALUE")
        raise MissingColumnError(f"{name}: " + "; ".join(hints) + f". The input's columns are {available}.")
    used = set(columns.values())
    extra = [c for c in available if c not in used]
    return columns, extra


def suffix_kind(path: Path) -> str:
    """The format of a file from its name: csv, jsonl, parquet or xes."""
    name = path.name.lower()
    for suffixes, kind in (
        ((".csv", ".csv.gz", ".tsv", ".txt"), "csv"),
        ((".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz"), "jsonl"),
        ((".parquet", ".pq"), "parquet"),
        ((".xes", ".xes.gz"), "xes"),
    ):
        if name.endswith(suffixes):
            return kind
    return ""
