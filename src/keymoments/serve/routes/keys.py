"""``/api/v1/keys``: API key management (admin only). A new key is shown once; only its hash is kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from keymoments.present import to_jsonable
from keymoments.serve import auth
from keymoments.serve.errors import ERROR_RESPONSES

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERROR_RESPONSES)


class NewKey(BaseModel):
    role: str = Field(..., pattern="^(admin|analyst|agent)$", description="admin, analyst or agent")
    name: str | None = Field(None, max_length=200, description="Who or what holds the key")
    employee_id: str | None = Field(None, max_length=200, description="An agent's employee id")


@router.get("", summary="List API keys (ids, roles, last use; never the keys)")
def list_keys(request: Request, _p: Any = auth.require("keys")) -> dict[str, Any]:
    return {"keys": to_jsonable(auth.list_keys(request.app.state.km.store))}


@router.post("", summary="Create an API key (the key is in this answer only)", status_code=201)
def create_key(request: Request, body: NewKey, _p: Any = auth.require("keys")) -> dict[str, Any]:
    key_id, key = auth.create_key(request.app.state.km.store, body.role, name=body.name, employee_id=body.employee_id)
    return {"ok": True, "key_id": key_id, "key": key, "role": body.role}


@router.delete("/{key_id}", summary="Revoke an API key")
def revoke(request: Request, key_id: str, _p: Any = auth.require("keys")) -> dict[str, Any]:
    state = request.app.state.km
    auth.revoke_key(state.store, key_id)
    state.keys.clear()
    return {"ok": True, "key_id": key_id, "revoked": True}
