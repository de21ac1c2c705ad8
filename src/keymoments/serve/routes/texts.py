"""``/api/v1/texts``: the texts the tagger gave a touchpoint, least certain first, and correcting a tag, after which
the tagger refits and re-tags the store's texts at once (:mod:`keymoments.score.corrections`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from keymoments.serve.auth import Principal, require
from keymoments.serve.errors import ERROR_RESPONSES

router = APIRouter(prefix="/texts", tags=["texts"], responses=ERROR_RESPONSES)


class Tag(BaseModel):
    touchpoint: str = Field(..., min_length=1, max_length=200, description="A touchpoint of the tagger, or 'other'")


class TaggedText(BaseModel):
    id: str = Field(..., description="The first event carrying this text (its other events follow its tag)")
    text: str
    touchpoint: str = Field(..., description="The tag in force")
    confidence: float = Field(..., description="The tag's probability under the refitted tagger (1 when corrected)")
    margin: float = Field(..., description="The tag's probability minus the next likeliest's: small is uncertain")
    corrected: bool = Field(..., description="An analyst set this tag")
    events: int = Field(..., description="How many events carry this text")
    next_touchpoint: str | None = Field(None, description="The second likeliest tag (None when corrected)")
    next_confidence: float | None = Field(None, description="Its probability")


class TextPage(BaseModel):
    texts: list[TaggedText]
    total: int
    limit: int
    offset: int
    order: str
    touchpoints: list[str] = Field(..., description="What a text may be tagged with")
    corrections: int = Field(..., description="Texts corrected so far")
    unlisted: int = Field(0, description="Texts the tagger tagged that are not listed (no cached vector: tagged by the "
                          "word-list tagger or before this version); `keymoments texts backfill` adds them")
    unlisted_events: int = Field(0, description="Events carrying those texts")


class Refit(BaseModel):
    texts: int = Field(..., description="Texts re-tagged")
    changed: int = Field(..., description="Texts whose tag changed")
    events_moved: int = Field(..., description="Events whose touchpoint changed (their journeys were re-derived)")
    corrections: int = Field(..., description="Corrections the tagger learnt from")
    seconds: float
    others_now_this_tag: int = Field(0, description="Other texts that changed tag to the corrected one's")


class Corrected(BaseModel):
    text: dict[str, Any]
    refit: Refit


def text_page(request: Request, *, tag: str | None, order: str, limit: int, offset: int) -> dict[str, Any]:
    from keymoments.score.corrections import list_texts  # noqa: PLC0415

    return list_texts(request.app.state.km.store, tag=tag, order=order, limit=limit, offset=offset)


def correct_text(request: Request, text_id: str, touchpoint: str, p: Principal) -> dict[str, Any]:
    """The one way a tag is corrected, for the API and the dashboard's form alike."""
    from keymoments.score.corrections import correct  # noqa: PLC0415

    return correct(request.app.state.km.store, text_id, touchpoint, actor=p.actor)


@router.get("", summary="Tagged texts with their tag and confidence (order=uncertain: least certain first)")
def list_texts(
    request: Request,
    tag: str | None = Query(None, min_length=1, description="Only texts with this tag"),
    order: Literal["uncertain", "confident", "recent"] = Query("uncertain"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    _p: Principal = require("texts:read"),
) -> TextPage:
    return TextPage.model_validate(text_page(request, tag=tag, order=order, limit=limit, offset=offset))


@router.post("/{text_id}/tag", summary="Correct a text's tag; the tagger refits and re-tags the texts at once")
async def tag_text(request: Request, text_id: str, body: Tag, p: Principal = require("texts:correct")) -> Corrected:
    return Corrected.model_validate(await run_in_threadpool(correct_text, request, text_id, body.touchpoint, p))
