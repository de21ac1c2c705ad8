"""The dashboard: server-rendered pages (Jinja2) with Plotly charts, plotly.js served from the installed package.

Pages need a key like the API: ``/login`` takes one and keeps it in an HTTP-only, same-site cookie. Every
page reads the same cached analyses as the API. Every analysis page has the filter bar (date range, segment,
channel; ``since``/``until``/``segment``/``channel`` in the query string, as the API takes them), shows the
filters applied as a chip with a clear-all link, and its navigation links carry them to the next page. Static assets (CSS, plotly.js) hold no data and are served
without a key so the sign-in page is styled.
"""

from __future__ import annotations

import functools
import logging
import math
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from keymoments.analyze.filters import FILTERS, describe_filters
from keymoments.exceptions import KeymomentsError, NotEnoughDataError, NotFoundError
from keymoments.serve import charts
from keymoments.serve.analyses import ANALYSES, available, run_analysis, status
from keymoments.serve.auth import COOKIE, Principal, authorize
from keymoments.serve.errors import ApiError, status_for

__all__ = ["PAGES", "TABLE_SOURCES", "download_url", "install", "table"]

log = logging.getLogger("keymoments.serve")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

#: (slug, nav label, analysis, permission, needs an outcome, group)
PAGES: list[tuple[str, str, str | None, str, bool, str]] = [
    ("", "Overview", "journey", "analyses", False, "Understand"),
    ("journey", "Journey map", "journey", "analyses", False, "Understand"),
    ("moments", "Moments of truth", "moments", "analyses", True, "Understand"),
    ("peak-end", "Peak-end", "peak-end", "analyses", True, "Understand"),
    ("segments", "Segments", "segments", "analyses", False, "Understand"),
    ("recovery", "Recovery", "recovery", "analyses", True, "Understand"),
    ("milestones", "Milestones", "milestones", "analyses", False, "Understand"),
    ("recognition", "Recognition", "recognition", "analyses", False, "Understand"),
    ("texts", "Texts", None, "texts:read", False, "Understand"),
    ("roadmap", "Roadmap", "roadmap", "analyses", True, "Prioritise"),
    ("cases", "Case queue", None, "cases:read", False, "Act"),
    ("budgets", "Budgets", None, "budgets:read", False, "Act"),
    ("playbooks", "Playbooks", None, "playbooks:read", False, "Act"),
]

#: what the dashboard asks of the slower analyses (the API's defaults stay the CLI's)
DASHBOARD_PARAMS: dict[str, dict[str, Any]] = {
    "moments": {"n_boot": 200},
    "roadmap": {"n_boot": 200},
}

INTRO = {
    "journey": "How customers feel at each touchpoint, with 95% intervals. Pits are touchpoints reliably below the "
    "journey's average, peaks reliably above. Fill the pits first, then build peaks.",
    "moments": "Which touchpoints decide the outcome: the change in the outcome when a touchpoint goes from a bad "
    "(-0.5) to a good (+0.5) experience, adjusted for the others, with bootstrap intervals.",
    "peak-end": "People remember an experience by its most intense moment and by how it ended. Which memory "
    "model predicts the outcome best?",
    "segments": "Customers in valence tiers. Moving the middle up earns more than eliminating the unhappy.",
    "recovery": "The service recovery paradox: customers whose crisis was fixed well against those whose crisis "
    "was not, and those who never had one.",
    "milestones": "Invisible milestones customers cross (the nth journey, anniversaries, spend) that are worth "
    "marking.",
    "recognition": "Employees whose customers have peaks, adjusted for volume, with the moments as evidence. "
    "Recognition is personal, not programmatic.",
    "roadmap": "Today's emotion curve against the future state, in phases: fill the pits first, then build peaks, "
    "each with its expected value.",
}


# -- helpers -----------------------------------------------------------------------------------------------
async def form_data(request: Request) -> dict[str, str]:
    """A URL-encoded form body (the dashboard's forms), without needing python-multipart."""
    from urllib.parse import parse_qs

    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _principal(request: Request) -> Principal | None:
    key = request.cookies.get(COOKIE) or request.headers.get("x-api-key")
    if not key:
        return None
    return request.app.state.km.keys.lookup(key)


