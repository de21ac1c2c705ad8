"""Timestamps are read right or not at all: YYYYMMDD dates, ordinal dates, --ts-format, epochs only where the
magnitude fits one unit, a window that refuses misread batches, and no infinite or out-of-range years.

Every test runs the real `keymoments` command on a real DuckDB file (issue 16 item 1, issue 15 item 9).
"""

from __future__ import annotations

import doctest
import importlib
import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from keymoments.store.store import Store


def _stored(db, column: str = "customer_id") -> dict[str, datetime]:  # noqa: ANN001
    with Store(db, read_only=True) as store:
        got = store.query(f"SELECT {column} AS k, ts FROM events ORDER BY seq")
    return {r.k: r.ts.to_pydatetime() for r in got.itertuples()}


def _purchases(dates: list) -> pd.DataFrame:
    return pd.DataFrame({
        "customer": [f"c{i}" for i in range(len(dates))],
        "date": dates,
        "amount": [10.0 * (i + 1) for i in range(len(dates))],
    })  # fmt: skip


def test_integer_yyyymmdd_is_a_date_not_epoch_seconds(run_cli, tmp_path):
    """The issue's file: integer dates 19970101 mapped with --map date=ts were stored as 1970-08-20 03:15:01."""
    df = _purchases([19970101, 19970102, 19971231])
    df["touchpoint"] = "purchase"
    df.to_csv(tmp_path / "purchases.csv", index=False)
    code, out, err = run_cli("ingest", "purchases.csv", "--map", "date=ts", "--map", "customer=customer_id",
                             "--map", "amount=value", "--no-score")  # fmt: skip
    assert code == 0, err
    assert "3 accepted" in out
    assert _stored(tmp_path / "keymoments.duckdb") == {
        "c0": datetime(1997, 1, 1, tzinfo=UTC), "c1": datetime(1997, 1, 2, tzinfo=UTC), "c2": datetime(1997, 12, 31, tzinfo=UTC),
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_yyyymmdd_numbers_in_typed_files(run_cli, tmp_path, fmt):
    """Parquet and JSON Lines hand DuckDB the dates as integers (and a float column, when one is missing)."""
    df = pd.DataFrame({"customer_id": ["a", "b", "c"], "touchpoint": "purchase",
                       "ts": [20240229, 20231119, None], "when": [20240229.0, 20231119.0, None]})  # fmt: skip
    df["ts"] = df["ts"].astype("Int64")
    if fmt == "parquet":
        df.drop(columns="when").to_parquet(tmp_path / "p.parquet")
        floats = df.drop(columns="ts").rename(columns={"when": "ts"})
        floats.to_parquet(tmp_path / "f.parquet")
        files = ["p.parquet", "f.parquet"]
    else:
        lines = [json.dumps({"customer_id": c, "touchpoint": "purchase", "ts": int(t)}) for c, t in zip("ab", [20240229, 20231119], strict=True)]
        (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
        files = ["p.jsonl"]
    for f in files:
        code, out, err = run_cli("ingest", f, "--db", f"{f}.duckdb", "--no-score", "--max-rejects", "100%")
        assert code == 0, err
        got = _stored(tmp_path / f"{f}.duckdb")
        assert got["a"] == datetime(2024, 2, 29, tzinfo=UTC) and got["b"] == datetime(2023, 11, 19, tzinfo=UTC)


def test_text_forms_ordinals_and_numbers(run_cli, tmp_path):
    forms = {
        "ymd": ("19970101", datetime(1997, 1, 1)),
        "ymdhms": ("20171031221047", datetime(2017, 10, 31, 22, 10, 47)),
        "ordinal": ("19th November 2023", datetime(2023, 11, 19)),
        "ordinal-us": ("November 19th, 2023", datetime(2023, 11, 19)),
        "ordinal-short": ("1st Jan 2020", datetime(2020, 1, 1)),
        "ordinal-time": ("3rd March 2021 10:30", datetime(2021, 3, 3, 10, 30)),
        "weekday": ("Sunday, 19 November 2023", datetime(2023, 11, 19)),
        "seconds": ("1509487847", datetime(2017, 10, 31, 22, 10, 47)),
        "millis": ("1509487847000", datetime(2017, 10, 31, 22, 10, 47)),
        "iso": ("2017-10-31T23:10:47+01:00", datetime(2017, 10, 31, 22, 10, 47)),
    }
    pd.DataFrame({"customer_id": list(forms), "touchpoint": "t", "ts": [v[0] for v in forms.values()]}).to_csv(
        tmp_path / "forms.csv", index=False
    )
    code, out, err = run_cli("ingest", "forms.csv", "--no-score")
    assert code == 0, err
    assert f"{len(forms)} accepted" in out
    got = _stored(tmp_path / "keymoments.duckdb")
    assert got == {k: v[1].replace(tzinfo=UTC) for k, v in forms.items()}


def test_numbers_that_fit_no_single_form_are_rejected_with_a_reason(run_cli, tmp_path):
    """50000000000 is year 3554 in seconds and 1971 in milliseconds; 12345678 has 8 digits but is no date."""
    pd.DataFrame({"customer_id": ["ok", "gap", "nodate"], "touchpoint": "t",
                  "ts": ["1509487847", "50000000000", "12345678"]}).to_csv(tmp_path / "n.csv", index=False)  # fmt: skip
    code, out, err = run_cli("ingest", "n.csv", "--no-score", "--max-rejects", "100%")
    assert code == 0, err
    rejects = pd.read_csv(tmp_path / "n.rejects.csv")
    assert rejects["line"].tolist() == [3, 4]
    assert all("is not a timestamp" in r and "--ts-format" in r for r in rejects["reason"])
    assert list(_stored(tmp_path / "keymoments.duckdb")) == ["ok"]


def test_ts_format_on_every_ingest_command(run_cli, tmp_path):
    """01/02/2024 is read month first by default; --ts-format %d/%m/%Y reads it as the 1st of February."""
    pd.DataFrame({"customer_id": ["a"], "touchpoint": "t", "ts": ["01/02/2024 10:30"]}).to_csv(tmp_path / "e.csv", index=False)
    code, _, err = run_cli("ingest", "e.csv", "--db", "default.duckdb", "--no-score")
    assert code == 0, err
    assert _stored(tmp_path / "default.duckdb")["a"] == datetime(2024, 1, 2, 10, 30, tzinfo=UTC)
    code, _, err = run_cli("ingest", "e.csv", "--ts-format", "%d/%m/%Y %H:%M", "--no-score")
    assert code == 0, err
    assert _stored(tmp_path / "keymoments.duckdb")["a"] == datetime(2024, 2, 1, 10, 30, tzinfo=UTC)

    pd.DataFrame({"id": ["r1", "r2"], "Booking": [5, 4], "answered": ["19.11.23", "20.11.23"]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    code, out, err = run_cli("ingest-survey", "s.csv", "--id-col", "id", "--touchpoints", "Booking", "--scale", "csat5",
                             "--ts-col", "answered", "--ts-format", "%d.%m.%y", "--db", "survey.duckdb")  # fmt: skip
    assert code == 0, err
    assert _stored(tmp_path / "survey.duckdb") == {"r1": datetime(2023, 11, 19, tzinfo=UTC), "r2": datetime(2023, 11, 20, tzinfo=UTC)}

    code, _, err = run_cli("ingest", "e.csv", "--ts-format", "%Q", "--db", "bad.duckdb")
    assert code == 2 and "--ts-format '%Q' is not a strptime format" in err
    assert not (tmp_path / "bad.duckdb").exists()


def test_ts_format_epoch_units_and_the_python_api(tmp_path):
    import keymoments as km

    with km.connect(tmp_path / "km.duckdb") as eng:
        # between the units (year 3554 in seconds, 1971 in milliseconds): read only when the unit is named
        r = eng.ingest([{"customer_id": "a", "touchpoint": "t", "ts": 50_000_000_000}], ts_format="epoch_ms",
                       ts_range="any", score=False)  # fmt: skip
        assert r.accepted == 1
        r = eng.ingest(pd.DataFrame({"customer_id": ["b"], "touchpoint": ["t"], "ts": ["19.11.2023"]}),
                       ts_format="%d.%m.%Y", score=False)  # fmt: skip
        assert r.accepted == 1
    got = _stored(tmp_path / "km.duckdb")
    assert got == {"a": datetime(1971, 8, 2, 16, 53, 20, tzinfo=UTC), "b": datetime(2023, 11, 19, tzinfo=UTC)}


def test_a_batch_outside_the_plausible_window_is_refused_with_the_column_samples_and_fix(run_cli, tmp_path):
    """Days since 1970 in a 'date' column read as epoch seconds land in January 1970: the batch is refused."""
    df = _purchases([9862, 9863, 9864, 9865])
    df["touchpoint"] = "purchase"
    df.to_csv(tmp_path / "days.csv", index=False)
    code, out, err = run_cli("ingest", "days.csv", "--map", "date=ts", "--map", "customer=customer_id")
    assert code == 2
    msg = err.strip()
    assert msg.startswith("error: days.csv: 4 of 4 timestamps in column 'date' (ts) fall outside the plausible window 1990-01-01 to ")
    assert "'9862' read as 1970-01-01 02:44:22" in msg and "'9863' read as" in msg and "'9864' read as" in msg
    assert "--ts-format" in msg and "--ts-range any" in msg and "nothing was written" in msg
    assert "Traceback" not in err
    assert not (tmp_path / "keymoments.duckdb").exists()  # no store file left by a failed first ingest
    code, out, err = run_cli("ingest", "days.csv", "--map", "date=ts", "--map", "customer=customer_id", "--ts-range", "any", "--no-score")
    assert code == 0, err
    assert "4 accepted" in out


def test_ts_range_bounds_what_a_batch_may_hold(run_cli, tmp_path):
    pd.DataFrame({"customer_id": ["a", "b"], "touchpoint": "t", "ts": ["1985-06-01", "2020-01-01"]}).to_csv(
        tmp_path / "old.csv", index=False
    )
    code, _, err = run_cli("ingest", "old.csv")
    assert code == 2 and "1 of 2 timestamps in column 'ts' (ts) fall outside the plausible window" in err
    code, _, err = run_cli("ingest", "old.csv", "--ts-range", "1990..2030")
    assert code == 2 and "fall outside --ts-range 1990-01-01 to 2030-12-31" in err
    code, out, err = run_cli("ingest", "old.csv", "--ts-range", "1980..2030", "--no-score")
    assert code == 0 and "2 accepted" in out, err
    code, _, err = run_cli("ingest", "old.csv", "--ts-range", "soon")
    assert code == 2 and "--ts-range takes 'any' or FIRST..LAST" in err


def test_infinity_and_years_outside_1_to_9999_are_rejected_per_row(run_cli, tmp_path):
    """Issue 15 item 9: 'infinity' was accepted and broke milestones for good; so were years 0001 and 10000."""
    values = ["2024-05-01", "infinity", "-infinity", "10000-01-01", "0000-06-01", "2024-05-02"]
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(len(values))], "touchpoint": "t", "ts": values}).to_csv(
        tmp_path / "inf.csv", index=False
    )
    code, out, err = run_cli("ingest", "inf.csv", "--ts-range", "any", "--max-rejects", "100%", "--no-score")
    assert code == 0, err
    assert "2 accepted, 0 duplicate, 4 rejected" in out
    rejects = pd.read_csv(tmp_path / "inf.rejects.csv", keep_default_na=False)
    assert rejects["reason"].tolist() == [
        "ts infinity is not a finite time", "ts -infinity is not a finite time",
        "ts 10000-01-01 is outside the years 1 to 9999", "ts 0000-06-01 is outside the years 1 to 9999",
    ]  # fmt: skip
    assert list(_stored(tmp_path / "keymoments.duckdb")) == ["c0", "c5"]


def test_infinity_over_the_api_is_rejected_per_row(tmp_path):
    from fastapi.testclient import TestClient

    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key

    store = Store(tmp_path / "api.duckdb")
    key = create_key(store, "admin", name="t")[1]
    client = TestClient(create_app(store))
    batch = [{"customer_id": "a", "touchpoint": "t", "ts": "infinity"},
             {"customer_id": "b", "touchpoint": "t", "ts": "10000-01-01T00:00:00Z"},
             {"customer_id": "c", "touchpoint": "t", "ts": "0001-01-01T00:00:00Z"},
             {"customer_id": "d", "touchpoint": "t", "ts": 19970101},
             {"customer_id": "e", "touchpoint": "t", "ts": "2025-01-01T00:00:00Z"}]  # fmt: skip
    body = client.post("/api/v1/events", json=batch, headers={"X-API-Key": key}).json()
    assert (body["accepted"], body["rejected"]) == (2, 3), body
    reasons = {r["row"]: r["reason"] for r in body["rejects"]}
    assert reasons[1] == "ts infinity is not a finite time"
    assert reasons[2] == "ts 10000-01-01T00:00:00Z is outside the years 1 to 9999"
    assert reasons[3].startswith("ts 0001-01-01T00:00:00Z (read as 0001-01-01 00:00:00) is outside the window 1990-01-01")
    old = client.post("/api/v1/events?ts_range=any", json=batch[2:3], headers={"X-API-Key": key}).json()
    assert old["accepted"] == 1, old
    store.close()
    assert _stored(tmp_path / "api.duckdb")["d"] == datetime(1997, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("module", ["keymoments.ingest.timestamps", "keymoments.store.store", "keymoments.store.shape"])
def test_docstring_examples(module):
    assert doctest.testmod(importlib.import_module(module)).failed == 0
