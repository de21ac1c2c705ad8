"""``/api/v1/events`` and ``/api/v1/outcomes``: batch ingest over HTTP.

Events go through exactly the validation of file ingest (``ingest.files.records_source`` →
``store.writer.ingest_batches``): idempotent on ``event_id`` (or the content hash), bad rows rejected with
their position in the batch and one reason each while the good rows go in. Batches posted at the same time
are written together in one transaction (``serve.group_commit``); each request still gets its own answer and
its batch is atomic: all of its good rows are written or none.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson
import pandas as pd
from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from keymoments.exceptions import IngestError
from keymoments.present import to_jsonable
from keymoments.serve.auth import require
from keymoments.serve.errors import ERROR_RESPONSES

router = APIRouter(tags=["ingest"], responses=ERROR_RESPONSES)

MAX_BATCH = 100_000
MAX_DEPTH = 32  # how deep an event's values (attrs) may nest; contract fields are flat, attrs hold flat facts


def _too_deep(row: dict[str, Any]) -> bool:
    """Whether a row's values nest more than MAX_DEPTH levels (checked without recursion; flat rows cost one
    isinstance per field)."""
    stack = [(v, 1) for v in row.values() if isinstance(v, dict | list)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, dict | list))
    return False


def _check_depth(rows: list[Any], what: str) -> None:
    for i, row in enumerate(rows, start=1):
        if isinstance(row, dict) and _too_deep(row):
            raise IngestError(
                f"{what} {i} nests more than {MAX_DEPTH} levels deep (in attrs or another field); "
                f"flatten it: at most {MAX_DEPTH} levels are taken. Nothing was written."
            )


class Rejected(BaseModel):
    row: int = Field(description="1-based position of the event in the batch")
    reason: str
    event: dict[str, Any] = Field(default_factory=dict, description="the rejected event's fields as received")


class IngestAnswer(BaseModel):
    ok: bool = True
    batch_id: int
    received: int
    accepted: int = Field(description="new events written")
    duplicates: int = Field(description="events already in the store (same event_id or content)")
    rejected: int
    reasons: dict[str, int] = Field(default_factory=dict, description="rejected rows per field at fault")
    rejects: list[Rejected] = Field(default_factory=list)
    seconds: float
    published: str | None = Field(
        None,
        description="With KM_BROKER: the stream the accepted events were published to (for `keymoments worker`) "
        "instead of being written here; duplicates are then dropped by the workers (on event_id).",
    )


class OutcomesAnswer(BaseModel):
    ok: bool = True
    rows: int
    outcomes: list[str]
    attributes: list[str]
    observed_at: str | None = None  # the time the outcomes were stored as observed, or "column <name>"


_EVENT_EXAMPLE = [
    {"event_id": "e1", "customer_id": "c1", "journey_id": "j1", "ts": "2025-03-01T09:00:00Z",
     "touchpoint": "check-in", "channel": "app", "outcome": "completed", "rating": 4, "rating_scale": "csat5",
     "text": "Quick and friendly"},
]  # fmt: skip


def _events_of(body: Any) -> list[Any]:
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        raise IngestError('The body must be a JSON array of events, or {"events": [...]}.')
    if len(events) > MAX_BATCH:
        raise IngestError(f"A batch holds at most {MAX_BATCH:,} events; got {len(events):,}. Split it.")
    if events and not any(isinstance(e, dict) and e for e in events):
        raise IngestError("The events have no fields; each needs at least customer_id, ts and touchpoint.")
    _check_depth(events, "Event")
    names: dict[str, None] = {}  # every field name once, in first-seen order
    for e in events:
        if isinstance(e, dict):
            names.update(dict.fromkeys(e))
    seen: dict[str, str] = {}
    for k in names:
        if not k.strip():
            raise IngestError(
                "An event has an empty field name; name every field (customer_id, ts, touchpoint…)."
            )
        if seen.setdefault(k.lower(), k) != k:
            raise IngestError(
                f"Fields {seen[k.lower()]!r} and {k!r} differ only in case; field names are case-insensitive."
            )
    return events


_EVENTS_BODY = {
    "required": True,
    "description": 'An array of events (the data contract\'s fields), or {"events": [...]}.',
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                    {"type": "object", "additionalProperties": True},
                ]
            },
            "example": _EVENT_EXAMPLE,
        }
    },
}


@router.post(
    "/events",
    summary="Ingest a batch of events (idempotent; bad rows rejected with reasons)",
    description=(
        "Each batch is atomic: all of its good rows are written, or none. Batches posted at the same time may be "
        "written in one transaction (group commit); each still gets its own batch id, counts and rejects, as if "
        "written alone, and no answer is sent before its batch has committed."
    ),
    response_model=IngestAnswer,
    openapi_extra={"requestBody": _EVENTS_BODY},
)
async def post_events(
    request: Request,
    rating_scale: str | None = Query(
        None, description="Scale of ratings that do not name theirs, e.g. csat5."
    ),
    ts_format: str | None = Query(
        None, description="How ts is written, in strptime codes (e.g. %d/%m/%Y %H:%M), or epoch_s / epoch_ms / "
        "epoch_us / epoch_ns; by default ISO-8601, YYYYMMDD, ordinal and common day/month forms, and epochs.",
    ),
    ts_range: str | None = Query(
        None, description="The days ts must lie in, FIRST..LAST (e.g. 1900..2030) or 'any' (years 1-9999); by "
        "default 1990 to the end of next year. An event outside is rejected with its reason.",
    ),
    _p: Any = require("ingest"),
) -> Response:
    # The body is read raw and parsed off the event loop: decoding 1,000 events and validating them as
    # generic objects would otherwise take the loop (and the GIL) longer than writing them does.
    body = await request.body()
    options = {"rating_scale": rating_scale, "ts_format": ts_format, "ts_range": ts_range}
    answer = await run_in_threadpool(_ingest_events, request.app.state.km, body, options)
    return Response(orjson.dumps(answer), media_type="application/json")


def _ingest_events(state: Any, body: bytes, options: dict[str, Any]) -> dict[str, Any]:
    from keymoments.ingest.files import records_source

    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(f"The body is not valid JSON ({exc}); send an array of events.") from None
    events = _events_of(parsed)
    if state.broker is not None:
        return _publish_events(state, events, options["rating_scale"])
    try:
        src = records_source(events, name="api", **options)
    except duckdb.Error as exc:
        raise IngestError(
            f"The batch cannot be read: {str(exc).splitlines()[0]}. Nothing was written."
        ) from None
    try:
        answer = state.events_writer.write(src)
    except duckdb.Error as exc:  # a batch DuckDB cannot take at all is refused whole, like a malformed file
        raise IngestError(
            f"The batch cannot be ingested: {str(exc).splitlines()[0]}. Nothing was written."
        ) from None
    result = answer.result
    if result.accepted and state.text_scorer is not None:
        state.text_scorer.poke()
    return {
        "ok": True, "batch_id": result.batch_id, "received": result.rows, "accepted": result.accepted,
        "duplicates": result.duplicates, "rejected": result.rejected, "reasons": result.reasons,
        "rejects": _rejects(answer.rejects, events), "seconds": round(result.seconds, 4),
    }  # fmt: skip


def _publish_events(state: Any, events: list[Any], rating_scale: str | None) -> dict[str, Any]:
    """Validate each event against the data contract and publish the good ones to the broker's stream (one
    path for HTTP and broker intake); the workers decide on them and dedupe on event_id."""
    import time

    from pydantic import ValidationError

    from keymoments.events import Event

    t0 = time.perf_counter()
    good: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    for i, ev in enumerate(events, start=1):
        try:
            if not isinstance(ev, dict):
                raise IngestError("an event must be a JSON object")
            row = {k: v for k, v in ev.items() if v is not None}
            if rating_scale and row.get("rating") is not None and not row.get("rating_scale"):
                row["rating_scale"] = rating_scale
            good.append(Event.model_validate(row).model_dump(mode="json", exclude_none=True))
        except (ValidationError, IngestError) as exc:
            errs = exc.errors() if isinstance(exc, ValidationError) else []
            field = ".".join(str(x) for x in errs[0]["loc"]) if errs and errs[0].get("loc") else "event"
            msg = f"{field}: {errs[0]['msg']}" if errs else str(exc)
            reasons[field] = reasons.get(field, 0) + 1
            rejects.append({"row": i, "reason": msg, "event": to_jsonable(ev) if isinstance(ev, dict) else {}})
    state.broker.publish(good)
    return {
        "ok": True, "batch_id": 0, "received": len(events), "accepted": len(good), "duplicates": 0,
        "rejected": len(rejects), "reasons": reasons, "rejects": rejects[:1000],
        "seconds": round(time.perf_counter() - t0, 4), "published": state.broker.address.stream,
    }  # fmt: skip


def _rejects(rejected: pd.DataFrame, events: list[Any]) -> list[dict[str, Any]]:
    """Each rejected row as :class:`Rejected` says: its position, its reason and its fields as received."""
    out = []
    for row, reason in zip(rejected["row"].tolist(), rejected["reason"].tolist(), strict=True):
        ev = events[row - 1] if 1 <= row <= len(events) and isinstance(events[row - 1], dict) else {}
        out.append({"row": int(row), "reason": str(reason), "event": to_jsonable(ev)})
    return out


@router.post(
    "/outcomes",
    summary="Upsert an outcome table (one row per customer or journey)",
    response_model=OutcomesAnswer,
)
def post_outcomes(
    request: Request,
    body: list[dict[str, Any]] | dict[str, Any] = Body(
        ...,
        description='An array of rows, each with the key and one field per outcome, or {"rows": [...]}.',
        examples=[[{"customer_id": "c1", "retained": True, "spend_next_12m": 840.0}]],
    ),
    key: str = Query(
        "customer_id", pattern="^(customer_id|journey_id)$", description="customer_id or journey_id"
    ),
    attributes_only: bool = Query(
        False, description="Store every column as a customer attribute (segment, tier…)."
    ),
    observed_at_col: str | None = Query(
        None, min_length=1, description="The field with the time each row's outcomes were observed (ISO-8601)."
    ),
    observed_at: str | None = Query(
        None, min_length=1, description="One observed time for every row (ISO-8601); default: now."
    ),
    _p: Any = require("ingest"),
) -> OutcomesAnswer:
    from keymoments.store.writer import ingest_outcomes_frame

    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list) or not rows:
        raise IngestError('The body must be a non-empty JSON array of rows, or {"rows": [...]}.')
    if len(rows) > MAX_BATCH:
        raise IngestError(f"A batch holds at most {MAX_BATCH:,} rows; got {len(rows):,}. Split it.")
    if not all(isinstance(r, dict) for r in rows):
        raise IngestError("Each outcome row must be a JSON object.")
    _check_depth(rows, "Row")
    df = pd.DataFrame.from_records(rows)
    state = request.app.state.km
    res = ingest_outcomes_frame(state.store, df, key=key, source="api", attributes_only=attributes_only,
                                observed_at=observed_at, observed_at_col=observed_at_col)  # fmt: skip
    return OutcomesAnswer(
        rows=int(res["rows"]), outcomes=list(res["outcomes"]), attributes=list(res["attributes"]),
        observed_at=res["observed_at"],
    )
