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
    summary = run_cli.json("demo", "--customers", "400", "--seed", "3")  # again: idempotent
    assert summary["events"] == truth["generator"]["n_events"]


def test_demo_refuses_to_mix_into_other_data(run_cli, tmp_path):
    from keymoments.testing import make_events

    make_events(5, 2).to_csv(tmp_path / "e.csv", index=False)
    assert run_cli("ingest", "e.csv")[0] == 0
    code, out, err = run_cli("demo", "--customers", "300")
    assert code == 2 and "already holds other data (10 events). Use --fresh" in err
    code, out, err = run_cli("demo", "--customers", "300", "--fresh")
    assert code == 0, err
