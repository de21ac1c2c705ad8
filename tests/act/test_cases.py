"""Cases: the lifecycle, assignment and handoffs, approvals moving a case on, owner continuity."""

from __future__ import annotations

import pytest

from keymoments.act.budgets import Ledger
from keymoments.act.cases import CaseBook
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.exceptions import ConfigError, NotFoundError

from .conftest import ev, load_events

PB = """
budgets: [{name: b, amount: 1000, empowerment_limit: 100}]
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: open_case, owner: team, team: recovery, sla_hours: 4}
      - {type: compensate, amount: 250, budget: b}
  - name: gtd
    trigger: {type: event, valence_below: -0.5}
    actions: [{type: open_case, keep_owner: true, resolve_when_valence_above: 0.3}]
"""


def test_lifecycle_approval_and_continuity(store):
    pf = loads_playbooks(PB)
    load_events(store, [
        ev("a", 0, outcome="lost", event_id="a1"),
        ev("g", 0, valence=-0.9, employee_id="ann", event_id="g1"),
        ev("g", 1, "support", valence=-0.1, employee_id="bob", event_id="g2"),
        ev("g", 2, "support", valence=0.8, employee_id="ann", event_id="g3"),
    ])  # fmt: skip
    PlaybookRunner(store, pf).run_live()
    book = CaseBook(store)
    cases = book.list().set_index("playbook")
    rec = book.get(cases.loc["recover", "case_id"])
    assert rec["status"] == "awaiting_approval" and rec["compensation_cents"] == 25000  # 250 > the 100 limit
    assert [e["kind"] for e in rec["timeline"]] == ["opened", "status"]
    Ledger(store, pf).approve(rec["approval_entry_id"], by="manager")
    rec = book.get(rec["case_id"])
    assert rec["status"] == "in_progress" and rec["timeline"][-1]["kind"] == "approval"
    book.assign(rec["case_id"], "cy", actor="lead")
    book.assign(rec["case_id"], "dee", actor="lead")
    assert book.get(rec["case_id"])["handoffs"] == 1  # the first assignment is not a handoff
    with pytest.raises(ConfigError, match="can move to"):
        book.transition(rec["case_id"], "open", actor="dee")
    book.transition(rec["case_id"], "resolved", actor="dee")
    assert book.transition(rec["case_id"], "closed", actor="dee")["status"] == "closed"
    gtd = book.get(cases.loc["gtd", "case_id"])
    assert gtd["status"] == "resolved" and gtd["owner"] == "ann" and gtd["handoffs"] == 1
    assert [e["kind"] for e in gtd["timeline"]] == ["opened", "handoff", "status"]
    cont = book.continuity().set_index("playbook")
    assert cont.loc["gtd", "owner_continuity"] == 1.0
    assert cont.loc["recover", "owner_continuity"] == 0.0  # resolved by dee, first owned by cy
    with pytest.raises(NotFoundError):
        book.get("nope")
