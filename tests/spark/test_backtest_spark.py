"""Conformance of playbook back-tests: the same decisions on Spark (per customer, budgets and shared governance
reconciled on the driver) as on DuckDB (one engine over all events), on the demo and on the Helpdesk XES log.

Every decision is compared field for field and in order (ids, arms, costs, budget flags, approvals, cases), and
the per-playbook summaries must be equal. The files are chosen so that what customers share matters: pools
tight enough to block spends and to need approvals, holdouts, a global holdout, a daily cap across customers,
cooldowns per employee and per location, proactive timers and cases.
"""

from __future__ import annotations

import json

import pytest

from keymoments.act.library import load_library
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.exceptions import InvalidParameterError

#: tight pools on the demo: a global monthly pool that runs dry, an empowerment limit two spends exceed, a
#: per-location weekly pool; a daily cap across customers on a playbook that opens cases, a cooldown per location
TIGHT = """
seed: 3
global_holdout: 0.05
budgets:
  - {name: tight, scope: global, period: month, amount: 150, empowerment_limit: 60}
  - {name: desk, scope: location, period: week, amount: 40}
playbooks:
  - name: crisis-voucher
    trigger: {type: crisis}
    actions:
      - {type: open_case, team: recovery, owner: employee, resolve_on_outcome: [resolved, recovered]}
      - {type: compensate, amount: 50, budget: tight, kind: voucher}
    governance: {max_per_day: 2}
    holdout: {share: 0.3}
  - name: desk-gift
    trigger: {type: event, valence_above: 0.3, has_employee: true}
    actions: [{type: compensate, amount: 15, budget: desk, kind: gift}]
    governance: {per: location, cooldown_hours: 12, probability: 0.5}
    holdout: {share: 0.5}
"""

#: a playbook file for the Helpdesk tickets (touchpoints are its activities, employees its resources)
HELPDESK = """
seed: 7
global_holdout: 0.05
budgets:
  - {name: goodwill, scope: employee, period: month, amount: 30, empowerment_limit: 15}
playbooks:
  - name: stuck-ticket
    trigger:
      type: absence
      after: {touchpoint: [Take in charge ticket]}
      expect: {touchpoint: [Resolve ticket, Closed]}
      within_hours: 240
    actions: [{type: open_case, team: helpdesk, owner: team, reason: stuck, resolve_on_touchpoint: [Resolve ticket]}]
    governance: {cooldown_hours: 24}
    holdout: {share: 0.2}
  - name: wait-goodwill
    trigger: {type: event, touchpoint: [Require upgrade, Create SW anomaly, Wait]}
    actions:
      - {type: compensate, amount: 10, budget: goodwill, kind: voucher}
      - {type: notify, channel: email, template: "Sorry for the wait on {touchpoint}."}
    governance: {max_per_day: 3}
    holdout: {share: 0.1}
  - name: long-ticket-follow-up
    trigger: {type: journey_end, quiet_hours: 72}
    conditions: [{type: journey, metric: events, op: ge, value: 6}]
    actions: [{type: notify, channel: email, template: "How did we do?"}]
  - name: resolver-thanks
    trigger: {type: event, touchpoint: [Resolve ticket], has_employee: true}
    actions: [{type: recognize, message: "A ticket you resolved"}]
    governance: {per: employee, cooldown_hours: 72}
"""


def decisions(result):
    return [d.to_dict() for d in result.decisions]


def assert_same_backtest(duck, spark):
    assert spark.events == duck.events
    a, b = decisions(duck), decisions(spark)
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"decision {i}: " + str({k: (x[k], y[k]) for k in x if x[k] != y[k]})
    assert spark.summary.to_dict(orient="records") == duck.summary.to_dict(orient="records")


def backtest_both(stores, text):
    """The file in ``text`` back-tested on DuckDB and on Spark, asserted the same; the DuckDB result."""
    pf = loads_playbooks(text)
    duck = PlaybookRunner(stores[0], pf).backtest()
    assert_same_backtest(duck, PlaybookRunner(stores[1], pf).backtest())
    return duck


def _recorded(store, run_id):
    with store.ops.read() as con:
        rows = con.execute(
            "SELECT * EXCLUDE (run_id, decided_at) FROM playbook_decisions WHERE run_id = ? ORDER BY decision_id",
            [run_id],
        ).fetchall()
    return rows


@pytest.mark.slow
def test_library_backtest_is_the_same_on_spark_and_records_the_same_rows(demo_stores):
    duck_store, spark_store = demo_stores
    lib = load_library(seed=1, global_holdout=0.05)  # holdouts, budgets, timers, per-employee cooldowns
    duck = PlaybookRunner(duck_store, lib).backtest(record=True, run_id="bt-lib-duckdb")
    spark = PlaybookRunner(spark_store, lib).backtest(record=True, run_id="bt-lib-spark")
    assert_same_backtest(duck, spark)
    arms = {d.arm for d in duck.decisions}
    assert arms == {"treatment", "holdout", "global_holdout"}
    assert {d.trigger for d in duck.decisions} >= {"absence", "journey_end", "milestone", "crisis"}
    rows = _recorded(duck_store, "bt-lib-duckdb")
    assert len(rows) == len(duck.decisions) and rows == _recorded(duck_store, "bt-lib-spark")