def _fmt(v: Any, col: str = "") -> tuple[str, str]:
    """(text, css class) of one table cell."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–", "muted"
    if isinstance(v, bool):
        return ("yes" if v else "no"), ""
    if col in ("kind", "status", "arm") and isinstance(v, str):
        return v, f"pill pill-{v.replace('_', '-')}"
    if isinstance(v, int):
        return f"{v:,}", "num"
    if isinstance(v, float):
        valued = any(w in col for w in ("valence", "impact", "lift", "ci", "gain", "share", "rate", "reach", "score"))
        if v.is_integer() and abs(v) < 1e9 and not valued:
            return f"{int(v):,}", "num"
        if col.endswith("_cents"):
            return f"{v / 100:,.2f}", "num"
        if any(w in col for w in ("share", "reach", "rate")) and -1.0 <= v <= 1.0:
            return f"{v:.1%}", "num"
        if abs(v) >= 1000:
            return f"{v:,.0f}", "num"
        cls = "num"
        if "valence" in col or col in ("impact", "lift", "shrunk_lift", "uplift"):
            cls += " pos" if v > 0.05 else (" neg" if v < -0.05 else "")
            return f"{v:+.3f}", cls
        return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:.3f}", cls
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        names = [str(x.get("touchpoint") or x.get("name") or x.get("employee_id") or "") for x in v]
        return (", ".join(n for n in names if n) or f"{len(v)} items")[:160], "small"
    if isinstance(v, list | dict):
        text = ", ".join(map(str, v)) if isinstance(v, list) else ", ".join(f"{k}: {x}" for k, x in v.items())
        return text[:160], "small"
    s = str(v)
    return (s[:200] + "…" if len(s) > 200 else s), ""


def table(records: list[dict[str, Any]] | None, *, columns: list[str] | None = None, limit: int = 60,
          download: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Rows of dicts as a table: a CI column joins ``ci_low``/``ci_high``; cells formatted and classed.
    ``download``: the URL of the whole table as CSV (:func:`download_url`), linked under it."""
    records = list(records or [])
    if not records:
        return {"headers": [], "rows": [], "more": 0, "download": download}
    cols = columns or [c for c in records[0] if not c.startswith("_")]
    has_ci = "ci_low" in cols and "ci_high" in cols
    shown = [c for c in cols if c not in ("ci_low", "ci_high")]
    headers = []
    for c in shown:
        headers.append(c.replace("_", " "))
    if has_ci:
        headers.append("95% CI")
    rows = []
    for r in records[:limit]:
        cells = [_fmt(r.get(c), c) for c in shown]
        if has_ci:
            lo, hi = r.get("ci_low"), r.get("ci_high")
            ok = isinstance(lo, int | float) and isinstance(hi, int | float)
            cells.append((f"[{lo:+.3f}, {hi:+.3f}]" if ok else "–", "num ci" if ok else "muted"))
        rows.append({"cells": cells, "kind": r.get("kind")})
    return {"headers": headers, "rows": rows, "more": max(0, len(records) - limit), "download": download}


def download_url(request: Request, analysis: str, name: str) -> str:
    """The CSV of one of an analysis's tables (``Analysis.tables()``), with the page's outcome and filters."""
    keep = {k: v for k, v in request.query_params.items() if v and (k in FILTERS or k == "outcome")}
    return f"/download/{quote(analysis)}/{quote(name)}.csv" + (f"?{urlencode(keep)}" if keep else "")


def _sections(data: dict[str, Any], download: Any = None) -> tuple[list, list, list]:
    """Split an analysis' JSON into headline facts (short scalars), tables (lists of records) and notes (long text).
    ``download(key)``: the CSV link of the table under ``key`` (None: no link)."""
    facts, tables, notes = [], [], []
    link = download or (lambda k: None)
    for k, v in data.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k.replace("_", " ").capitalize(), table(v, download=link(k))))
        elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            tables.append((k.replace("_", " ").capitalize(), table([{"name": n, **x} for n, x in v.items()], download=link(k))))
        elif isinstance(v, str | int | float | bool) or v is None:
            if isinstance(v, str) and len(v) > 60:
                notes.append((k.replace("_", " "), v))
            elif k not in ("warnings",):
                facts.append((k.replace("_", " "), _fmt(v, k)[0]))
    return facts, tables, notes


