"""Empowerment limits per case and per customer per period; budget periods on the wall clock live and in event
time in back-tests (issue 15, items 6 and 7)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keymoments.act.budgets import Ledger
from keymoments.act.engine import period_id, period_start
from keymoments.act.models import BudgetPool
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.store.store import Store

from .conftest import load_events

RECOVERY = BudgetPool(name="recovery", period="week", amount=100_000, empowerment_limit=2000)


@pytest.fixture
def ledger(store):
    return Ledger(store, [RECOVERY])


def test_three_spends_on_one_case_share_one_limit(store, ledger):
    """$4,500 in three spends on one case by one agent: only the first $1,500 is within the $2,000 limit."""
    got = [ledger.spend("recovery", 150_000, case_id="case-1", customer_id="c1", actor="E001").status
           for _ in range(3)]  # fmt: skip
    assert got == ["approved", "pending_approval", "pending_approval"]
    # once the case is past the limit (reservations count: they are asked for), a manager sees every spend
    assert ledger.spend("recovery", 1, case_id="case-1", customer_id="c9").status == "pending_approval"


def test_the_rest_of_the_limit_can_be_spent_at_once(store, ledger):
    assert ledger.spend("recovery", 150_000, case_id="case-1", customer_id="c1").status == "approved"
    assert ledger.spend("recovery", 50_000, case_id="case-1", customer_id="c1").status == "approved"
    assert ledger.spend("recovery", 1, case_id="case-1", customer_id="c1").status == "pending_approval"


def test_the_limit_holds_per_customer_per_period_across_cases(store, ledger):
    assert ledger.spend("recovery", 150_000, case_id="case-1", customer_id="c1").status == "approved"
    assert ledger.spend("recovery", 150_000, case_id="case-2", customer_id="c1").status == "pending_approval"
    assert ledger.spend("recovery", 150_000, case_id="case-3", customer_id="c2").status == "approved"
    # next week the customer's limit is fresh again; the case's is not (it holds for the case's life)
    later = datetime.now(UTC).replace(microsecond=0) + (period_start("week", 1) - period_start("week", 0))
    assert (
        ledger.spend("recovery", 150_000, case_id="case-4", customer_id="c1", at=later).status == "approved"
    )
    assert (
        ledger.spend("recovery", 100_000, case_id="case-1", customer_id="c1", at=later).status
        == "pending_approval"
    )


def test_a_rejected_reservation_gives_its_room_back(store, ledger):
    assert ledger.spend("recovery", 150_000, case_id="case-1", customer_id="c1").status == "approved"
    e = ledger.spend("recovery", 150_000, case_id="case-1", customer_id="c1")
    assert e.status == "pending_approval"
    ledger.reject(e.entry_id, by="boss")
    assert ledger.spend("recovery", 50_000, case_id="case-1", customer_id="c1").status == "approved"


def test_spends_without_a_case_or_customer_are_judged_alone(store, ledger):
    assert [ledger.spend("recovery", 150_000).status for _ in range(2)] == ["approved", "approved"]


CRISIS_FILE = """\
budgets:
  - {name: recovery, scope: global, period: month, amount: 100, empowerment_limit: 2000}
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery}
      - {type: compensate, amount: 60, budget: recovery}
