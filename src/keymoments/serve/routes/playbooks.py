"""``/api/v1/playbooks``: list the server's playbooks, validate a playbook file, back-test over history, run
live over new events (opening cases), and measure a playbook's uplift against its holdout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request

from keymoments.act.models import format_window
from keymoments.present import to_jsonable
from keymoments.serve.auth import Principal, require
from keymoments.serve.errors import ERROR_RESPONSES

_YAML_BODY = Body(None, media_type="application/yaml", description="A playbook file (YAML); default: the server's.")


def playbooks_list(state: Any) -> dict[str, Any]:
    file = state.playbooks()
    out = []
    for p in file.playbooks:
        budget = next((getattr(a, "budget", None) for a in p.actions if getattr(a, "budget", None)), None)
        out.append({
            "name": p.name, "description": p.description, "enabled": p.enabled, "trigger": p.trigger.type,
            "actions": [a.type for a in p.actions], "holdout": p.holdout.share, "outcome": p.outcome, "budget": budget,
            "window": format_window(p.measure.window) if p.measure else None,
        })  # fmt: skip
    return {"playbooks": out, "budgets": [b.name for b in file.budgets], "global_holdout": file.global_holdout}


async def _file_from(request: Request, state: Any) -> Any:
    """The posted playbook file (or the server's), parsed and validated off the event loop."""
    from starlette.concurrency import run_in_threadpool

    from keymoments.act.yaml_loader import loads_playbooks

    body = (await request.body()).decode("utf-8", "replace").strip()
    if not body:
        return state.playbooks()
    return await run_in_threadpool(loads_playbooks, body, "request body")


def _not_on_spark(state: Any, what: str) -> None:
    """Refuse (422, saying why) a live playbook pass on a server whose events are on Spark: a live pass reads the
    events that arrived since its last run from the store's DuckDB file, which holds none of them, so it would
    answer with nothing decided. (A back-test runs on Spark: ``PlaybookRunner.backtest`` on a SparkStore.)"""
    if state.engine == "spark":
        from keymoments.exceptions import ConfigError

        raise ConfigError(
            f"{what} is not available on a server whose events are on Spark (--engine spark): the playbook runner "
            "reads the events of the DuckDB store. Run it with `keymoments playbooks` on the command line, or serve "
            "the DuckDB store (a back-test does run on Spark). Nothing was run."
        )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/playbooks", tags=["playbooks"], responses=ERROR_RESPONSES)

    @router.get("", summary="The playbooks this server runs")
    def list_playbooks(request: Request, _p: Principal = require("playbooks:read")) -> dict[str, Any]:
        return playbooks_list(request.app.state.km)

    @router.post("/validate", summary="Validate a playbook file (YAML body); errors carry line numbers",
                 openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
    async def validate(request: Request, _p: Principal = require("playbooks:read")) -> dict[str, Any]:
        f = await _file_from(request, request.app.state.km)
        return {"ok": True, "playbooks": [p.name for p in f.playbooks], "budgets": [b.name for b in f.budgets]}

    @router.post("/backtest", summary="Replay history through the playbooks (YAML body or the server's file)",
                 openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
    async def backtest(
        request: Request,
        record: bool = Query(False, description="Keep the decisions (for uplift) under the run's id"),
        _p: Principal = require("playbooks:run"),
    ) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        from keymoments.act.runner import PlaybookRunner

        state = request.app.state.km
        f = await _file_from(request, state)
        res = await run_in_threadpool(lambda: PlaybookRunner(state.store, f, source="api").backtest(record=record))
        return to_jsonable(res.to_dict())

    @router.post("/run", summary="Process the events that arrived since the last run: open cases, spend, notify")
    def run(request: Request, _p: Principal = require("ingest")) -> dict[str, Any]:
        from keymoments.act.runner import PlaybookRunner

        state = request.app.state.km
        _not_on_spark(state, "A live playbook pass")
        res = PlaybookRunner(state.store, state.playbooks(), source="serve").run_live()
        return to_jsonable(res.to_dict())

    @router.get("/{name}/uplift", summary="The playbook's uplift in a live run against its holdout, with CI",
                description="Counts outcomes observed within the playbook's window after each customer's first "
                "decision. 422 with a one-line reason when there is no live run, the run is a backtest (no action "
                "was taken), or no outcome was observed after the decisions.")
    def uplift(
        request: Request,
        name: str,
        outcome: str | None = Query(None, min_length=1),
        window: str | None = Query(None, min_length=2, description="Override the playbook's window, e.g. 90d"),
        run_id: str | None = Query(None, min_length=1, description="A live run; default: the server file's"),
        confidence: float = Query(0.95, gt=0.5, lt=1),
        _p: Principal = require("playbooks:read"),
    ) -> dict[str, Any]:
        from keymoments.act.uplift import uplift as compute
        from keymoments.serve.analyses import capture_warnings

        state = request.app.state.km
        u, caveats = capture_warnings(compute, state.store, state.playbooks(), name, outcome=outcome, window=window,
                                      run_id=run_id, confidence=confidence)  # fmt: skip
        return {**to_jsonable(u.to_dict()), "warnings": caveats}

    return router
