"""Every built-in playbook on the demo airline data, backtest and live agreeing, and the CLI end to end."""

from __future__ import annotations

import json

import pytest

from keymoments.act.library import library_names, load_library
from keymoments.act.runner import PlaybookRunner
from keymoments.store.store import Store


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    from keymoments.examples import generate_airline
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    demo = generate_airline(400, seed=3)
    path = tmp_path_factory.mktemp("demo") / "km.duckdb"
    with Store(path) as s:
        ingest_events_frame(s, demo.events)
        ingest_outcomes_frame(s, demo.outcomes, observed_at="2026-01-01")  # the end of the demo's year
    return path


def test_each_builtin_playbook_acts_on_demo_data(demo_db):
    lib = load_library(seed=1)
    with Store(demo_db, read_only=True) as s:
        res = PlaybookRunner(s, lib).backtest()
    summary = res.summary.set_index("playbook")
    for name in library_names():
        assert summary.loc[name, "triggered"] > 0, f"{name} never triggered on the demo data"
    assert summary.loc["service-recovery", "cases_opened"] > 0
    assert summary.loc["service-recovery", "cost"] > 0
    assert summary.loc["vulnerable-customer-assistance", "held_out"] == 0  # help is never withheld
    assert summary.loc["going-the-distance", "cases_resolved"] >= 0
    rec = [d for d in res.decisions if d.playbook == "employee-recognition" and d.status == "fired"]
    assert all(d.employee_id for d in rec)


def test_live_equals_backtest_in_arrival_order(tmp_path, demo_db):
    """The same engine runs live: processing the store in batches gives the decisions of one pass."""
    import shutil

    path = tmp_path / "copy.duckdb"
    shutil.copy(demo_db, path)
    lib = load_library(["service-recovery", "peak-amplification", "milestone-celebration"], seed=1)
    with Store(path) as s:
        runner = PlaybookRunner(s, lib)
        runner.run_live(batch=500)
        live = s.query("SELECT decision_id FROM playbook_decisions WHERE run_id LIKE 'live-%' ORDER BY 1")
        from keymoments.act.engine import Engine
        from keymoments.store import act_tables as sql

        eng = Engine(lib)
        cur = s.cursor()
        one_pass = [d.decision_id for ch in sql.iter_events(cur, order="seq") for e in ch for d in eng.evaluate(e)]
        cur.close()
    assert sorted(live["decision_id"]) == sorted(one_pass) and len(one_pass) > 20


def test_cli_validate_backtest_run_report(run_cli, demo_db, tmp_path):
    import shutil

    db = str(tmp_path / "cli.duckdb")
    shutil.copy(demo_db, db)
    code, out, err = run_cli("playbooks", "validate", "service-recovery", "--db", db)
    assert code == 0 and "valid" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("playbooks:\n  - name: x\n    trigger: {type: crises}\n    actions: [{type: open_case}]\n")
    code, out, err = run_cli("playbooks", "validate", str(bad), "--db", db)
    assert code == 2 and f"{bad}:3:" in err and "Did you mean 'crisis'" in err
    code, out, _ = run_cli("playbooks", "validate", str(bad), "--json")
    assert code == 2 and json.loads(out)["errors"][0]["line"] == 3
    listed = run_cli.json("playbooks", "list", "--db", db)
    assert set(listed["library"]) == set(library_names())
    bt = run_cli.json("playbooks", "backtest", "service-recovery", "--db", db, "--record")
    assert bt["events"] > 1000 and bt["playbooks"][0]["fired"] > 0
    # a backtest took no action: its report says what would have fired, to whom, at what cost, from which
    # budget, and shows no uplift
    rep = run_cli.json("playbooks", "report", "--db", db, "--file", "service-recovery")
    assert rep["mode"] == "backtest" and rep["run_id"] == bt["run_id"]
    row = rep["playbooks"][0]
    assert row["uplift"] is None and "a backtest takes no action" in row["uplift_refused"]
    assert row["fired"] == bt["playbooks"][0]["fired"] and row["customers"] > 0 and row["cost"] > 0
    assert row["budgets"] == ["recovery"] and row["arms"]["holdout"] > 0 and row["srm"]["ok"]
    pool = rep["budgets"][0]
    assert pool["pool"] == "recovery" and pool["would_spend"] == row["cost"] and pool["period"] == "week"
    assert 0 < pool["peak_use"] <= 1 and pool["amount_per_period"] == 5000
    code, out, _ = run_cli("playbooks", "report", "--db", db)
    assert code == 0 and "would fire" in out and "95% CI" not in out and "a backtest takes no action" in out
    live = run_cli.json("playbooks", "run", "service-recovery", "--db", db)
    assert live["events"] == bt["events"] and live["decisions"] > 0
    again = run_cli.json("playbooks", "run", "service-recovery", "--db", db)
    assert again["events"] == 0
    rep = run_cli.json("playbooks", "report", "--db", db, "--file", "service-recovery")
    row = rep["playbooks"][0]
    fired_live = sum(r["count"] for r in live["by_playbook"] if r["status"] == "fired")
    assert rep["mode"] == "live" and row["playbook"] == "service-recovery" and row["fired"] == fired_live > 0
    # outcomes observed at the year's end: customers first decided on more than 180 days before are left out
    up = row["uplift"]
    assert up["n_treatment"] > 0 and "srm" in up and up["window"] == "180d" and up["excluded"]["after_window"] > 0
    code, out, _ = run_cli("playbooks", "report", "--db", db)
    assert code == 0 and "service-recovery" in out and "95% CI" in out
    queue = run_cli.json("playbooks", "cases", "--db", db, "--limit", "5")["cases"]
    assert len(queue) == 5 and {c["priority"] for c in queue} == {"high"}
    status = queue[0]["status"]
    same = run_cli.json("playbooks", "cases", "--db", db, "--status", status)["cases"]
    assert same and {c["status"] for c in same} == {status}
