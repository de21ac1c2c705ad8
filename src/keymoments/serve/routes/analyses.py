"""``/api/v1/analyses/<name>``: every analysis, with the CLI command's parameters and its ``--json`` answer.

An analysis is served once its module exists (the analyses land one by one); results are cached per data
version and parameters (filters included), so a repeated read of an unchanged store is a dictionary lookup.
Every analysis takes the event filters ``segment``, ``channel``, ``since`` and ``until`` (one definition,
:func:`event_filters`); a bad one is a 422 in the one error shape.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from keymoments.serve.analyses import ANALYSES, available, run_analysis
from keymoments.serve.auth import require
from keymoments.serve.errors import ERROR_RESPONSES

__all__ = ["analysis_response", "build_router", "event_filters"]

_OK = {200: {"description": "The analysis, as `keymoments <command> --json` prints it",
             "content": {"application/json": {"schema": {"type": "object"}}}}}  # fmt: skip

Outcome = Query(..., min_length=1, description="The outcome to explain, e.g. retained.")
OptionalOutcome = Query(None, min_length=1, description="An outcome to relate to (default: the first yes/no one).")


def event_filters(
    segment: str | None = Query(None, description="Only these customers' events: name=value of a customer "
                                "attribute or an events column, e.g. segment=business or tier=gold."),
    channel: str | None = Query(None, description="Only events on this channel, e.g. web. Recovery refuses it."),
    since: str | None = Query(None, description="Only events at or after this date or time (ISO-8601; UTC when "
                              "no zone is given). Milestones: those crossed from then on."),
    until: str | None = Query(None, description="Only events before this date or time (exclusive; ISO-8601)."),
) -> dict[str, str | None]:
    """The event filters every analysis route takes, as the CLI's --segment/--channel/--since/--until."""
    return {"segment": segment or None, "channel": channel or None, "since": since or None, "until": until or None}


Filters = Depends(event_filters)


def analysis_response(request: Request, name: str, params: dict[str, Any], filters: dict[str, Any]) -> Response:
    result = run_analysis(request.app.state.km, name, {**params, **filters})
    headers = {}
    if result.warnings:
        headers["X-Keymoments-Warnings"] = json.dumps(result.warnings, ensure_ascii=True)[:4000]
    return Response(content=result.body, media_type="application/json", headers=headers)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/analyses", tags=["analyses"], responses=ERROR_RESPONSES)

    def route(name: str, summary: str):  # noqa: ANN202
        spec = ANALYSES[name]
        return router.get(
            f"/{name}", summary=summary, responses=_OK, response_class=Response,
            description=f"Same parameters and JSON as `{spec.cli} --json`. Needs the analyst or admin role.",
        )  # fmt: skip

    if available("journey"):

        @route("journey", "The journey map: emotion curve, pits and peaks, transitions, drop-offs")
        def journey(request: Request, filters: dict = Filters, _p: Any = require("analyses")) -> Response:
            return analysis_response(request, "journey", {}, filters)

    if available("moments"):

        @route("moments", "Moments of truth ranked by priority, each with impact and CI")
        def moments(
            request: Request,
            outcome: str = Outcome,
            kind: str = Query("auto", pattern="^(auto|binary|continuous)$", description="auto, binary or continuous"),
            value_per_customer: float | None = Query(None, ge=0, description="Money per retained customer."),
            target_valence: float | None = Query(None, ge=-1, le=1, description="Default target valence."),
            n_boot: int = Query(1000, ge=50, le=10_000, description="Bootstrap resamples."),
            level: float = Query(0.95, gt=0.5, lt=1, description="Confidence level."),
            seed: int = Query(0, ge=0, description="Bootstrap seed."),
            filters: dict = Filters,
            _p: Any = require("analyses"),
        ) -> Response:
            return analysis_response(request, "moments", {
                "outcome": outcome, "kind": kind, "value_per_customer": value_per_customer,
                "target_valence": target_valence, "n_boot": n_boot, "level": level, "seed": seed,
            }, filters)  # fmt: skip

    if available("peak-end"):

        @route("peak-end", "Which memory model (mean, peak, end, peak-end) predicts the outcome best")
        def peak_end(request: Request, outcome: str = Outcome, filters: dict = Filters,
                     _p: Any = require("analyses")) -> Response:  # fmt: skip
            return analysis_response(request, "peak-end", {"outcome": outcome}, filters)

    if available("segments"):

        @route("segments", "Valence tiers and the value of elevating the middle")
        def segments(
            request: Request,
            spend: str | None = Query(None, min_length=1, description="The outcome the what-if values: money, or "
                                      "yes/no (customers). Default: a spend-like numeric outcome, else event values."),
            outcome: str | None = Query(None, min_length=1, description="The outcome whose rate per tier is shown "
                                        "(default: every yes/no outcome)."),
            share: float = Query(0.1, gt=0, le=1, description="Share of a tier moved up one tier in the what-if."),
            filters: dict = Filters,
            _p: Any = require("analyses"),
        ) -> Response:
            return analysis_response(request, "segments", {"spend": spend, "outcome": outcome, "share": share}, filters)

    if available("recovery"):

        @route("recovery", "The service recovery paradox")
        def recovery(request: Request, outcome: str = Outcome, filters: dict = Filters,
                     _p: Any = require("analyses")) -> Response:  # fmt: skip
            return analysis_response(request, "recovery", {"outcome": outcome}, filters)

    if available("milestones"):

        @route("milestones", "Invisible milestones customers cross, with outcomes")
        def milestones(request: Request, outcome: str | None = OptionalOutcome, filters: dict = Filters,
                       _p: Any = require("analyses")) -> Response:  # fmt: skip
            return analysis_response(request, "milestones", {"outcome": outcome}, filters)

    if available("recognition"):

        @route("recognition", "Employees behind the peaks, with evidence")
        def recognition(
            request: Request,
            top: int = Query(10, ge=1, le=500, description="How many employees to show."),
            filters: dict = Filters,
            _p: Any = require("analyses"),
        ) -> Response:
            return analysis_response(request, "recognition", {"top": top}, filters)

    if available("roadmap"):

        @route("roadmap", "Fill pits, then build peaks: phases with expected value")
        def roadmap(request: Request, outcome: str = Outcome, filters: dict = Filters,
                    _p: Any = require("analyses")) -> Response:  # fmt: skip
            return analysis_response(request, "roadmap", {"outcome": outcome}, filters)

    @router.get("", summary="The analyses this server offers", tags=["analyses"])
    def index(_p: Any = require("analyses")) -> dict[str, Any]:
        return {
            "analyses": [
                {"name": s.name, "title": s.title, "cli": s.cli, "path": f"/api/v1/analyses/{s.name}"}
                for s in ANALYSES.values()
                if available(s.name)
            ]
        }

    return router