def _outcomes(request: Request) -> list[str]:
    return sorted(request.app.state.km.store.outcome_names())


def _default_outcome(request: Request, names: list[str]) -> str | None:
    defs = request.app.state.km.store.outcome_names()
    for pref in ("retained", "repurchased_90d"):
        if pref in defs:
            return pref
    bools = [n for n in names if defs[n][1] == "bool"]
    return (bools or names or [None])[0]


def _filters(request: Request) -> dict[str, str | None]:
    """The event filters in the page's query string (unset ones None)."""
    q = request.query_params
    return {k: (q.get(k) or None) for k in FILTERS}


def _filter_qs(filters: dict[str, str | None]) -> str:
    """The filters as a query string, for links that keep them ('' when none)."""
    return urlencode({k: v for k, v in filters.items() if v})


def _applied(analysis: str, filters: dict[str, str | None]) -> tuple[dict[str, str | None], dict[str, str]]:
    """(the filters the analysis takes, {filter: why it is not applied}): Recovery refuses a channel filter,
    which the page then keeps in its links but does not apply, saying why."""
    import importlib

    spec = ANALYSES[analysis]
    why = getattr(getattr(importlib.import_module(spec.module), spec.cls), "channel_unsupported", None)
    if why and filters.get("channel"):
        return {**filters, "channel": None}, {"channel": str(why)}
    return filters, {}


def _bar(request: Request, filters: dict[str, str | None], *, skipped: dict[str, str] | None = None,
         outcomes: list[str] | None = None, outcome: str | None = None) -> dict[str, Any]:  # fmt: skip
    """What the filter bar shows: the filters, their choices, the outcome picker, the chip and its clear-all link."""
    keep = {"outcome": outcome} if outcomes and outcome else {}
    path = request.url.path
    return {
        "filters": filters, "choices": _safe_choices(request), "action": path, "outcomes": outcomes,
        "outcome": outcome, "note": describe_filters(filters), "skipped": skipped or {},
        "clear_url": path + (f"?{urlencode(keep)}" if keep else ""),
    }  # fmt: skip


