"""Dashboard pages of the act layer: the frontline case queue and a case's page (the customer's journey and
emotions, take, spend from a budget, approve, resolve), budgets with the ledger, and playbooks with uplift."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from keymoments.exceptions import InvalidParameterError, KeymomentsError, NotFoundError
from keymoments.serve import charts
from keymoments.serve.auth import CASE_ACTIONS, Principal
from keymoments.serve.routes.cases import Compensate, Note, Transition
from keymoments.serve.views import (
    TABLE_SOURCES,
    _ctx,
    _error_page,
    _gate,
    form_data,
    table,
    templates,
)

__all__ = ["install"]

log = logging.getLogger("keymoments.serve")

_M = TypeVar("_M", bound=BaseModel)

STATUSES = ("open", "in_progress", "awaiting_approval", "resolved", "closed")


def _ready() -> bool:
    return importlib.util.find_spec("keymoments.act.cases") is not None and importlib.util.find_spec(
        "keymoments.act.runner"
    ) is not None


def _journey_figure(events: list[dict[str, Any]]) -> Any | None:
    import plotly.graph_objects as go

    pts = [e for e in events if e.get("this_journey") and e.get("valence") is not None]
    if not pts:
        return None
    colours = [charts.PIT if e["valence"] < -0.2 else (charts.PEAK if e["valence"] > 0.4 else charts.NEUTRAL) for e in pts]
    fig = go.Figure(go.Scatter(
        x=[e["ts"] for e in pts], y=[e["valence"] for e in pts], mode="lines+markers+text",
        text=[e["touchpoint"] for e in pts], textposition="top center", marker={"size": 11, "color": colours},
        line={"color": "#b8c0cc"}, hovertemplate="%{text}<br>valence %{y:+.2f}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(yaxis_range=[-1.15, 1.25], yaxis_title="valence", showlegend=False)
    return fig


def install(app: FastAPI) -> None:
    if not _ready():
        return

    @app.get("/cases", include_in_schema=False)
    def cases_page(request: Request) -> Response:
        from keymoments.serve.act import CaseDesk

        p = _gate(request, "cases", "cases:read")
        if not isinstance(p, Principal):
            return p
        q = request.query_params
        status = q.get("status") or None
        mine = q.get("mine") == "1"
        try:
            data = CaseDesk(request.app.state.km, p).list(status=status, mine=mine, playbook=q.get("playbook") or None,
                                                          limit=100)  # fmt: skip
        except KeymomentsError as exc:
            return _error_page(request, p, "cases", exc)
        all_counts = CaseDesk(request.app.state.km, p).list(limit=1)["counts"]
        keep = {k: v for k, v in q.items() if v and k in ("status", "mine", "playbook")}
        return templates.TemplateResponse(request, "cases.html", _ctx(
            request, p, "cases", title="Case queue", data=data, status=status, mine=mine, statuses=STATUSES,
            all_counts=all_counts, download="/download/cases/cases.csv" + (f"?{urlencode(keep)}" if keep else ""),
        ))  # fmt: skip

    @app.get("/cases/{case_id}", include_in_schema=False)
    def case_page(request: Request, case_id: str) -> Response:
        from keymoments.serve.act import CaseDesk

        p = _gate(request, "cases", "cases:read")
        if not isinstance(p, Principal):
            return p
        try:
            case = CaseDesk(request.app.state.km, p).get(case_id)
        except KeymomentsError as exc:
            return _error_page(request, p, "cases", exc)
        fig = _journey_figure(case["journey"])
        pools = [b.name for b in request.app.state.km.playbooks().budgets]
        this = [e for e in case["journey"] if e.get("this_journey")]
        return templates.TemplateResponse(request, "case.html", _ctx(
            request, p, "cases", title=f"Case {case_id}", case=case, events=this,
            others=len(case["journey"]) - len(this), chart=charts.fig_div(fig, height=300) if fig else None,
            pools=pools, flash=request.query_params.get("msg"), flash_error=request.query_params.get("err"),
            can_work=p.can("cases:work"), can_approve=p.can("cases:approve"),
            ledger=table(case.get("ledger"), columns=["created_at", "pool", "scope_key", "amount_cents", "status", "actor", "note"],
                         download="/download/case/ledger.csv?" + urlencode({"case_id": case_id})),
        ))  # fmt: skip

    @app.post("/cases/{case_id}/{action}", include_in_schema=False)
    async def case_action(request: Request, case_id: str, action: str) -> Response:
        """The case page's forms: the same actions, permissions (``CASE_ACTIONS``) and field checks (the API's
        body models) as ``POST /api/v1/cases/{id}/<action>``. Invalid fields answer a 422 page; what the case
        book refuses (a spent budget, a move the lifecycle forbids) comes back to the case page as a notice."""
        from starlette.concurrency import run_in_threadpool

        from keymoments.serve.act import CaseDesk

        url = f"/cases/{quote(case_id)}"
        perm = CASE_ACTIONS.get(action)
        if perm is None:
            p = _gate(request, "cases", "cases:read", next=url)
            if not isinstance(p, Principal):
                return p
            return _error_page(request, p, "cases", NotFoundError(
                f"Unknown case action {action!r}; the case page offers {sorted(CASE_ACTIONS)}."))  # fmt: skip
        p = _gate(request, "cases", perm, next=url)
        if not isinstance(p, Principal):
            return p
        form = await form_data(request)
        desk = CaseDesk(request.app.state.km, p)
        try:
            if action in ("take", "assign"):
                await run_in_threadpool(desk.assign, case_id, p.employee_id or form.get("owner") or p.actor)
                msg = "Case taken."
            elif action == "resolve":
                note = _fields(Note, form).note
                await run_in_threadpool(desk.transition, case_id, "resolved", note)
                msg = "Case resolved."
            elif action in ("status", "transition"):
                t = _fields(Transition, form)
                await run_in_threadpool(desk.transition, case_id, t.to, t.note)
                msg = f"Case moved to {t.to}."
            elif action == "compensate":
                c = _fields(Compensate, form)
                case = await run_in_threadpool(desk.compensate, case_id, c.pool, c.amount, c.note)
                msg = "Spend waiting for a manager's approval." if case["status"] == "awaiting_approval" else "Spent within your limit."
            else:  # approve, reject
                approved = action == "approve" and form.get("approved", "true").lower() not in ("false", "0", "no")
                await run_in_threadpool(desk.approve, case_id, approved)
                msg = "Spend approved." if approved else "Spend rejected; the money went back to the pool."
        except InvalidParameterError as exc:
            return _error_page(request, p, "cases", exc, back=url)
        except (KeymomentsError, ValueError) as exc:
            return RedirectResponse(f"{url}?{urlencode({'err': str(exc)})}", status_code=303)
        return RedirectResponse(f"{url}?{urlencode({'msg': msg})}", status_code=303)

    def budget_tables(request: Request, _p: Principal) -> dict[str, Any]:
        """The budgets page's tables, whole: balances, pending approvals, the ledger (for its CSV links)."""
        import pandas as pd

        from keymoments.serve.routes.budgets import budgets_overview

        data = budgets_overview(request.app.state.km)
        ops = request.app.state.km.store.ops
        with ops.read() as con:
            ledger = ops.sql.ledger_frame(con, limit=None)
        def frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
            return pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=columns)

        return {
            "balances": frame(data["balances"], ["pool", "scope_key", "period", "period_start", "amount", "spent",
                                                 "reserved", "remaining", "pending"]),
            "pending": frame(data["pending"], ["created_at", "pool", "scope_key", "amount_cents", "case_id", "actor", "note"]),
            "ledger": ledger,
        }  # fmt: skip

    def case_tables(request: Request, p: Principal) -> dict[str, Any]:
        """The case queue as the page filters it (status, mine, playbook), every case rather than the first 100."""
        import pandas as pd

        from keymoments.serve.act import CaseDesk

        q = request.query_params
        data = CaseDesk(request.app.state.km, p).list(status=q.get("status") or None, mine=q.get("mine") == "1",
                                                      playbook=q.get("playbook") or None, limit=10**9)  # fmt: skip
        return {"cases": pd.DataFrame.from_records(data["cases"]) if data["cases"] else pd.DataFrame(columns=["case_id"])}

    def playbook_tables(request: Request, _p: Principal) -> dict[str, Any]:
        import pandas as pd

        rows = _playbook_rows(request.app.state.km)["rows"]
        return {"playbooks": pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["name"])}

    def one_case_tables(request: Request, p: Principal) -> dict[str, Any]:
        """One case's spending (``?case_id=``), as its page shows it."""
        import pandas as pd

        from keymoments.serve.act import CaseDesk

        case = CaseDesk(request.app.state.km, p).get(request.query_params.get("case_id") or "")
        rows = case.get("ledger") or []
        return {"ledger": pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["created_at", "pool", "amount_cents"])}

    TABLE_SOURCES["case"] = ("cases:read", one_case_tables)
    TABLE_SOURCES["budgets"] = ("budgets:read", budget_tables)
    TABLE_SOURCES["cases"] = ("cases:read", case_tables)
    TABLE_SOURCES["playbooks"] = ("playbooks:read", playbook_tables)

    @app.get("/budgets", include_in_schema=False)
    def budgets_page(request: Request) -> Response:
        from keymoments.serve.routes.budgets import budgets_overview

        p = _gate(request, "budgets", "budgets:read")
        if not isinstance(p, Principal):
            return p
        try:
            data = budgets_overview(request.app.state.km)
        except KeymomentsError as exc:
            return _error_page(request, p, "budgets", exc)
        bal = data["balances"]
        by_pool: dict[str, dict[str, float]] = {}
        for r in bal:
            agg = by_pool.setdefault(r["pool"], {"amount": 0.0, "spent": 0.0, "reserved": 0.0, "remaining": 0.0})
            for k in agg:
                agg[k] += float(r.get(k) or 0)
        ops = request.app.state.km.store.ops
        with ops.read() as con:
            recent = ops.sql.ledger_frame(con, limit=30)
        from keymoments.present import to_jsonable

        return templates.TemplateResponse(request, "budgets.html", _ctx(
            request, p, "budgets", title="Budgets", pools=data["pools"], by_pool=by_pool,
            balances=table(bal, columns=["pool", "scope_key", "period", "period_start", "amount", "spent", "reserved",
                                         "remaining", "pending"], limit=40, download="/download/budgets/balances.csv"),
            pending=table(data["pending"], columns=["created_at", "pool", "scope_key", "amount_cents", "case_id", "actor", "note"],
                          download="/download/budgets/pending.csv"),
            ledger=table(to_jsonable(recent), columns=["created_at", "pool", "scope_key", "amount_cents", "status",
                                                       "case_id", "actor", "settled_by"], download="/download/budgets/ledger.csv"),
        ))  # fmt: skip

    @app.get("/playbooks", include_in_schema=False)
    def playbooks_page(request: Request) -> Response:
        p = _gate(request, "playbooks", "playbooks:read")
        if not isinstance(p, Principal):
            return p
        try:
            data = _playbook_rows(request.app.state.km)
        except KeymomentsError as exc:
            return _error_page(request, p, "playbooks", exc)
        return templates.TemplateResponse(request, "playbooks.html", _ctx(
            request, p, "playbooks", title="Playbooks", rows=data["rows"], global_holdout=data["global_holdout"],
            warnings=data["warnings"], run_id=data["run_id"], figure=_uplift_html(data["rows"]),
            download="/download/playbooks/playbooks.csv",
        ))  # fmt: skip


