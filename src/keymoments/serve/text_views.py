"""The dashboard's texts page: the texts the tagger gave a touchpoint, least certain first, each with a one-click
re-tag (a select and a button per row) that posts through the same permission check and the same correction as
``POST /api/v1/texts/{id}/tag``; the tagger refits at once and the page shows its new answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from keymoments import present
from keymoments.exceptions import ConflictError, InvalidParameterError, KeymomentsError, NotFoundError
from keymoments.score.corrections import READ_ONLY, UNLISTED_HINT
from keymoments.serve.auth import Principal
from keymoments.serve.routes.texts import correct_text, text_page
from keymoments.serve.views import _ctx, _error_page, _gate, form_data, templates

__all__ = ["install"]

ORDERS = {"uncertain": "least certain first", "confident": "most certain first", "recent": "newest first"}
PAGE = 50


def install(app: FastAPI) -> None:
    @app.get("/texts", include_in_schema=False)
    def texts_page(request: Request) -> Response:
        p = _gate(request, "texts", "texts:read")
        if not isinstance(p, Principal):
            return p
        q = request.query_params
        order = q.get("order") or "uncertain"
        tag = q.get("tag") or None
        try:
            offset = max(0, int(q.get("offset") or 0))
            data = text_page(request, tag=tag, order=order, limit=PAGE, offset=offset)
        except (KeymomentsError, ValueError) as exc:
            return _error_page(request, p, "texts", exc if isinstance(exc, KeymomentsError) else
                               InvalidParameterError(f"The 'offset' parameter must be a whole number. Got {q.get('offset')!r}."))  # fmt: skip
        keep = {k: v for k, v in {"order": order, "tag": tag}.items() if v}
        here = "/texts" + (f"?{urlencode(keep)}" if keep else "")
        read_only = bool(request.app.state.km.store.read_only)
        return templates.TemplateResponse(request, "texts.html", _ctx(
            request, p, "texts", title="Texts", data=data, order=order, orders=ORDERS, tag=tag, here=here,
            can_correct=p.can("texts:correct") and not read_only, read_only=read_only,
            read_only_msg=READ_ONLY, unlisted_hint=UNLISTED_HINT[0].upper() + UNLISTED_HINT[1:], flash=q.get("msg"), flash_error=q.get("err"),
            next_page=f"/texts?{urlencode({**keep, 'offset': offset + PAGE})}" if offset + PAGE < data["total"] else None,
        ))  # fmt: skip

    @app.post("/texts/{text_id}/tag", include_in_schema=False)
    async def tag_form(request: Request, text_id: str) -> Response:
        """A row's re-tag: the same permission (texts:correct) and correction as the API's; back to the page."""
        from starlette.concurrency import run_in_threadpool

        p = _gate(request, "texts", "texts:correct", next="/texts")
        if not isinstance(p, Principal):
            return p
        form = await form_data(request)
        back = form.get("back") or "/texts"
        back = back if back.startswith("/texts") and not back.startswith("//") else "/texts"
        try:
            done: dict[str, Any] = await run_in_threadpool(correct_text, request, text_id, form.get("touchpoint", ""), p)
        except (ConflictError, InvalidParameterError, NotFoundError) as exc:
            return _error_page(request, p, "texts", exc, back=back)
        r = done["refit"]
        msg = present.correction_message(done["text"]["touchpoint"], r)
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}{urlencode({'msg': msg})}#t-{quote(text_id)}", status_code=303)
