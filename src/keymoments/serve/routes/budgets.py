"""``/api/v1/budgets``: pools with what is left, spent and reserved; the ledger; approving reserved spends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from keymoments.present import to_jsonable
from keymoments.serve.auth import Principal, require
from keymoments.serve.errors import ERROR_RESPONSES


class Settle(BaseModel):
    approved: bool = Field(True, description="false rejects the reservation: the money goes back to the pool")


def budgets_overview(state: Any) -> dict[str, Any]:
    from keymoments.act.budgets import Ledger

    file = state.playbooks()
    ledger = Ledger(state.store, file)
    pools = [
        {"name": b.name, "scope": b.scope, "period": b.period, "amount": float(b.amount), "currency": b.currency,
         "empowerment_limit": None if b.empowerment_limit is None else float(b.empowerment_limit)}
        for b in file.budgets
    ]  # fmt: skip
    bal = ledger.balances()
    for c in ("amount_cents", "remaining_cents", "spent_cents", "reserved_cents"):
        if c in bal:
            bal[c.replace("_cents", "")] = bal[c] / 100
    return {"pools": pools, "balances": to_jsonable(bal), "pending": to_jsonable(ledger.pending())}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/budgets", tags=["budgets"], responses=ERROR_RESPONSES)

    @router.get("", summary="Budget pools, balances per scope and period, and spends waiting for approval")
    def budgets(request: Request, _p: Principal = require("budgets:read")) -> dict[str, Any]:
        return budgets_overview(request.app.state.km)

    @router.get("/ledger", summary="Ledger entries, newest first")
    def ledger(
        request: Request,
        pool: str | None = Query(None, min_length=1),
        status: str | None = Query(None, pattern="^(approved|pending_approval|rejected)$"),
        limit: int = Query(200, ge=1, le=5000),
        _p: Principal = require("budgets:read"),
    ) -> dict[str, Any]:
        ops = request.app.state.km.store.ops
        with ops.read() as con:
            df = ops.sql.ledger_frame(con, pool=pool, status=status, limit=limit)
        df["amount"] = df["amount_cents"] / 100
        return {"entries": to_jsonable(df)}

    @router.post("/ledger/{entry_id}/settle", summary="Approve or reject a reserved spend (admins)")
    def settle(request: Request, entry_id: str, body: Settle, p: Principal = require("budgets:approve")) -> dict[str, Any]:
        from keymoments.act.budgets import Ledger

        state = request.app.state.km
        led = Ledger(state.store, state.playbooks())
        e = (led.approve if body.approved else led.reject)(entry_id, by=p.actor)
        return {"ok": True, "entry_id": e.entry_id, "status": e.status, "amount": e.amount_cents / 100}

    return router
