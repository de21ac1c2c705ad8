"""API keys with roles.

Three roles (``ROLES``): **admin** does everything, **analyst** reads analyses, playbooks and budgets,
**agent** works cases within their empowerment limits. What each role may do is data (``PERMISSIONS``; the
case actions, which the API and the dashboard's forms both offer, name theirs in ``CASE_ACTIONS``), and one
function decides, :func:`authorize`: the API's dependency :func:`require` and every dashboard page and form call
it, so a form can never do what its API twin refuses.

A key is ``km_<id>_<secret>``; the store keeps only its SHA-256 hash (``store/keys.py``), so a stolen database
yields no usable key. Clients send it as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``; the
dashboard, after signing in, as an HTTP-only, same-site cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from keymoments.events import did_you_mean
from keymoments.exceptions import InvalidParameterError, NotFoundError
from keymoments.serve.errors import ApiError
from keymoments.store.ops import OperationalStore, ops_of
from keymoments.store.store import Store

__all__ = [
    "CASE_ACTIONS",
    "COOKIE",
    "PERMISSIONS",
    "ROLES",
    "KeyRing",
    "Principal",
    "authorize",
    "create_key",
    "hash_key",
    "require",
    "revoke_key",
]

log = logging.getLogger("keymoments.serve")

ROLES = ("admin", "analyst", "agent")
COOKIE = "km_key"

#: permission → the roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"admin"}),
    "analyses": frozenset({"admin", "analyst"}),
    "cases:read": frozenset({"admin", "analyst", "agent"}),
    "cases:work": frozenset({"admin", "agent"}),
    "cases:approve": frozenset({"admin"}),
    "budgets:read": frozenset({"admin", "analyst", "agent"}),
    "budgets:spend": frozenset({"admin", "agent"}),
    "budgets:approve": frozenset({"admin"}),
    "playbooks:read": frozenset({"admin", "analyst"}),
    "playbooks:run": frozenset({"admin", "analyst"}),
    "keys": frozenset({"admin"}),
    "dashboard": frozenset({"admin", "analyst", "agent"}),
    "texts:read": frozenset({"admin", "analyst"}),  # the tagged texts, as the analyses read them
    "texts:correct": frozenset({"admin", "analyst"}),  # correcting a tag re-tags texts: the analyses change
}

#: case action -> the permission it needs; ``POST /api/v1/cases/{id}/<action>`` and the dashboard's
#: ``POST /cases/{id}/<action>`` form both look their action up here
CASE_ACTIONS: dict[str, str] = {
    "assign": "cases:work",
    "take": "cases:work",  # the dashboard's assign-to-me
    "transition": "cases:work",
    "status": "cases:work",  # the dashboard's transition
    "resolve": "cases:work",
    "compensate": "budgets:spend",
    "approve": "cases:approve",
    "reject": "cases:approve",  # the dashboard's approve with approved=false
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role, holder name and (for agents) employee id."""

    key_id: str
    role: str
    name: str | None = None
    employee_id: str | None = None

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    @property
    def actor(self) -> str:
        return self.employee_id or self.name or f"key:{self.key_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidParameterError(
            f"The 'role' parameter must be one of {list(ROLES)}. Got {role!r} instead.{did_you_mean(role, ROLES)}"
        )


def create_key(store: Store | OperationalStore, role: str, *, name: str | None = None,
               employee_id: str | None = None) -> tuple[str, str]:  # fmt: skip
    """Create a key; return ``(key_id, key)``. The key is shown once: only its hash is stored."""
    _check_role(role)
    key_id = secrets.token_hex(4)
    key = f"km_{key_id}_{secrets.token_urlsafe(24)}"
    ops = ops_of(store)
    with ops.write() as con:
        ops.keys.insert_key(con, key_id, hash_key(key), role, name, employee_id, datetime.now(UTC))
    return key_id, key


def revoke_key(store: Store | OperationalStore, key_id: str) -> None:
    """Revoke a key by its id (the ``km_<id>_`` part); raises NotFoundError for an unknown id."""
    key_id = key_id.split("_")[1] if key_id.startswith("km_") and key_id.count("_") >= 2 else key_id
    ops = ops_of(store)
    with ops.write() as con:
        found = ops.keys.revoke_key(con, key_id, datetime.now(UTC))
    if not found:
        raise NotFoundError(f"No API key with id {key_id!r}; `keymoments keys list` shows them.")


def list_keys(store: Store | OperationalStore) -> list[dict[str, Any]]:
    ops = ops_of(store)
    with ops.read() as cur:
        return ops.keys.list_keys(cur)


class KeyRing:
    """Looks keys up by hash, with a short in-memory cache so authentication costs no query per request.

    Revoking through the API clears the cache at once; the cache lives ``ttl`` seconds otherwise.
    """

    def __init__(self, store: Store | OperationalStore, ttl: float = 5.0) -> None:
        self.store = store
        self.ops = ops_of(store)
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def lookup(self, key: str) -> Principal | None:
        h = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with self.ops.read() as cur:
            row = self.ops.keys.find_key(cur, h)
        p = None
        if row is not None and row["revoked_at"] is None and hmac.compare_digest(h, hash_key(key)):
            p = Principal(row["key_id"], row["role"], row["name"], row["employee_id"])
        with self._lock:
            self._cache[h] = (now, p)
        if p is not None and now - self._used.get(p.key_id, -1e9) > 60:  # last use, at most once a minute
            self._used[p.key_id] = now
            try:
                with self.ops.write() as con:
                    self.ops.keys.touch_key(con, p.key_id, datetime.now(UTC))
            except Exception:  # noqa: BLE001 - bookkeeping must never fail a request
                log.warning("could not record the last use of key %s", p.key_id, exc_info=True)
        return p


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: km_<id>_<secret>.")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def presented_key(request: Request, header: str | None, bearer: HTTPAuthorizationCredentials | None,
                  *, cookie: bool = False) -> str | None:  # fmt: skip
    if header:
        return header.strip()
    if bearer is not None and bearer.credentials:
        return bearer.credentials.strip()
    if cookie:
        return request.cookies.get(COOKIE)
    return None


def authenticate(request: Request, key: str | None) -> Principal:
    if not key:
        raise ApiError(
            401,
            "An API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'. "
            "Create one with `keymoments keys create --role analyst`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ring: KeyRing = request.app.state.km.keys
    p = ring.lookup(key)
    if p is None:
        raise ApiError(401, "The API key is unknown or has been revoked.", headers={"WWW-Authenticate": "Bearer"})
    return p


def authorize(principal: Principal, permission: str) -> Principal:
    """The one decision: may ``principal`` do ``permission``? Returns it, or raises a 403 :class:`ApiError`.

    Every API route (through :func:`require`) and every dashboard page and form calls this."""
    roles = PERMISSIONS[permission]
    if principal.role not in roles:
        raise ApiError(
            403,
            f"The {principal.role!r} role may not do this ({permission}); it needs one of {sorted(roles)}.",
        )
    return principal


def require(permission: str, *, cookie: bool = False) -> Any:
    """A dependency that authenticates the caller and checks one permission; returns the Principal."""
    PERMISSIONS[permission]  # an unknown permission fails when the route is built, not when it is called

    def dependency(
        request: Request,
        header: str | None = Depends(_api_key_header),
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Principal:
        p = authorize(authenticate(request, presented_key(request, header, bearer, cookie=cookie)), permission)
        request.state.principal = p
        return p

    return Depends(dependency)