def _fields(model: type[_M], form: dict[str, str]) -> _M:
    """A form's fields checked by the API body model of the same action; InvalidParameterError (422) if not."""
    try:
        return model.model_validate({k: v for k, v in form.items() if v != "" or k == "to"})
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e.get("loc", ())) or "form"
        raise InvalidParameterError(f"Invalid {where}: {e.get('msg', 'invalid value')} (got {form.get(where, '')!r}).") from None


def _playbook_rows(state: Any) -> dict[str, Any]:
    """Each playbook of the server's file with what its live run did and its uplift (or why there is none).

    Uplift comes only from the file's live run (else the latest live run of the playbook), counting
    outcomes observed within the playbook's window after each customer's first decision."""
    from keymoments.act.report import playbook_report
    from keymoments.act.uplift import live_run_of
    from keymoments.present import to_jsonable
    from keymoments.serve.routes.playbooks import playbooks_list

    file = state.playbooks()
    data = playbooks_list(state)
    runs = {pb.name: live_run_of(state.store, pb.name, file) for pb in file.playbooks}
    reports: dict[tuple[str, str], dict[str, Any]] = {}
    caveats: list[str] = []
    for run_id in sorted({r for r in runs.values() if r}):
        rep = playbook_report(state.store, file, run_id=run_id)
        caveats += rep["notes"]
        reports.update({(run_id, r["playbook"]): r for r in rep["playbooks"]})
    rows = []
    for pb in data["playbooks"]:
        run_id = runs.get(pb["name"])
        r = reports.get((run_id, pb["name"])) if run_id else None
        refused = r["uplift_refused"] if r else ("no live run yet: run the playbooks live (`keymoments playbooks run`)"
                                                  if pb["holdout"] > 0 else None)  # fmt: skip
        rows.append({**pb, "run_id": run_id, "live": to_jsonable(r) if r else None,
                     "uplift": to_jsonable(r["uplift"]) if r and r["uplift"] else None,
                     "refused": None if pb["holdout"] == 0 else refused})  # fmt: skip
    live_ids = sorted({r for r in runs.values() if r})
    return {"rows": rows, "global_holdout": data["global_holdout"], "warnings": caveats,
            "run_id": ", ".join(live_ids) if live_ids else None}  # fmt: skip


def _uplift_html(rows: list[dict[str, Any]]) -> str | None:
    import plotly.graph_objects as go

    pts = [r for r in rows if r["uplift"] and r["uplift"].get("uplift") is not None]
    if not pts:
        return None
    u = [r["uplift"] for r in pts]
    colours = [charts.PEAK if (x.get("ci_low") or 0) > 0 else (charts.PIT if (x.get("ci_high") or 0) < 0 else charts.NEUTRAL) for x in u]
    fig = go.Figure(go.Bar(
        x=[x["uplift"] for x in u], y=[r["name"] for r in pts], orientation="h", marker_color=colours,
        error_x={"type": "data", "symmetric": False, "array": [(x["ci_high"] or x["uplift"]) - x["uplift"] for x in u],
                 "arrayminus": [x["uplift"] - (x["ci_low"] or x["uplift"]) for x in u], "color": "#5c6678"},
        hovertemplate="%{y}<br>uplift %{x:+.3f}<extra></extra>",
    ))  # fmt: skip
    fig.add_vline(x=0, line_color="#9aa3b2")
    fig.update_layout(xaxis_title="uplift on the playbook's outcome vs holdout (95% CI)")
    return charts.fig_div(fig, height=80 + 40 * len(pts))