#: the Swagger UI files /docs loads, and their media types
SWAGGER_FILES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keymoments API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/app.js"></script>
</body>
</html>
"""


@functools.lru_cache(maxsize=len(SWAGGER_FILES))
def _swagger_file(name: str) -> bytes:
    from swagger_ui_bundle import swagger_ui_path

    return (Path(str(swagger_ui_path)) / name).read_bytes()


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _filter_choices(request: Request) -> dict[str, list[str]]:
    """Channels and customer segments to filter by (cached per data version with the analyses)."""
    state = request.app.state.km

    def compute() -> dict[str, list[str]]:
        t = state.store.events()
        channels = sorted(str(c) for c in t.select("channel").distinct().to_pandas()["channel"].dropna())
        a = state.store.table("attributes")
        names = a.filter(a.key_kind == "customer_id").group_by(["name", "value"]).agg(n=a.key.count()).to_pandas()
        segs = []
        for r in names.itertuples():
            if r.value is not None and r.n >= 10 and names[names["name"] == r.name].shape[0] <= 12:
                segs.append(f"{r.name}={r.value}")
        return {"channels": channels, "segments": sorted(segs)}

    return state.results.get(("_filters",), compute)


def _ctx(request: Request, principal: Principal, slug: str, **kw: Any) -> dict[str, Any]:
    nav = []
    for s, label, analysis, perm, _, group in PAGES:
        if analysis is not None and status(analysis).state == "not installed":
            continue  # a failed one stays in the navigation: its page says why
        if s in ("cases", "budgets", "playbooks") and not _act_ready(s):
            continue
        if principal.can(perm):
            nav.append({"slug": s, "label": label, "group": group, "active": s == slug, "keeps_filters": analysis is not None})
    return {"request": request, "principal": principal, "nav": nav, "slug": slug, "now": datetime.now(UTC),
            "filter_qs": _filter_qs(_filters(request)), **kw}  # fmt: skip


def _act_ready(slug: str) -> bool:
    import importlib.util

    mod = {"cases": "keymoments.act.cases", "budgets": "keymoments.act.budgets", "playbooks": "keymoments.act.runner"}[slug]
    return importlib.util.find_spec(mod) is not None


def _error_page(request: Request, principal: Principal, slug: str, exc: Exception, **kw: Any) -> HTMLResponse:
    """The page that says why an analysis is not shown. Data that cannot support the analysis is an answer, not
    an error (200, "Not available on this data", with what to add); a bad request keeps its status; anything
    else is an internal error, logged with its traceback."""
    if isinstance(exc, NotEnoughDataError):
        log.debug("%s: not available on this data", request.url.path, exc_info=exc)
        title, status, msg = "Not available on this data", 200, str(exc)
    elif isinstance(exc, KeymomentsError):
        log.info("%s: %s", request.url.path, exc, exc_info=exc)
        title, status, msg = "Cannot show this", status_for(exc), str(exc)
    else:
        log.error("%s failed", request.url.path, exc_info=exc)
        title, status = "Something went wrong", 500
        msg = f"Internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}); the server's log has the traceback."
    return templates.TemplateResponse(
        request, "error.html", _ctx(request, principal, slug, title=title, message=msg, **kw), status_code=status,
    )  # fmt: skip


def _login_redirect(request: Request, next: str | None = None) -> RedirectResponse:
    nxt = next or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)


def _gate(request: Request, slug: str, perm: str, *, next: str | None = None) -> Principal | Response:
    """The signed-in principal allowed ``perm`` (decided by :func:`~keymoments.serve.auth.authorize`, as for the
    API), or the response that turns the request away: the sign-in page (back to ``next``) or a 403 page."""
    p = _principal(request)
    if p is None:
        return _login_redirect(request, next)
    try:
        return authorize(p, perm)
    except ApiError:
        return _forbidden(request, p, slug, perm)


def _forbidden(request: Request, principal: Principal, slug: str, perm: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "error.html",
        _ctx(request, principal, slug, title="Not for this role",
             message=f"The {principal.role!r} role may not open this page ({perm})."),
        status_code=403,
    )  # fmt: skip


# -- pages -------------------------------------------------------------------------------------------------
def install(app: FastAPI) -> None:
    """Mount the dashboard's pages and static files."""

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_asset() -> Response:
        return Response(plotly_js(), media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip

    @app.get("/static/app.css", include_in_schema=False)
    def css_asset() -> Response:
        return Response((HERE / "static" / "app.css").read_text(encoding="utf-8"), media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})  # fmt: skip

    @app.get("/static/app.js", include_in_schema=False)
    def js_asset() -> Response:
        return Response((HERE / "static" / "app.js").read_text(encoding="utf-8"), media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=3600"})  # fmt: skip

    @app.get("/static/swagger/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        """Swagger UI's files, from the swagger-ui-bundle package (never from a CDN)."""
        kind = SWAGGER_FILES.get(name)
        if kind is None:
            raise NotFoundError(f"No Swagger UI file {name!r}.")
        return Response(_swagger_file(name), media_type=kind, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI over /openapi.json, from local files; /static/app.js starts it (no inline script)."""
        return HTMLResponse(DOCS_PAGE)

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/", error: str | None = None) -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"request": request, "next": _safe_next(next), "error": error})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await form_data(request)
        key, next = form.get("key", ""), form.get("next", "/")
        p = request.app.state.km.keys.lookup(key.strip()) if key.strip() else None
        if p is None:
            return templates.TemplateResponse(
                request, "login.html",
                {"request": request, "next": _safe_next(next), "error": "That key is unknown or revoked."},
                status_code=401,
            )  # fmt: skip
        r = RedirectResponse(_safe_next(next), status_code=303)
        r.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", max_age=12 * 3600)
        return r

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE)
        return r

    @app.get("/", include_in_schema=False)
    def overview(request: Request) -> Response:
        p = _principal(request)
        if p is None:
            return _login_redirect(request)
        if not p.can("analyses"):
            return RedirectResponse("/cases", status_code=303) if _act_ready("cases") else _forbidden(request, p, "", "analyses")
        filters = _filters(request)
        try:
            res = run_analysis(request.app.state.km, "journey", filters)
        except Exception as exc:  # noqa: BLE001 - shown on the page in the one error voice
            return _error_page(request, p, "", exc, bar=_bar(request, filters))
        d = res.data
        tps = d["touchpoints"]
        pits = [t for t in tps if t.get("kind") == "pit"]
        peaks = [t for t in tps if t.get("kind") == "peak"]
        moments = None
        outcome = _default_outcome(request, _outcomes(request))
        if outcome and available("moments"):
            try:
                m = run_analysis(request.app.state.km, "moments",
                                 {"outcome": outcome, **DASHBOARD_PARAMS["moments"], **filters})  # fmt: skip
                if m.data.get("mode", "valence") == "valence":  # the box speaks of valence; the page says the rest
                    moments = sorted(m.data["touchpoints"], key=lambda r: -(r.get("priority") or 0))[:5]
            except Exception:  # noqa: BLE001 - the overview still shows the journey
                log.info("the overview shows no moments of truth for %r", outcome, exc_info=True)
                moments = None
        fig = res.figure()
        return templates.TemplateResponse(request, "overview.html", _ctx(
            request, p, "", title="Overview", d=d, pits=pits, peaks=peaks, moments=moments, outcome=outcome,
            chart=charts.fig_div(fig, height=460) if fig is not None else None, warnings=res.warnings,
            bar=_bar(request, filters), case_counts=_case_counts(request),
        ))  # fmt: skip

    @app.get("/journey", include_in_schema=False)
    def journey_page(request: Request) -> Response:
        p = _gate(request, "journey", "analyses")
        if not isinstance(p, Principal):
            return p
        filters = _filters(request)
        try:
            res = run_analysis(request.app.state.km, "journey", filters)
        except Exception as exc:  # noqa: BLE001
            return _error_page(request, p, "journey", exc, bar=_bar(request, filters))
        fig = res.figure()
        d = res.data

        def csv(name: str) -> str:
            return download_url(request, "journey", name)

        return templates.TemplateResponse(request, "journey.html", _ctx(
            request, p, "journey", title="Journey map", d=d, intro=INTRO["journey"],
            chart=charts.fig_div(fig, height=520) if fig is not None else None,
            touchpoints=table(d["touchpoints"], columns=["touchpoint", "events", "reach", "mean_valence", "ci_low",
                                                          "ci_high", "share_negative", "failure_rate", "kind"],
                              download=csv("touchpoints")),
            raw_touchpoints=d["touchpoints"],
            transitions=table(d["transitions"], limit=15, download=csv("transitions")),
            drop_offs=table(d["drop_offs"], download=csv("drop_offs")),
            variants=table(d.get("variants"), limit=10, download=csv("variants")), warnings=res.warnings,
            bar=_bar(request, filters), query=request.url.query,
        ))  # fmt: skip

    @app.get("/journey/{touchpoint}", include_in_schema=False)
    def touchpoint_page(request: Request, touchpoint: str) -> Response:
        p = _gate(request, "journey", "analyses")
        if not isinstance(p, Principal):
            return p
        filters = _filters(request)
        try:
            res = run_analysis(request.app.state.km, "journey", filters)
        except Exception as exc:  # noqa: BLE001
            return _error_page(request, p, "journey", exc, bar=_bar(request, filters))
        row = next((t for t in res.data["touchpoints"] if t["touchpoint"] == touchpoint), None)
        if row is None:
            from keymoments.events import did_you_mean

            names = [t["touchpoint"] for t in res.data["touchpoints"]]
            exc = KeymomentsError(f"No touchpoint {touchpoint!r} in the journey map.{did_you_mean(touchpoint, names)}")
            return _error_page(request, p, "journey", exc)
        worst, best = _comments(request, touchpoint, filters)
        out = [t for t in res.data["transitions"] if t["from"] == touchpoint][:8]
        inn = [t for t in res.data["transitions"] if t["to"] == touchpoint][:8]
        return templates.TemplateResponse(request, "touchpoint.html", _ctx(
            request, p, "journey", title=touchpoint, tp=row, worst=worst, best=best,
            outgoing=table(out, download=download_url(request, "journey", "transitions")),
            incoming=table(inn, download=download_url(request, "journey", "transitions")),
            query=request.url.query, note=describe_filters(filters),
        ))  # fmt: skip

    for slug, label, analysis, perm, needs_outcome, _group in PAGES:
        if slug in ("", "journey") or analysis is None:
            continue
        _analysis_page(app, slug, label, analysis, perm, needs_outcome)
    _download(app)

    from keymoments.serve import act_views, text_views

    act_views.install(app)
    text_views.install(app)


def _safe_next(nxt: str) -> str:
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"


def _safe_choices(request: Request) -> dict[str, list[str]]:
    try:
        return _filter_choices(request)
    except Exception:  # noqa: BLE001 - filters are a convenience
        log.warning("the filter bar's choices could not be read", exc_info=True)
        return {"channels": [], "segments": []}


def _case_counts(request: Request) -> dict[str, int] | None:
    if not _act_ready("cases"):
        return None
    try:
        from keymoments.act.cases import CaseBook

        df = CaseBook(request.app.state.km.store).list()
    except Exception:  # noqa: BLE001 - the overview still shows the journey
        log.warning("the overview cannot count the cases", exc_info=True)
        return None
    return {str(k): int(v) for k, v in df["status"].value_counts().items()} if len(df) else {}


def _comments(request: Request, touchpoint: str, filters: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The most negative and most positive comments left at a touchpoint (with the journey filters)."""
    from keymoments.analyze.filters import filter_events

    store = request.app.state.km.store
    t = filter_events(store, **filters)
    t = t.filter((t.touchpoint == touchpoint) & t.text.notnull() & (t.text != ""))
    cols = ["ts", "customer_id", "journey_id", "channel", "rating", "valence", "text"]
    worst = t.select(*cols).order_by([t.valence.asc(), t.ts.desc()]).limit(12).to_pandas()
    best = t.select(*cols).order_by([t.valence.desc(), t.ts.desc()]).limit(12).to_pandas()
    from keymoments.present import to_jsonable

    return to_jsonable(worst), to_jsonable(best)


def _page_params(request: Request, analysis: str, needs_outcome: bool, applied: dict[str, Any]) -> dict[str, Any]:
    """What a page (and its CSV links) asks of an analysis: the dashboard's defaults, the filters it takes and the
    outcome (the query's, else the default one when the analysis needs one)."""
    params: dict[str, Any] = {**DASHBOARD_PARAMS.get(analysis, {}), **applied}
    outcome = request.query_params.get("outcome") or None
    if needs_outcome:
        outcome = outcome or _default_outcome(request, _outcomes(request))
        if outcome is None:
            raise NotEnoughDataError(
                "No outcomes in the store yet: this analysis relates the journeys to one; load some with "
                "`keymoments ingest-outcomes` or POST /api/v1/outcomes."
            )
    if outcome and (needs_outcome or analysis == "milestones"):
        params["outcome"] = outcome
    return params


def _tables_of(res: Any) -> dict[str, Any]:
    """A fitted result's tables (``Analysis.tables()``); none when the analysis cannot give them."""
    try:
        return res.model.tables()
    except Exception:  # noqa: BLE001 - the page still shows the numbers; the link is left out
        log.warning("the tables of %s cannot be listed for download", res.name, exc_info=True)
        return {}


#: tables of pages that are not analyses, for the CSV route: {source: (permission, (request, principal) ->
#: {table: frame})}; the act pages register theirs (serve/act_views.py)
TABLE_SOURCES: dict[str, tuple[str, Any]] = {}


def _download(app: FastAPI) -> None:
    """One route serves every dashboard table as CSV: ``/download/<source>/<table>.csv``, where the source is an
    analysis (with the page's outcome and filters, checked by the analyses' permission) or a page registered in
    :data:`TABLE_SOURCES` (checked by that page's permission); cells formula-safe."""

    @app.get("/download/{analysis}/{table}.csv", include_in_schema=False)
    def download(request: Request, analysis: str, table: str) -> Response:
        from keymoments.events import did_you_mean
        from keymoments.present import csv_safe_frame, flat_frame

        page = next((pg for pg in PAGES if pg[2] == analysis and pg[0]), None)
        slug = page[0] if page else analysis if analysis in TABLE_SOURCES else ""
        perm = TABLE_SOURCES[analysis][0] if page is None and analysis in TABLE_SOURCES else "analyses"
        p = _gate(request, slug, perm)
        if not isinstance(p, Principal):
            return p
        if page is not None and available(analysis):
            applied, _ = _applied(analysis, _filters(request))
            try:
                res = run_analysis(request.app.state.km, analysis, _page_params(request, analysis, page[4], applied))
            except Exception as exc:  # noqa: BLE001
                return _error_page(request, p, slug, exc)
            tables = _tables_of(res)
        elif analysis in TABLE_SOURCES:
            try:
                tables = TABLE_SOURCES[analysis][1](request, p)
            except Exception as exc:  # noqa: BLE001
                return _error_page(request, p, slug, exc)
        else:
            known = sorted({pg[2] for pg in PAGES if pg[2]} | set(TABLE_SOURCES))
            return _error_page(request, p, slug, NotFoundError(f"No tables of {analysis!r} to download.{did_you_mean(analysis, known)}"))
        if table not in tables:
            return _error_page(request, p, slug, NotFoundError(
                f"{analysis!r} has no table {table!r}; it has {sorted(tables)}.{did_you_mean(table, tables)}"))
        body = csv_safe_frame(flat_frame(tables[table])).to_csv(index=False)
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{analysis}-{table}.csv"'})  # fmt: skip


def _analysis_page(app: FastAPI, slug: str, label: str, analysis: str, perm: str, needs_outcome: bool) -> None:
    picks_outcome = needs_outcome or analysis == "milestones"  # milestones relate to an optional outcome

    def page(request: Request) -> Response:
        p = _gate(request, slug, perm)
        if not isinstance(p, Principal):
            return p
        st = status(analysis)
        if st.state == "not installed":
            return _error_page(request, p, slug, KeymomentsError(f"The {label} analysis is not installed ({st.reason})."))
        if not st.ok:
            return _error_page(request, p, slug, RuntimeError(f"the {label} analysis failed to load: {st.reason}"))
        outcomes = _outcomes(request)
        filters = _filters(request)
        applied, skipped = _applied(analysis, filters)
        try:
            params = _page_params(request, analysis, needs_outcome, applied)
        except NotEnoughDataError as exc:
            return _error_page(request, p, slug, exc, bar=_bar(request, filters, skipped=skipped))
        outcome = params.get("outcome") or request.query_params.get("outcome") or None
        bar = _bar(request, filters, skipped=skipped, outcomes=outcomes if picks_outcome else None, outcome=outcome)
        try:
            res = run_analysis(request.app.state.km, analysis, params)
        except Exception as exc:  # noqa: BLE001
            return _error_page(request, p, slug, exc, bar=bar)
        fig = res.figure()
        if analysis == "moments":
            fig = charts.moments_figure(res.data)
        names = set(_tables_of(res))
        facts, tables, notes = _sections(
            res.data, lambda k: download_url(request, analysis, k) if k in names else None)
        args = {"outcome": params.get("outcome"), **{k: v for k, v in applied.items() if v}}
        args = {k: v for k, v in args.items() if v}
        return templates.TemplateResponse(request, "analysis.html", _ctx(
            request, p, slug, title=label, intro=INTRO.get(analysis, ""), spec=ANALYSES[analysis],
            chart=charts.fig_div(fig) if fig is not None else None, facts=facts, tables=tables, notes=notes,
            warnings=res.warnings, bar=bar, api=f"/api/v1/analyses/{analysis}" + (f"?{urlencode(args)}" if args else ""),
            cli=" ".join([ANALYSES[analysis].cli, *(f"--{k} {shlex.quote(str(v))}" for k, v in args.items()), "--json"]),
        ))  # fmt: skip

    page.__name__ = f"page_{slug.replace('-', '_')}"
    app.add_api_route(f"/{slug}", page, methods=["GET"], include_in_schema=False)
