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

__all__ = ["SYNONYMS", "Mapping", "Source", "parse_mapping", "resolve_columns", "suffix_kind"]

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


def resolve_columns(
    name: str, available: list[str], mapping: Mapping | None, *, required: tuple[str, ...] = REQUIRED_FIELDS
) -> tuple[dict[str, str], list[str]]:
    """Match the input's columns to contract fields; return ({field: column}, extra columns).

    Raises MissingColumnError naming what is missing, the closest column and the --map that fixes it.
    """
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
    need = list(required)
    if "touchpoint" in need and "touchpoint" not in columns and "text" in columns:
        need.remove("touchpoint")  # text-only events: the touchpoint is inferred by tagging
    missing = [f for f in need if f not in columns]
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
                hints.append(f"column {f!r} is missing; add it or use --map SOURCE={f}")
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
