"""``/api/v1/cases``: the frontline case queue: list and filter, read one with the customer's journey and
emotions, assign, move through the lifecycle (resolve…), spend from a budget, approve (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from keymoments.serve.auth import CASE_ACTIONS, Principal, require
from keymoments.serve.errors import ERROR_RESPONSES

STATUS_PATTERN = "^(open|in_progress|awaiting_approval|resolved|closed)$"


class Assign(BaseModel):
    owner: str | None = Field(None, min_length=1, max_length=200, description="Employee id (agents: omit to take it)")
    expected_owner: str | None = Field(
        None, min_length=1, max_length=200,
        description="The owner the caller saw (null: unassigned); if someone else changed it since, the answer is 409",
    )


class Transition(BaseModel):
    to: str = Field(..., pattern=STATUS_PATTERN, description="open, in_progress, awaiting_approval, resolved or closed")
    note: str | None = Field(None, max_length=2000)
    expected: str | None = Field(
        None, pattern=STATUS_PATTERN,
        description="The status the caller saw; if someone else moved the case since, the answer is 409",
    )


class Note(BaseModel):
    note: str | None = Field(None, max_length=2000)


class Compensate(BaseModel):
    pool: str = Field(..., min_length=1, max_length=200, description="The budget pool to spend from")
    amount: float = Field(..., gt=0, le=1_000_000, allow_inf_nan=False, description="In the pool's currency")
    note: str | None = Field(None, max_length=2000)


class Approve(BaseModel):
    approved: bool = Field(True, description="false rejects the spend and returns the money to the pool")


def _desk(request: Request, p: Principal) -> Any:
    from keymoments.serve.act import CaseDesk

    return CaseDesk(request.app.state.km, p)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/cases", tags=["cases"], responses=ERROR_RESPONSES)

    @router.get("", summary="List cases (filter by status, owner, playbook, customer)")
    def list_cases(
        request: Request,
        status: str | None = Query(None, pattern=STATUS_PATTERN),
        owner: str | None = Query(None, min_length=1),
        playbook: str | None = Query(None, min_length=1),
        customer_id: str | None = Query(None, min_length=1),
        mine: bool = Query(False, description="Only my cases and unassigned ones (agents)"),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        p: Principal = require("cases:read"),
    ) -> dict[str, Any]:
        return _desk(request, p).list(status=status, owner=owner, playbook=playbook, customer_id=customer_id,
                                      mine=mine, limit=limit, offset=offset)  # fmt: skip

    @router.get("/{case_id}", summary="One case with its timeline, ledger and the customer's journey")
    def get_case(request: Request, case_id: str, p: Principal = require("cases:read")) -> dict[str, Any]:
        return _desk(request, p).get(case_id)

    @router.post("/{case_id}/assign", summary="Assign a case (agents take it for themselves)")
    def assign(request: Request, case_id: str, body: Assign, p: Principal = require(CASE_ACTIONS["assign"])) -> dict[str, Any]:
        from keymoments.serve.act import UNSEEN

        seen = body.expected_owner if "expected_owner" in body.model_fields_set else UNSEEN
        return _desk(request, p).assign(case_id, body.owner, expected_owner=seen)

    @router.post("/{case_id}/transition", summary="Move a case through its lifecycle")
    def transition(request: Request, case_id: str, body: Transition, p: Principal = require(CASE_ACTIONS["transition"])) -> dict[str, Any]:
        return _desk(request, p).transition(case_id, body.to, body.note, body.expected)

    @router.post("/{case_id}/resolve", summary="Resolve a case")
    def resolve(request: Request, case_id: str, body: Note | None = None, p: Principal = require(CASE_ACTIONS["resolve"])) -> dict[str, Any]:
        return _desk(request, p).transition(case_id, "resolved", body.note if body else None)

    @router.post("/{case_id}/compensate", summary="Spend from a budget for this case (above the limit: waits for approval)")
    def compensate(request: Request, case_id: str, body: Compensate, p: Principal = require(CASE_ACTIONS["compensate"])) -> dict[str, Any]:
        return _desk(request, p).compensate(case_id, body.pool, body.amount, body.note)

    @router.post("/{case_id}/approve", summary="Approve (or reject) the case's spend above the empowerment limit")
    def approve(request: Request, case_id: str, body: Approve | None = None, p: Principal = require(CASE_ACTIONS["approve"])) -> dict[str, Any]:
        return _desk(request, p).approve(case_id, body.approved if body else True)

    return router
