"""``/health``: the one route that needs no key (for load balancers and uptime checks)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and store check (no key needed)")
def health(request: Request) -> dict[str, Any]:
    state = request.app.state.km
    cur = state.store.cursor()
    try:
        cur.execute("SELECT 1").fetchone()
    finally:
        cur.close()
    scorer = state.text_scorer
    return {"ok": True, "status": "up", "schema_version": state.store.schema_version,
            "text_scoring": scorer.status() if scorer is not None else "off"}  # fmt: skip
