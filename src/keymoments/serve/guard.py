"""What every request passes before a route sees it: the key is checked before the body is read, the body is
capped, and every answer carries the security headers.

An ASGI middleware rather than a dependency, because FastAPI reads (and buffers) a route's body before it
solves the route's dependencies: a POST with no key and a 200 MB body would be read whole before its 401.
Here a request that can carry a body (POST, PUT, PATCH, DELETE) to anything but a public path is turned away
on its headers alone, with ``Connection: close`` so the server reads no more of it. The route's own
:func:`~keymoments.serve.auth.require` (or the dashboard's gate) still decides the role, through
:func:`~keymoments.serve.auth.authorize`.

Bodies are capped per route, public ones included (``Settings.max_body_bytes``, and ``Settings.max_ingest_bytes``
for the ingest routes): a declared ``Content-Length`` over the cap is answered 413 at once; a body sent without one is counted
as it arrives and refused with 413 the moment it passes the cap.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keymoments.serve.auth import COOKIE
from keymoments.serve.errors import error_body

__all__ = ["CSP", "PUBLIC_PATHS", "SECURITY_HEADERS", "Guard"]

log = logging.getLogger("keymoments.serve")

#: paths anyone may call without a key (static assets hold no data; /docs and /openapi.json describe the API,
#: which is the same in every installation, and hold no data either)
PUBLIC_PATHS = frozenset({"/health", "/login", "/logout", "/docs", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/",)
INGEST_PATHS = frozenset({"/api/v1/events", "/api/v1/outcomes"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: scripts only from this server (plotly.js, Swagger UI and app.js, no inline script); styles may be inline
#: (Plotly and Swagger UI set them); nothing may frame the dashboard
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


def presented_key(scope: Scope) -> str | None:
    """The key a request carries, read from its headers only: X-API-Key, a bearer token or the dashboard's
    cookie (the same places, in the same order, as the routes read it)."""
    key = _header(scope, b"x-api-key")
    if key and key.strip():
        return key.strip()
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    raw = _header(scope, b"cookie")
    if raw:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 - a malformed cookie header is no key
            log.debug("a malformed cookie header carries no key", exc_info=True)
            return None
        if COOKIE in jar and jar[COOKIE].value:
            return jar[COOKIE].value
    return None


class Guard:
    """The ASGI middleware described in the module docstring; ``state`` is the app's ServerState."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    def limit(self, path: str) -> int:
        s = self.state.settings
        return int(s.max_ingest_bytes if path in INGEST_PATHS else s.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        path, method = scope["path"], scope["method"]
        if method not in BODY_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        if not _is_public(path):  # /login takes its key in the body: it is only capped
            key = presented_key(scope)
            principal = await run_in_threadpool(self.state.keys.lookup, key) if key else None
            if principal is None:
                await self._turn_away(scope, send_with_headers, key)
                return
        cap = self.limit(path)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _json(send_with_headers, 413, _too_large(path, cap))
            return
        await self.app(scope, _capped(receive, path, cap), send_with_headers)

    async def _turn_away(self, scope: Scope, send: Send, key: str | None) -> None:
        path = scope["path"]
        if not path.startswith("/api/"):  # a dashboard form: back to the sign-in page, then to the page it was on
            back = path.rsplit("/", 1)[0] if path.count("/") > 1 else "/"
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", f"/login?next={quote(back, safe='/')}".encode()), (b"connection", b"close"),
                (b"content-length", b"0")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        msg = (
            "The API key is unknown or has been revoked."
            if key
            else "An API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'. "
            "Create one with `keymoments keys create --role analyst`."
        )
        await _json(send, 401, msg, extra=[(b"www-authenticate", b"Bearer")])


def _too_large(path: str, cap: int) -> str:
    setting = "KM_MAX_INGEST_BYTES" if path in INGEST_PATHS else "KM_MAX_BODY_BYTES"
    return (
        f"The request body is larger than {cap:,} bytes, the most {path} takes; split it "
        f"(or raise {setting} where the server runs)."
    )


def _capped(receive: Receive, path: str, cap: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise HTTPException(413, _too_large(path, cap), headers={"Connection": "close"})
        return message

    return wrapped


async def _json(send: Send, status: int, error: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(error_body(status, error))
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(extra or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
