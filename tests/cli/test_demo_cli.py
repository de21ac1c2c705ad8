"""`keymoments demo` end to end: files and ground truth written, store filled, exit 0."""

from __future__ import annotations

import json


def test_demo_small(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--customers", "400", "--seed", "3")
    assert code == 0, err
    assert "Next:" in out and "keymoments serve" in out
    data = tmp_path / "keymoments-demo"
    for name in ("events.parquet", "events.csv", "outcomes.csv", "customers.csv", "ground_truth.json", "journey.yaml"):
        assert (data / name).exists(), name
    truth = json.loads((data / "ground_truth.json").read_text())
    assert truth["generator"]["n_customers"] == 400
    from keymoments.store.store import Store

    with Store(tmp_path / "keymoments.duckdb") as s:
        assert s.count("events") == truth["generator"]["n_events"]
        assert {"retained", "spend_next_12m"} <= set(s.outcome_names())
        assert s.count("events", "text IS NOT NULL AND NOT text_scored") == 0
        assert "segment" in s.attributes_wide().columns
    # the playbook library ran live over the second half; the outcomes were observed at the end
    assert truth["playbooks"]["live_from"] == "2025-07-02T12:00:00+00:00"
    assert truth["playbooks"]["effects"]["service-recovery"]["customers_reached"] > 0
    outcomes = (data / "outcomes.csv").read_text().splitlines()
    assert outcomes[0].endswith(",observed_at") and outcomes[1].endswith(",2026-01-01T00:00:00Z")
    rep = run_cli.json("playbooks", "report")
    assert rep["mode"] == "live" and rep["budgets"] and sum(b["spent"] for b in rep["budgets"]) > 0
    assert sum(c["cases"] for c in rep["cases"]) > 0
    first_decision = min(r["first_decision"] for r in rep["playbooks"] if r["first_decision"])
    assert first_decision >= truth["playbooks"]["live_from"]  # nothing of the first half was acted on
    measured = [r for r in rep["playbooks"] if r["uplift"]]
    assert measured and all(r["uplift"]["run_id"] == rep["run_id"] for r in measured)
    assert all(r["uplift_refused"] and "no holdout" in r["uplift_refused"] for r in rep["playbooks"]
               if r["playbook"] in ("vulnerable-customer-assistance", "employee-recognition"))  # fmt: skip
    summary = run_cli.json("demo", "--customers", "400", "--seed", "3")  # again: idempotent
    assert summary["events"] == truth["generator"]["n_events"]
    assert summary["playbooks"]["actions"] == sum(r["fired"] for r in rep["playbooks"])
    assert run_cli.json("playbooks", "report")["playbooks"] == rep["playbooks"]


def test_demo_refuses_to_mix_into_other_data(run_cli, tmp_path):
    from keymoments.testing import make_events

    make_events(5, 2).to_csv(tmp_path / "e.csv", index=False)
    assert run_cli("ingest", "e.csv")[0] == 0
    code, out, err = run_cli("demo", "--customers", "300")
    assert code == 2 and "already holds other data (10 events). Use --fresh" in err
    code, out, err = run_cli("demo", "--customers", "300", "--fresh")
    assert code == 0, err
