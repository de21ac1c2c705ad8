"""Every route of the app, API and dashboard alike, against every caller: admin, analyst, agent, no key and a
wrong key. The expected matrix is written out here, route by route, so a new route fails this test until
someone decides who may call it; a dashboard form can never allow what its API twin refuses."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

ROLES = ("admin", "analyst", "agent")
CALLERS = (*ROLES, "none", "wrong")
PUBLIC = "public"
ALL = frozenset(ROLES)
ADMIN = frozenset({"admin"})
READERS = frozenset({"admin", "analyst"})  # analyses and playbooks
WORKERS = frozenset({"admin", "agent"})  # working cases, spending

#: (method, route path) -> who may call it; the form route is expanded per action below
EXPECTED: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/static/plotly.min.js"): PUBLIC,
    ("GET", "/static/app.css"): PUBLIC,
    ("GET", "/static/app.js"): PUBLIC,
    ("GET", "/static/swagger/{name}"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/logout"): PUBLIC,
    # API
    ("GET", "/api/v1/analyses"): READERS,
    **{("GET", f"/api/v1/analyses/{n}"): READERS for n in
       ("journey", "moments", "peak-end", "segments", "recovery", "milestones", "recognition", "roadmap")},
    ("POST", "/api/v1/events"): ADMIN,
    ("POST", "/api/v1/outcomes"): ADMIN,
    ("GET", "/api/v1/cases"): ALL,
    ("GET", "/api/v1/cases/{case_id}"): ALL,
    ("POST", "/api/v1/cases/{case_id}/assign"): WORKERS,
    ("POST", "/api/v1/cases/{case_id}/transition"): WORKERS,
    ("POST", "/api/v1/cases/{case_id}/resolve"): WORKERS,
    ("POST", "/api/v1/cases/{case_id}/compensate"): WORKERS,
    ("POST", "/api/v1/cases/{case_id}/approve"): ADMIN,
    ("GET", "/api/v1/budgets"): ALL,
    ("GET", "/api/v1/budgets/ledger"): ALL,
    ("POST", "/api/v1/budgets/ledger/{entry_id}/settle"): ADMIN,
    ("GET", "/api/v1/playbooks"): READERS,
    ("POST", "/api/v1/playbooks/validate"): READERS,
    ("POST", "/api/v1/playbooks/backtest"): READERS,
    ("POST", "/api/v1/playbooks/run"): ADMIN,
    ("GET", "/api/v1/playbooks/{name}/uplift"): READERS,
    ("GET", "/api/v1/keys"): ADMIN,
    ("POST", "/api/v1/keys"): ADMIN,
    ("DELETE", "/api/v1/keys/{key_id}"): ADMIN,
    ("GET", "/api/v1/texts"): READERS,  # tagged texts, as the analyses read them
    ("POST", "/api/v1/texts/{text_id}/tag"): READERS,  # correcting a tag changes the analyses: analysts decide
    # dashboard
    ("GET", "/"): ALL,  # agents are sent on to their case queue
    ("GET", "/journey"): READERS,
    ("GET", "/journey/{touchpoint}"): READERS,
    **{("GET", f"/{n}"): READERS for n in
       ("moments", "peak-end", "segments", "recovery", "milestones", "recognition", "roadmap")},
    ("GET", "/cases"): ALL,
    ("GET", "/cases/{case_id}"): ALL,
    ("GET", "/budgets"): ALL,
    ("GET", "/playbooks"): READERS,
    ("GET", "/download/{analysis}/{table}.csv"): READERS,  # every dashboard table as CSV, as the analyses
    ("POST", "/cases/{case_id}/{action}"): "per action",
    ("GET", "/texts"): READERS,
    ("POST", "/texts/{text_id}/tag"): READERS,  # the form twin of POST /api/v1/texts/{text_id}/tag
}

#: the dashboard's case forms: the same answer as the API action each one is the twin of
FORM_ACTIONS: dict[str, frozenset[str]] = {
    "take": WORKERS,  # API: assign
    "assign": WORKERS,
    "status": WORKERS,  # API: transition
    "transition": WORKERS,
    "resolve": WORKERS,
    "compensate": WORKERS,
    "approve": ADMIN,
    "reject": ADMIN,
}


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts

        routes = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI before lazily included routers
        routes = list(app.routes)
    out = []
    for r in routes:
        for m in sorted(r.methods or ()):
            if m != "HEAD":
                out.append((m, r.path))
    return out


@pytest.fixture(scope="module")
def walk_api(small_demo_db, tmp_path_factory, api_class):
    db = tmp_path_factory.mktemp("walk") / "walk.duckdb"
    shutil.copyfile(small_demo_db, db)
    a = api_class(db)
    assert a.post("/api/v1/playbooks/run").status_code == 200  # opens cases
    yield a
    a.close()


def _call(api: Any, caller: str, method: str, path: str, body: Any = None) -> Any:
    headers = {}
    if caller in ROLES:
        headers["X-API-Key"] = api.keys[caller]
    elif caller == "wrong":
        headers["X-API-Key"] = "km_deadbeef_not-a-real-key"
    kw: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if method != "GET" and body is not None:
        if isinstance(body, bytes):
            kw["content"] = body
        elif isinstance(body, dict) and path.startswith(("/cases/", "/login")):
            kw["data"] = body
        else:
            kw["json"] = body
    api.client.cookies.clear()
    return api.client.request(method, path, **kw)


def _denied(r: Any) -> bool:
    if r.status_code in (401, 403):
        return True
    return r.status_code in (302, 303, 307) and r.headers.get("location", "").startswith("/login?next=")


def _concrete(api: Any, method: str, path: str) -> list[tuple[str, Any]]:
    """Concrete requests for a route: real ids for reads, ids that exist nowhere for writes (so an allowed
    write is refused by the handler with a 404 or 422, not carried out), and bodies that fail validation."""
    case = api.get("/api/v1/cases", params={"limit": 1}).json()["cases"][0]["case_id"]
    subs = {
        "{case_id}": case if method == "GET" else "case-nope",
        "{touchpoint}": "Check-in",
        "{name}": "service-recovery",
        "{entry_id}": "le-nope",
        "{key_id}": "nosuchkey",
        "{analysis}": "journey",
        "{table}": "touchpoints",
        "{text_id}": "text-nope",
    }
    if path == "/static/swagger/{name}":
        subs["{name}"] = "swagger-ui.css"
    for k, v in subs.items():
        path = path.replace(k, v)
    body: Any = None
    if method != "GET":
        body = b"x: [" if "/playbooks/" in path and not path.endswith("/run") else {}
    if path == "/cases/case-nope/{action}":
        return [(path.replace("{action}", a), {"amount": "1", "pool": "recovery", "to": "closed"}) for a in FORM_ACTIONS]
    return [(path, body)]


def test_every_route_has_an_expected_answer(walk_api):
    from keymoments.serve.auth import CASE_ACTIONS

    assert set(FORM_ACTIONS) == set(CASE_ACTIONS), "every case action the forms accept has an expected answer here"
    served = set(_routes(walk_api.app))
    missing = sorted(served - set(EXPECTED))
    assert not missing, f"routes nobody has classified (add them to EXPECTED with who may call them): {missing}"
    gone = sorted(set(EXPECTED) - served)
    assert not gone, f"EXPECTED names routes the app no longer serves: {gone}"


def test_every_route_times_every_caller(walk_api):
    wrong: list[str] = []
    for method, route in sorted(set(_routes(walk_api.app))):
        for path, body in _concrete(walk_api, method, route):
            who = EXPECTED[(method, route)]
            if who == "per action":
                who = FORM_ACTIONS[path.rsplit("/", 1)[1]]
            for caller in CALLERS:
                if route == "/login" and method == "POST":
                    body = {"key": walk_api.keys[caller] if caller in ROLES else "km_deadbeef_nope", "next": "/"}
                r = _call(walk_api, caller, method, path, body)
                if r.status_code >= 500:
                    wrong.append(f"{method} {path} as {caller}: {r.status_code} {r.text[:200]}")
                    continue
                if who == PUBLIC:
                    ok = not _denied(r) if not (route == "/login" and method == "POST") else (
                        (r.status_code == 303) == (caller in ROLES))
                else:
                    ok = _denied(r) != (caller in who)
                if not ok:
                    wrong.append(f"{method} {path} as {caller}: {r.status_code} (allowed: {sorted(who) if who != PUBLIC else who})")
    assert not wrong, "\n".join(wrong)


def _spent(api: Any, case_id: str) -> list[dict]:
    return [e for e in api.get("/api/v1/budgets/ledger", params={"limit": 5000}).json()["entries"] if e["case_id"] == case_id]


def test_an_analyst_cannot_spend_or_close_through_the_dashboard_forms(walk_api):
    case = walk_api.get("/api/v1/cases", params={"status": "open", "limit": 1}).json()["cases"][0]
    cid = case["case_id"]
    before = _spent(walk_api, cid)
    walk_api.client.cookies.clear()
    analyst = {"X-API-Key": walk_api.keys["analyst"]}
    r = walk_api.client.post(f"/cases/{cid}/compensate", data={"pool": "recovery", "amount": "1500"}, headers=analyst,
                             follow_redirects=False)  # fmt: skip
    assert r.status_code == 403, r.text[:300]
    assert "analyst" in r.text and "budgets:spend" in r.text
    r = walk_api.client.post(f"/cases/{cid}/status", data={"to": "closed"}, headers=analyst, follow_redirects=False)
    assert r.status_code == 403
    r = walk_api.client.post(f"/cases/{cid}/resolve", data={}, headers=analyst, follow_redirects=False)
    assert r.status_code == 403
    after = walk_api.get(f"/api/v1/cases/{cid}").json()
    assert after["status"] == case["status"] and after["compensation"] == case["compensation"]
    assert _spent(walk_api, cid) == before
    # signed in through the cookie, as a browser is: the same answer
    walk_api.client.cookies.set("km_key", walk_api.keys["analyst"])
    r = walk_api.client.post(f"/cases/{cid}/compensate", data={"pool": "recovery", "amount": "1500"}, follow_redirects=False)
    walk_api.client.cookies.clear()
    assert r.status_code == 403
    assert _spent(walk_api, cid) == before


def test_an_agent_cannot_approve_through_the_dashboard_form(walk_api):
    case = walk_api.get("/api/v1/cases", params={"limit": 1}).json()["cases"][0]
    walk_api.client.cookies.clear()
    r = walk_api.client.post(f"/cases/{case['case_id']}/approve", headers={"X-API-Key": walk_api.keys["agent"]},
                             follow_redirects=False)  # fmt: skip
    assert r.status_code == 403


def test_an_unknown_form_action_is_404(walk_api):
    walk_api.client.cookies.clear()
    r = walk_api.client.post("/cases/case-nope/steal", headers={"X-API-Key": walk_api.keys["admin"]}, follow_redirects=False)
    assert r.status_code == 404 and "Unknown case action" in r.text
