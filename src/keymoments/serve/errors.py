"""The API's one error shape, and the one place that maps exception classes to HTTP status codes.

Every error answer, whatever raised it (a domain error, a bad parameter, an unknown route, a bug), is::

    {"ok": false, "error": "one sentence", "errors": [{"loc": [...], "msg": "..."}], "status": 422}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keymoments.exceptions import (
    BudgetError,
    ConfigError,
    ConflictError,
    IngestError,
    InvalidEventError,
    KeymomentsError,
    NotEnoughDataError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UpliftRefusedError,
)

__all__ = ["ERROR_RESPONSES", "STATUS_BY_ERROR", "ApiError", "error_body", "install_error_handlers", "status_for"]

log = logging.getLogger("keymoments.serve")

#: Exception class → status code; the most specific class listed wins (checked along the MRO).
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    ConfigError: 422,  # includes InvalidParameterError
    IngestError: 422,  # includes MissingColumnError, UnsupportedFormatError
    InvalidEventError: 422,
    NotEnoughDataError: 422,
    UpliftRefusedError: 422,
    NotFoundError: 404,
    PermissionDeniedError: 403,
    BudgetError: 409,
    ConflictError: 409,
    StoreError: 503,
    KeymomentsError: 400,
}


class ApiError(Exception):
    """An error raised by the API layer itself (authentication, conflicts) with its status."""

    def __init__(self, status: int, error: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(error)
        self.status = status
        self.error = error
        self.errors = errors or []
        self.headers = headers


def status_for(exc: BaseException) -> int:
    """The status code for a domain exception."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_body(status: int, error: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"ok": False, "error": error, "errors": errors or [], "status": status}


def _response(status: int, error: str, errors: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    return JSONResponse(error_body(status, error, errors), status_code=status, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.error, exc.errors, exc.headers)

    @app.exception_handler(KeymomentsError)
    async def _domain_error(request: Request, exc: KeymomentsError) -> JSONResponse:
        status = status_for(exc)
        errors = getattr(exc, "errors", None)
        errors = errors if isinstance(errors, list) else []
        return _response(status, str(exc), [e if isinstance(e, dict) else {"msg": str(e)} for e in errors])

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(x for x in first["loc"] if x not in ("body", "query", "path")) or "request"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return _response(422, f"Invalid {where}: {first['msg']}{more}.", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route {request.url.path!r}; see /docs or /openapi.json for the API."
        if exc.status_code == 405:
            detail = f"Method {request.method} is not allowed on {request.url.path!r}."
        return _response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(500, f"Internal error ({type(exc).__name__}); the server log has the details.")


_ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["ok", "error", "errors", "status"],
                "properties": {
                    "ok": {"type": "boolean", "const": False},
                    "error": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object"}},
                    "status": {"type": "integer"},
                },
            }
        }
    }
}

#: The error answers every protected route may give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key", **_ERROR_SCHEMA},
    403: {"description": "The key's role may not do this", **_ERROR_SCHEMA},
    404: {"description": "Not found", **_ERROR_SCHEMA},
    422: {"description": "Invalid parameters or data", **_ERROR_SCHEMA},
}
