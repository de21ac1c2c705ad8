"""`--set field=value`: a constant for a field the file lacks (issue 16 item 7: `touchpoint=purchase`), without
editing the file. Real CLI, real DuckDB files."""

from __future__ import annotations

import json

import pandas as pd

from keymoments.store.store import Store


def _rows(db, sql: str) -> list[tuple]:  # noqa: ANN001
    with Store(db, read_only=True) as store:
        return [tuple(r) for r in store.query(sql).itertuples(index=False)]


def test_set_touchpoint_for_a_purchase_file(run_cli, tmp_path):
    pd.DataFrame({"customer": ["a", "a", "b"], "date": [20240105, 20240301, 20240210], "amount": [20.0, 35.5, 12.0]}).to_csv(
        tmp_path / "purchases.csv", index=False
    )
    args = ("ingest", "purchases.csv", "--map", "customer=customer_id", "--map", "date=ts", "--map", "amount=value")
    code, out, err = run_cli(*args)
    assert code == 2 and "--set touchpoint=VALUE" in err  # the hint says how
    code, out, err = run_cli(*args, "--set", "touchpoint=purchase", "--set", "channel=store", "--set", "region=north", "--no-score")
    assert code == 0, err
    assert "3 accepted" in out
    rows = _rows(tmp_path / "keymoments.duckdb", "SELECT customer_id, touchpoint, channel, value, attrs FROM events ORDER BY seq")
    assert [r[:4] for r in rows] == [("a", "purchase", "store", 20.0), ("a", "purchase", "store", 35.5), ("b", "purchase", "store", 12.0)]
    assert all(json.loads(r[4]) == {"region": "north"} for r in rows)
    code, out, err = run_cli(*args, "--set", "touchpoint=purchase", "--set", "channel=store", "--set", "region=north", "--no-score")
    assert code == 0 and "0 accepted, 3 duplicate" in out  # idempotent with the same constants


def test_set_refuses_what_it_cannot_mean(run_cli, tmp_path):
    pd.DataFrame({"customer_id": ["a"], "ts": ["2024-01-01"], "touchpoint": ["web"]}).to_csv(tmp_path / "e.csv", index=False)
    code, _, err = run_cli("ingest", "e.csv", "--set", "touchpoint=purchase")
    assert code == 2 and "--set touchpoint=… gives a value the input's column 'touchpoint' already holds" in err
    code, _, err = run_cli("ingest", "e.csv", "--set", "event_id=x")
    assert code == 2 and "--set cannot give event_id" in err
    code, _, err = run_cli("ingest", "e.csv", "--set", "channel")
    assert code == 2 and "--set takes field=value" in err
    assert not (tmp_path / "keymoments.duckdb").exists()


def test_set_on_a_survey(run_cli, tmp_path):
    pd.DataFrame({"id": ["r1", "r2"], "Booking": [5, 3]}).to_csv(tmp_path / "s.csv", index=False)
    base = ("ingest-survey", "s.csv", "--id-col", "id", "--touchpoints", "Booking", "--scale", "csat5", "--date", "2024-03-01")
    code, out, err = run_cli(*base, "--set", "channel=email", "--set", "wave=spring")
    assert code == 0, err
    rows = _rows(tmp_path / "keymoments.duckdb", "SELECT customer_id, channel, attrs FROM events ORDER BY seq")
    assert [(r[0], r[1], json.loads(r[2])) for r in rows] == [("r1", "email", {"wave": "spring"}), ("r2", "email", {"wave": "spring"})]
    code, _, err = run_cli(*base, "--set", "touchpoint=x", "--db", "x.duckdb")
    assert code == 2 and "a survey's touchpoint comes from --touchpoints" in err
