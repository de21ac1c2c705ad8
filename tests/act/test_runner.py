"""Backtest and live runs over a real store: fire records decisions, cases, ledger and outbox exactly once."""

from __future__ import annotations

from keymoments.act.cases import CaseBook
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.store import act_tables as sql

from .conftest import ev, load_events

PB = """
budgets: [{name: recovery, scope: location, period: week, amount: 100, empowerment_limit: 30}]
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery, reason: "{outcome} at {touchpoint}", sla_hours: 24}
      - {type: compensate, amount: 25, budget: recovery}
      - {type: notify, template: "sorry about your {touchpoint}", url: "http://127.0.0.1:9/hook"}
  - name: vip-recover
    trigger: {type: crisis}
    conditions: [{type: field, field: attrs.tier, op: eq, value: gold}]
    actions:
      - {type: open_case, team: vip}
      - {type: compensate, amount: 50, budget: recovery}
"""

HISTORY = [
    ev("a", 0, outcome="cancelled", employee_id="ann", location_id="CPH", event_id="a1"),
    ev("a", 2, "support", outcome="resolved", employee_id="ann", location_id="CPH", event_id="a2"),
    ev("b", 1, outcome="lost", employee_id="bob", location_id="CPH", attrs={"tier": "gold"}, event_id="b1"),
    ev("c", 3, outcome="delayed", employee_id="cy", location_id="CPH", event_id="c1"),
    ev("d", 4, outcome="delayed", employee_id="cy", location_id="OSL", event_id="d1"),
]


def test_backtest_summarises_without_writing(store):
    load_events(store, HISTORY)
    runner = PlaybookRunner(store, loads_playbooks(PB))
    res = runner.backtest()
    s = res.summary.set_index("playbook")
    assert s.loc["recover", "fired"] == 4 and s.loc["recover", "cases_opened"] == 4
    assert s.loc["vip-recover", "approvals_needed"] == 1  # 50 > the 30 limit
    # CPH: 25 (a) + 25 (b) + 50 (b, vip) = 100 -> c's 25 is blocked; OSL has its own pool
    assert s.loc["recover", "budget_blocks"] == 1
    assert s.loc["recover", "cost"] == 75.0
    assert s.loc["recover", "cases_resolved"] == 1
    assert store.count("playbook_decisions") == 0 and store.count("cases") == 0
    d = res.to_dict()
    assert d["events"] == 5 and d["playbooks"][0]["playbook"] == "recover"


def test_backtest_record_and_determinism(store):
    load_events(store, HISTORY)
    runner = PlaybookRunner(store, loads_playbooks(PB))
    a = runner.backtest(record=True)
    b = runner.backtest(record=True)
    assert [d.to_dict() for d in a.decisions] == [d.to_dict() for d in b.decisions]
    assert store.count("playbook_decisions") == 2 * len(a.decisions)
    assert store.count("holdout_assignments") == 5


def test_live_fires_once_and_resumes_from_cursor(store):
    pf = loads_playbooks(PB)
    load_events(store, HISTORY[:3])
    runner = PlaybookRunner(store, pf)
    r1 = runner.run_live()
    assert r1.events == 3
    assert store.count("cases") == 3
    cur = store.cursor()
    assert sql.outbox_counts(cur) == {"pending": 2, "recorded": 3}  # the open_case actions are logged
    cur.close()
    # nothing new: nothing happens
    assert runner.run_live().events == 0
    assert store.count("playbook_decisions") == r1.written["decisions"]
    # new events arrive: only they are processed; the state (budgets, cases) carries over
    load_events(store, HISTORY[3:])
    r2 = PlaybookRunner(store, pf).run_live()
    assert r2.events == 2
    assert store.count("cases") == 5
    book = CaseBook(store)
    a_case = book.list().set_index("customer_id").loc["a"]
    assert a_case["status"] == "resolved"
    assert a_case["reason"] == "cancelled at flight"
    b_cases = book.list().query("customer_id == 'b'")
    assert set(b_cases["status"]) == {"in_progress", "awaiting_approval"}
    balances = runner.ledger.balances().set_index("scope_key")
    assert balances.loc["CPH", "remaining_cents"] == 0
    assert balances.loc["CPH", "reserved_cents"] == 5000
    assert store.count("ledger") == 4  # a, b, b-vip, d; c was blocked