@pytest.mark.slow
def test_a_spark_backtest_that_spills_its_decisions_to_disk_is_the_same(demo_stores, monkeypatch):
    """The driver keeps a chunk of the reconciled decisions in memory and spills the rest (DecisionLog): the
    decisions, in order, are the embedded back-test's all the same."""
    from keymoments.act import decision_log

    pf = loads_playbooks(TIGHT)
    duck = PlaybookRunner(demo_stores[0], pf).backtest()
    monkeypatch.setattr(decision_log, "CHUNK", 97)
    spark = PlaybookRunner(demo_stores[1], pf).backtest()
    assert spark.decisions.spilled >= 97 * 3
    assert_same_backtest(duck, spark)


@pytest.mark.slow
def test_tight_budgets_and_shared_caps_are_reconciled_in_time_order(demo_stores):
    s = backtest_both(demo_stores, TIGHT).summary.set_index("playbook")
    # the pools and limits bind: spends blocked, approvals needed, gifts with nothing else to do blocked
    assert s.loc["crisis-voucher", "budget_blocks"] > 0 and s.loc["crisis-voucher", "approvals_needed"] > 0
    assert s.loc["desk-gift", "blocked"] > 0 and s.loc["desk-gift", "held_out"] > 0
    assert s.loc["crisis-voucher", "cases_resolved"] > 0
    # the daily cap across customers binds too (without it the playbook fires more), so Spark had to apply it
    uncapped = loads_playbooks(TIGHT.replace("governance: {max_per_day: 2}", "governance: {}"))
    more = PlaybookRunner(demo_stores[0], uncapped).backtest().summary.set_index("playbook")
    assert more.loc["crisis-voucher", "triggered"] > s.loc["crisis-voucher", "triggered"]


@pytest.mark.slow
def test_process_log_backtest_is_the_same_on_spark(xes_stores):
    duck = backtest_both(xes_stores, HELPDESK)
    assert duck.events == 21348
    s = duck.summary.set_index("playbook")
    assert (s["triggered"] > 0).all()
    assert s.loc["wait-goodwill", "budget_blocks"] > 0 and s.loc["stuck-ticket", "cases_resolved"] > 0


@pytest.mark.slow
def test_cli_backtest_with_engine_spark(demo, spark, make_duckdb_store, tmp_path, capsys, monkeypatch):
    from keymoments.cli import main
    from keymoments.store.spark import write_events_dataset

    store = make_duckdb_store(tmp_path / "km.duckdb", demo=demo)  # closed: the command opens it itself
    write_events_dataset(store, tmp_path / "km.events")
    store.close()
    db = str(tmp_path / "km.duckdb")

    def run(*args):
        try:
            main(["playbooks", "backtest", "service-recovery", "--db", db, "--json", "--seed", "2", *args])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        out = json.loads(capsys.readouterr().out)
        for volatile in ("run_id", "seconds", "events_per_second"):
            out.pop(volatile)
        return out

    duck = run()
    assert duck["decisions"] > 0 and duck["playbooks"][0]["cost"] > 0
    assert run("--engine", "spark") == duck
    monkeypatch.setenv("KM_ENGINE", "spark")
    assert run() == duck


def test_a_file_that_counts_its_own_shared_firings_is_refused():
    from keymoments.act.spark_backtest import check_partitionable

    pf = loads_playbooks("""
name: thank-twice
trigger: {type: event, valence_above: 0.5, has_employee: true}
conditions: [{type: history, metric: fires, op: lt, value: 2}]
actions: [{type: recognize, message: thanks}]
governance: {per: employee, cooldown_hours: 24}
""")
    with pytest.raises(InvalidParameterError, match=r"Playbook 'thank-twice' cannot be back-tested on Spark: its "
                       r"governance \(per: employee with a cooldown or cap\)"):  # fmt: skip
        check_partitionable(pf)
    check_partitionable(loads_playbooks(TIGHT))  # shared caps alone are reconciled, not refused


@pytest.mark.slow
def test_journeys_shared_by_customers_are_refused_when_the_file_reads_journeys(spark, tmp_path):
    import pandas as pd

    from keymoments.store.spark import SparkStore

    events = pd.DataFrame({
        "event_id": ["e1", "e2"], "customer_id": ["c1", "c2"], "journey_id": ["j1", "j1"],
        "ts": pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True), "touchpoint": ["call", "call"],
        "seq": [1, 2],
    })  # fmt: skip
    spark.createDataFrame(events).write.parquet(str(tmp_path / "km.events"))
    store = SparkStore(tmp_path / "km.duckdb", session=spark)
    try:
        follow = loads_playbooks("""
name: follow-up
trigger: {type: journey_end, quiet_hours: 24}
actions: [{type: notify, template: hi}]
""")
        with pytest.raises(InvalidParameterError, match=r"Journey 'j1' has events of several customers \('c1', "
                           r"'c2'\), and playbook 'follow-up': trigger journey_end reads journey state"):  # fmt: skip
            PlaybookRunner(store, follow).backtest()
        per_customer = loads_playbooks("name: any-call\ntrigger: {type: event, touchpoint: [call]}\n"
                                       "actions: [{type: notify, template: hi}]")  # fmt: skip
        assert len(PlaybookRunner(store, per_customer).backtest().decisions) == 2
        nothing = loads_playbooks("name: never\ntrigger: {type: event, touchpoint: [web]}\nactions: [{type: notify, template: hi}]")
        assert PlaybookRunner(store, nothing).backtest().decisions == []  # buckets with no decision at all
    finally:
        store.close()
