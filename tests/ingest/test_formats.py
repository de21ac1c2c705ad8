"""Each file format goes in, with its columns mapped onto the contract and timestamps in UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from keymoments.exceptions import IngestError, InvalidParameterError, MissingColumnError
from keymoments.ingest.files import read_source, records_source
from keymoments.ingest.source import parse_mapping
from keymoments.store.writer import ingest_source

ROWS = [
    {"event_id": "a1", "customer_id": "c1", "journey_id": "j1", "ts": "2024-05-01T10:00:00Z", "touchpoint": "check-in",
     "rating": 4, "rating_scale": "csat5", "text": "quick and friendly", "value": 120.5, "channel": "app"},
    {"event_id": "a2", "customer_id": "c1", "journey_id": "j1", "ts": "2024-05-01T12:30:00+02:00", "touchpoint": "boarding",
     "rating": None, "rating_scale": None, "text": None, "value": None, "channel": "airport"},
    {"event_id": "a3", "customer_id": "c2", "journey_id": None, "ts": "2024-05-02 08:00:00", "touchpoint": "flight",
     "rating": 2, "rating_scale": "ces7", "text": None, "value": None, "channel": None},
]


def _obj(v):
    return v if isinstance(v, dict) else json.loads(v)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS)


def _check(store) -> None:
    df = store.query("SELECT * FROM events ORDER BY event_id")
    assert df["event_id"].tolist() == ["a1", "a2", "a3"]
    ts = [t.to_pydatetime() for t in df["ts"]]
    assert ts[0] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert ts[1] == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)  # +02:00 stored in UTC
    assert ts[2] == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)  # naive taken as UTC
    assert df["journey_id"].tolist() == ["j1", "j1", "c2"]  # journey defaults to the customer
    assert df["rating_valence"].iloc[0] == pytest.approx(0.5)  # csat5 4 -> +0.5
    assert df["rating_valence"].iloc[2] == pytest.approx(2 / 3)  # ces7 2 -> inverted
    assert df["valence_source"].tolist() == ["rating", "none", "rating"]
    assert df["next_touchpoint"].iloc[0] == "boarding" and pd.isna(df["next_touchpoint"].iloc[1])
    assert df["step"].tolist() == [1, 2, 1]


def test_csv(tmp_path, store):
    path = tmp_path / "events.csv"
    _frame().to_csv(path, index=False)
    r = ingest_source(store, read_source(path))
    assert (r.accepted, r.duplicates, r.rejected) == (3, 0, 0)
    _check(store)


def test_jsonl(tmp_path, store):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    r = ingest_source(store, read_source(path))
    assert r.accepted == 3
    _check(store)


def test_parquet(tmp_path, store):
    path = tmp_path / "events.parquet"
    _frame().to_parquet(path)
    r = ingest_source(store, read_source(path))
    assert r.accepted == 3
    _check(store)


def test_parquet_native_timestamps_and_epochs(tmp_path, store):
    df = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "touchpoint": ["x", "y", "z"],
        "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-02 00:00", "2024-01-03 00:00"]),
    })
    df.to_parquet(tmp_path / "native.parquet")
    ingest_source(store, read_source(tmp_path / "native.parquet"))
    epochs = pd.DataFrame({"customer_id": ["e1", "e2"], "touchpoint": ["x", "x"], "ts": [1704067200, 1704067200000]})
    epochs.to_csv(tmp_path / "epochs.csv", index=False)
    ingest_source(store, read_source(tmp_path / "epochs.csv"))
    got = store.query("SELECT customer_id, ts FROM events ORDER BY customer_id")
    as_dict = {r.customer_id: r.ts.to_pydatetime() for r in got.itertuples()}
    assert as_dict["c1"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert as_dict["e1"] == as_dict["e2"] == datetime(2024, 1, 1, tzinfo=UTC)  # seconds and milliseconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue Oct 31 22:10:47 +0000 2017", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31T23:10:47+01:00", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("10/31/2017 22:10:47", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("31.10.2017 22:10:47", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31", datetime(2017, 10, 31, tzinfo=UTC)),
        ("1509487847", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        # the 19-character naive form takes a fast path; offsets that fit in 19 characters must not take it
        ("2017-10-31 22:10:47", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31T22:10:47", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("  2017-10-31 22:10:47 ", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31 23:10+01", datetime(2017, 10, 31, 22, 10, tzinfo=UTC)),
        ("2017-10-31T22:10:47Z", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31 23:10:47+01", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
        ("2017-10-31 22:10:47.250", datetime(2017, 10, 31, 22, 10, 47, 250000, tzinfo=UTC)),
        ("1509487847000000000", datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(store, text, expected):
    r = ingest_source(store, records_source([{"customer_id": "c", "touchpoint": "t", "ts": text}]))
    assert r.accepted == 1
    assert store.query("SELECT ts FROM events")["ts"].iloc[0].to_pydatetime() == expected


def test_xes_helpdesk(store, test_data):
    src = read_source(test_data / "Helpdesk.xes.gz")
    r = ingest_source(store, src)
    assert r.rows == 21348 and r.accepted == 21348 and r.rejected == 0
    got = store.query(
        "SELECT count(DISTINCT journey_id) AS j, count(DISTINCT touchpoint) AS t, count(employee_id) AS e FROM events"
    ).iloc[0]
    assert got.j == 4580  # one journey per trace
    assert got.e == 21348
    first = store.query("SELECT * FROM events WHERE journey_id = 'Case3608' ORDER BY step").iloc[0]
    assert first.touchpoint == "Assign seriousness"
    assert first.ts.to_pydatetime() == datetime(2010, 1, 13, 6, 40, 25, tzinfo=UTC)
    assert _obj(first["attrs"])["lifecycle:transition"] == "complete"


def test_xes_and_its_csv_export_are_the_same_events(store, test_data):
    """The CSV export's rows of the log's first 600 cases (whole cases, exact duplicate rows included) are
    recognised as the events the XES already brought in."""
    mapping = parse_mapping(
        ["case:concept:name=journey_id", "case:concept:name=customer_id", "concept:name=touchpoint",
         "time:timestamp=ts", "org:resource=employee_id"]
    )
    ingest_source(store, read_source(test_data / "Helpdesk.xes.gz"))
    csv = test_data / "Helpdesk_events_first600.csv"
    r = ingest_source(store, read_source(csv, mapping=mapping))
    assert (r.accepted, r.duplicates) == (0, len(pd.read_csv(csv))) and r.duplicates == 3014


def test_missing_column_hint(tmp_path):
    path = tmp_path / "e.csv"
    pd.DataFrame({"customer_id": ["c"], "timestamp": ["2024-01-01"], "touchpoint": ["x"]}).to_csv(path, index=False)
    with pytest.raises(MissingColumnError, match=r"column 'ts' is missing; did you mean 'timestamp'\? Use --map timestamp=ts"):
        read_source(path)
    src = read_source(path, mapping=parse_mapping(["timestamp=ts"]))
    assert src.columns["ts"] == "timestamp"


def test_bad_map_and_format_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match="'tss' is not an event field.*Did you mean 'ts'"):
        parse_mapping(["timestamp=tss"])
    (tmp_path / "x.bin").write_text("hello")
    with pytest.raises(IngestError, match="cannot tell the format"):
        read_source(tmp_path / "x.bin")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match="empty"):
        read_source(tmp_path / "empty.csv")
    (tmp_path / "broken.xes").write_text("<log><trace><event>")
    with pytest.raises(IngestError, match="not a readable XES log"):
        read_source(tmp_path / "broken.xes")


def test_extra_columns_go_to_attrs(tmp_path, store):
    path = tmp_path / "e.csv"
    pd.DataFrame({"customer_id": ["c"], "ts": ["2024-01-01"], "touchpoint": ["x"], "fare_class": ["J"]}).to_csv(path, index=False)
    ingest_source(store, read_source(path))
    assert _obj(store.query("SELECT attrs FROM events")["attrs"].iloc[0]) == {"fare_class": "J"}


def test_record_batches_refuse_empty_and_case_clashing_fields(store):
    with pytest.raises(IngestError, match="the events have no fields"):
        records_source([{}, {}])
    with pytest.raises(IngestError, match="'ts' and 'TS' differ only in case"):
        records_source([{"customer_id": "c", "ts": "2024-01-01", "TS": "x", "touchpoint": "t"}])
    with pytest.raises(IngestError, match="each event must be a JSON object"):
        records_source([["c", "2024-01-01"]])  # type: ignore[list-item]


def test_real_csv_with_stray_carriage_returns_goes_in_with_the_broken_record_rejected(tmp_path, store, test_data):
    """The Twitter support corpus has a tweet with two bare carriage returns in an unquoted field, which defeats
    DuckDB's strict CSV dialect detection for the whole file; it is read leniently instead."""
    path = test_data / "twcs_sample.csv"
    src = read_source(path, mapping=parse_mapping(["author_id=customer_id", "created_at=ts", "tweet_id=event_id"]))
    assert "strict_mode=false" in src.relation_sql
    rejects = tmp_path / "twcs.rejects.csv"
    r = ingest_source(store, src, rejects_path=rejects)
    expected = pd.read_csv(path, lineterminator="\n", dtype=str)  # the file's own reading: 2,376 tweets
    broken = expected.loc[expected["text"].str.contains("\r", regex=False, na=False), "tweet_id"].tolist()
    assert broken == ["3399"] and r.accepted == len(expected) - 1 == 2375
    got = store.query("SELECT event_id, ts, touchpoint FROM events")
    assert set(got["event_id"]) == set(expected["tweet_id"]) - {"3399"} and got["touchpoint"].isna().all()
    first = got.loc[got["event_id"] == "1", "ts"].iloc[0]
    assert first == pd.Timestamp("2017-10-31 22:10:47", tz="UTC")  # "Tue Oct 31 22:10:47 +0000 2017", in UTC
    lines = rejects.read_text().splitlines()
    assert lines[1].startswith("1729,malformed line") and lines[2].startswith("1731,malformed line")  # whole numbers
    # a clean file keeps DuckDB's strict reader
    clean = tmp_path / "clean.csv"
    clean.write_text("customer_id,ts,touchpoint\nc1,2024-01-01,check-in\n")
    assert "strict_mode" not in read_source(clean).relation_sql