def test_replaying_fire_twice_adds_nothing(store):
    pf = loads_playbooks(PB)
    load_events(store, HISTORY)
    runner = PlaybookRunner(store, pf)
    res = runner.backtest()
    w1 = runner.fire(res.decisions)
    counts = {t: store.count(t) for t in ("playbook_decisions", "cases", "ledger", "outbox", "case_events")}
    w2 = runner.fire(res.decisions)  # a crash after the commit, then the same batch again
    assert w1["decisions"] > 0 and w2["decisions"] == 0
    assert counts == {t: store.count(t) for t in counts}


def test_live_stream_decides_at_once_and_records_in_batches(store):
    from keymoments.act.engine import event_tuple
    from keymoments.act.runner import LiveStream

    pf = loads_playbooks(PB)
    load_events(store, HISTORY)
    cur = store.cursor()
    events = [e for ch in sql.iter_events(cur, order="seq") for e in ch]
    cur.close()
    runner = PlaybookRunner(store, pf)
    with LiveStream(runner, flush_every=0.01) as live:
        decided = [d for e in events for d in live.submit(e)]
        assert decided  # decisions come back synchronously
    assert store.count("playbook_decisions") == len(decided)
    # the cursor moved with the stream: a live pass finds nothing left to do, and decides nothing twice
    again = PlaybookRunner(store, pf).run_live()
    assert again.events == 0 and store.count("playbook_decisions") == len(decided)
    assert event_tuple(HISTORY[0])[2] == "a"


def test_live_budgets_follow_the_ledger_including_spends_by_people(store):
    pf = loads_playbooks("""
budgets: [{name: b, scope: global, period: total, amount: 100}]
playbooks:
  - name: gift
    trigger: {type: crisis}
    actions: [{type: compensate, amount: 40, budget: b}]
""")
    load_events(store, [ev(c, i, outcome="lost", event_id=c) for i, c in enumerate("abc")])
    bt = PlaybookRunner(store, pf).backtest()
    assert [d.status for d in bt.decisions] == ["fired", "fired", "blocked"]  # simulated: 40 + 40, then 20 left
    runner = PlaybookRunner(store, pf)
    runner.ledger.spend("b", 5000, note="an agent's goodwill gesture")  # 50 of 100 gone before the run
    live = runner.run_live()
    assert [d.status for d in live.decisions] == ["fired", "blocked", "blocked"]
    assert runner.ledger.remaining("b") == 1000
    assert store.count("ledger") == 2


def test_live_stream_advance_fires_proactive_triggers_on_time(store):
    from datetime import timedelta

    from keymoments.act.engine import event_tuple
    from keymoments.act.runner import LiveStream

    from .conftest import T0

    pf = loads_playbooks("""
playbooks:
  - name: unresolved
    trigger: {type: absence, after: {outcome: cancelled}, expect: {outcome: resolved}, within_hours: 48}
    actions: [{type: open_case, team: escalations, owner: team}]
""")
    with LiveStream(PlaybookRunner(store, pf), flush_every=0.01) as live:
        assert live.submit(event_tuple(ev("a", 0, outcome="cancelled", event_id="a1"), seq=1)) == []
        assert live.advance(T0 + timedelta(hours=47)) == []
        due = live.advance(T0 + timedelta(hours=49))
        assert [(d.playbook, d.customer_id) for d in due] == [("unresolved", "a")]
    assert store.count("cases") == 1


def test_going_live_learns_from_the_history_and_acts_only_on_what_arrives_after(store):
    pf = loads_playbooks(PB)
    load_events(store, HISTORY[:3])
    runner = PlaybookRunner(store, pf)
    cursor = runner.go_live()
    assert cursor > 0 and runner.run_live().decisions == []
    load_events(store, HISTORY[3:])
    later = [d for d in runner.run_live().decisions if d.kind == "fire"]
    assert later and all(d.seq > cursor for d in later)
    assert runner.go_live() == runner.run_live().last_seq  # going live again changes nothing