"""


def _crises(dates: list[datetime]) -> list[dict]:
    return [
        {"customer_id": f"c{i}", "ts": d, "touchpoint": "flight", "outcome": "cancelled"}
        for i, d in enumerate(dates)
    ]


ODD_DATES = [datetime(1900, m, 15, tzinfo=UTC) for m in range(1, 7)] + [
    datetime(9999, m, 15, tzinfo=UTC) for m in range(1, 7)
]


def test_live_spends_draw_from_the_wall_clocks_period_whatever_the_events_date(store):
    """12 crises dated 1900 and 9999 against $100 a month: one $60 spend, from this month's pool."""
    load_events(store, _crises(ODD_DATES), ts_range="any")
    before = datetime.now(UTC)
    res = PlaybookRunner(store, loads_playbooks(CRISIS_FILE)).run_live()
    after = datetime.now(UTC)
    assert res.to_dict()["budget_periods"].startswith("wall clock")
    now_periods = {
        period_start("month", period_id("month", int(t.timestamp() * 1e6))) for t in (before, after)
    }
    pools = store.query("SELECT period_start, amount_cents, remaining_cents FROM budgets")
    assert len(pools) == 1 and pools["period_start"].iloc[0].to_pydatetime() in now_periods
    ledger = store.query("SELECT amount_cents, period_start FROM ledger")
    assert ledger["amount_cents"].sum() == 6000  # not 12 x 60 from 12 pools
    assert int(pools["remaining_cents"].iloc[0]) == 4000
    assert res.written.get("budget_blocked") == 11


def test_backtests_simulate_event_time_periods_and_say_so(store):
    load_events(store, _crises(ODD_DATES), ts_range="any")
    res = PlaybookRunner(store, loads_playbooks(CRISIS_FILE)).backtest()
    assert res.to_dict()["budget_periods"].startswith("simulated in event time")
    assert res.summary["cost"].iloc[0] == 720.0  # one $60 spend from each month's simulated pool
    assert store.count("budgets") == 0  # a back-test opens no real pool


LIMIT_FILE = """\
budgets:
  - {name: recovery, scope: global, period: week, amount: 100000, empowerment_limit: 2000}
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery}
      - {type: compensate, amount: 1500, budget: recovery}
"""


def test_the_engine_and_the_live_ledger_apply_the_limit_per_customer(store):
    """Two crises of one customer in one week, $1,500 each against a $2,000 limit: the second needs approval,
    in the back-test (event time) as live (wall clock)."""
    now = datetime.now(UTC).replace(microsecond=0)
    events = [{"customer_id": "c1", "ts": now, "touchpoint": "flight", "outcome": "cancelled"},
              {"customer_id": "c1", "ts": now, "touchpoint": "bags", "outcome": "lost"},
              {"customer_id": "c2", "ts": now, "touchpoint": "flight", "outcome": "cancelled"}]  # fmt: skip
    load_events(store, events)
    runner = PlaybookRunner(store, loads_playbooks(LIMIT_FILE))
    assert runner.backtest().summary["approvals_needed"].iloc[0] == 1
    res = runner.run_live()
    assert sum(d.needs_approval for d in res.decisions) == 1
    rows = store.query("SELECT customer_id, status FROM ledger ORDER BY customer_id, status")
    assert rows.values.tolist() == [["c1", "approved"], ["c1", "pending_approval"], ["c2", "approved"]]
    cases = store.query(
        "SELECT customer_id, status, compensation_cents FROM cases ORDER BY customer_id, status"
    )
    assert cases["compensation_cents"].tolist() == [150_000, 150_000, 150_000]
    assert sorted(cases["status"]) == ["awaiting_approval", "open", "open"]


def test_the_case_total_is_the_ledgers_after_approvals_and_rejections(tmp_path):
    """A case's compensation is what its ledger holds (spent or reserved): a rejection takes off only the
    rejected spend (it used to reset the case to 0 after $20 had been spent)."""
    from keymoments.act.cases import CaseBook
    from keymoments.store import act_tables as sql

    with Store(tmp_path / "km.duckdb") as store:
        led = Ledger(store, [RECOVERY])
        with store.write() as con:
            sql.insert_case(con, {"case_id": "case-1", "customer_id": "c1", "status": "in_progress",
                                  "trigger_event_ids": [], "compensation_cents": 0})  # fmt: skip
        led.spend("recovery", 2000, case_id="case-1", customer_id="c1")
        e = led.spend("recovery", 300_000, case_id="case-1", customer_id="c1")
        assert CaseBook(store).get("case-1")["compensation_cents"] == 302_000
        led.reject(e.entry_id, by="boss")
        assert CaseBook(store).get("case-1")["compensation_cents"] == 2000
