"""Compensation from the case queue (issue 15, items 3 and 6): the empowerment limit holds per case, the case's
total is the ledger's, and approvals walk the case through every reserved spend."""

from __future__ import annotations

import shutil

import pytest

PLAYBOOKS = """\
budgets:
  - {name: recovery, scope: global, period: month, amount: 100000, empowerment_limit: 2000}
playbooks:
  - name: open-cases
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery, owner: team}
"""


@pytest.fixture(scope="module")
def desk(small_demo_db, tmp_path_factory):
    from fastapi.testclient import TestClient

    from keymoments.act.runner import PlaybookRunner
    from keymoments.act.yaml_loader import loads_playbooks
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    tmp = tmp_path_factory.mktemp("desk")
    shutil.copyfile(small_demo_db, tmp / "km.duckdb")
    (tmp / "playbooks.yaml").write_text(PLAYBOOKS)
    store = Store(tmp / "km.duckdb")
    PlaybookRunner(store, loads_playbooks(PLAYBOOKS)).run_live()
    keys = {role: create_key(store, role, name=role, employee_id="E001" if role == "agent" else None)[1]
            for role in ("admin", "agent")}  # fmt: skip
    client = TestClient(create_app(store, playbooks=tmp / "playbooks.yaml"), raise_server_exceptions=False)

    def call(method: str, path: str, role: str = "agent", **kw):  # noqa: ANN003, ANN202
        return client.request(method, path, headers={"X-API-Key": keys[role]}, **kw)

    call.store = store  # type: ignore[attr-defined]
    yield call
    client.close()
    store.close()


def _fresh_case(call) -> str:  # noqa: ANN001
    cases = call("GET", "/api/v1/cases", params={"status": "open", "limit": 1000}).json()["cases"]
    used = {r[0] for r in call.store.query("SELECT DISTINCT customer_id FROM ledger").itertuples(index=False)}
    return next(c["case_id"] for c in cases if c["owner"] is None and c["customer_id"] not in used)


def test_three_spends_by_one_agent_on_one_case_need_approval_past_the_limit(desk):
    cid = _fresh_case(desk)
    assert desk("POST", f"/api/v1/cases/{cid}/assign", json={}).status_code == 200
    statuses = []
    for _ in range(3):
        r = desk("POST", f"/api/v1/cases/{cid}/compensate", json={"pool": "recovery", "amount": 1500})
        assert r.status_code == 200, r.text
        statuses.append([e["status"] for e in r.json()["ledger"]][-1])
    assert statuses == ["approved", "pending_approval", "pending_approval"]  # not $4,500 against $2,000
    case = desk("GET", f"/api/v1/cases/{cid}").json()
    assert case["status"] == "awaiting_approval" and case["compensation"] == 4500.0
    first_pending = case["approval_entry_id"]

    # the admin rejects one reserved spend: the case keeps what was spent and waits on the other
    r = desk("POST", f"/api/v1/cases/{cid}/approve", role="admin", json={"approved": False})
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["compensation"] == 3000.0 and case["status"] == "awaiting_approval"
    assert case["approval_entry_id"] != first_pending
    r = desk("POST", f"/api/v1/cases/{cid}/approve", role="admin", json={"approved": True})
    case = r.json()
    assert case["compensation"] == 3000.0 and case["status"] == "in_progress"
    ledger = sorted((e["status"], e["amount_cents"]) for e in case["ledger"])
    assert ledger == [("approved", 150_000), ("approved", 150_000), ("rejected", 150_000)]


@pytest.mark.parametrize("amount", ["inf", "1e308", "NaN", "0.004", "1e20"])
def test_amounts_that_are_not_money_are_a_clean_error_and_spend_nothing(desk, amount):
    from keymoments.act.budgets import Ledger  # noqa: F401 - the ledger is what must stay untouched

    cid = _fresh_case(desk)
    before = desk.store.query("SELECT count(*) AS n FROM ledger")["n"].iloc[0]
    r = desk("POST", f"/api/v1/cases/{cid}/compensate", json={"pool": "recovery", "amount": amount})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["ok"] is False
    assert desk.store.query("SELECT count(*) AS n FROM ledger")["n"].iloc[0] == before
