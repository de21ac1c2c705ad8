"""Idempotence, rejects with reasons, incremental derived columns, and atomicity under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from keymoments.ingest.files import read_source, records_source
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame, ingest_source


def _events(n_journeys: int = 50, per: int = 4) -> pd.DataFrame:
    rows = []
    tps = ["reservation", "check-in", "boarding", "flight"]
    for j in range(n_journeys):
        for k in range(per):
            rows.append({
                "customer_id": f"c{j % 20}",
                "journey_id": f"j{j}",
                "ts": f"2024-03-{1 + j % 28:02d}T{8 + k:02d}:00:00Z",
                "touchpoint": tps[k % 4],
                "rating": 1 + (j + k) % 5,
                "rating_scale": "csat5",
            })
    return pd.DataFrame(rows)


@pytest.fixture(params=["small batch", "big batch"])
def both_paths(request, monkeypatch):
    """Run a test through the small-batch writer and through the big-batch one (narrow keys joined back)."""
    from keymoments.store import writer

    if request.param == "big batch":
        monkeypatch.setattr(writer, "_NARROW_ROWS", 0)


def test_reingest_adds_nothing(tmp_path, store, both_paths):
    path = tmp_path / "e.csv"
    _events().to_csv(path, index=False)
    first = ingest_source(store, read_source(path))
    second = ingest_source(store, read_source(path))
    assert (first.accepted, first.duplicates) == (200, 0)
    assert (second.accepted, second.duplicates) == (0, 200)
    assert store.count("events") == 200


def test_exact_duplicate_rows_are_kept_once_each_like_process_mining_tools(store, both_paths):
    df = _events(3, 2)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)  # one exact duplicate row in the file
    r = ingest_events_frame(store, df)
    assert r.accepted == 7
    again = ingest_events_frame(store, df)
    assert (again.accepted, again.duplicates) == (0, 7)


def test_repeated_given_ids_keep_the_first(store, both_paths):
    df = pd.DataFrame({
        "event_id": ["x", "x", "y"], "customer_id": ["a", "b", "c"], "ts": ["2024-01-01"] * 3, "touchpoint": ["t"] * 3,
    })
    r = ingest_events_frame(store, df)
    assert (r.accepted, r.duplicates) == (2, 1)
    assert store.query("SELECT customer_id FROM events WHERE event_id = 'x'")["customer_id"].tolist() == ["a"]


def test_rejects_have_line_numbers_and_reasons(tmp_path, store):
    path = tmp_path / "bad.csv"
    path.write_text(
        "customer_id,ts,touchpoint,rating,rating_scale\n"
        "c1,2024-01-01T10:00:00Z,check-in,4,csat5\n"  # line 2 ok
        ",2024-01-01T10:00:00Z,check-in,4,csat5\n"  # line 3 no customer
        "c2,yesterday,check-in,4,csat5\n"  # line 4 bad ts
        "c3,2024-01-01T10:00:00Z,check-in,9,csat5\n"  # line 5 out of range
        "c4,2024-01-01T10:00:00Z,check-in,4,stars10\n"  # line 6 unknown scale
        "c5,2024-01-01T10:00:00Z,check-in,good,csat5\n"  # line 7 not a number
        "c6,2024-01-01T10:00:00Z,,4,csat5\n"  # line 8 no touchpoint, no text
        "c7,2024-01-01T10:00:00Z,boarding,5,csat5\n"  # line 9 ok
    )
    rejects = tmp_path / "rejects.csv"
    r = ingest_source(store, read_source(path), rejects_path=rejects)
    assert (r.accepted, r.rejected) == (2, 6)
    got = pd.read_csv(rejects)
    assert got["line"].tolist() == [3, 4, 5, 6, 7, 8]
    reasons = got["reason"].tolist()
    assert reasons[0] == "customer_id is empty"
    assert reasons[1].startswith("ts yesterday is not a timestamp")
    assert reasons[2] == "rating 9 is outside the csat5 scale"
    assert reasons[3].startswith("rating_scale stars10 is unknown; use one of csat5")
    assert reasons[4] == "rating good is not a number"
    assert reasons[5] == "touchpoint is empty and there is no text to infer it from"
    assert store.count("events") == 2


def test_malformed_csv_lines_are_rejected_and_the_rest_goes_in(tmp_path, store):
    path = tmp_path / "ragged.csv"
    path.write_text(
        "customer_id,ts,touchpoint\n"
        "c1,2024-01-01,check-in\n"
        "c2,2024-01-01,check-in,extra,fields\n"
        "c3,2024-01-01,boarding\n"
    )
    rejects = tmp_path / "r.csv"
    r = ingest_source(store, read_source(path), rejects_path=rejects)
    assert r.accepted == 2 and r.rejected == 1
    got = pd.read_csv(rejects)
    assert got["line"].tolist() == [3] and got["reason"].iloc[0].startswith("malformed line")


def test_late_events_rederive_their_journey(store, both_paths):
    ingest_source(store, records_source([
        {"customer_id": "c", "journey_id": "j", "ts": "2024-01-01T10:00:00Z", "touchpoint": "a"},
        {"customer_id": "c", "journey_id": "j", "ts": "2024-01-01T12:00:00Z", "touchpoint": "c"},
    ]))
    ingest_source(store, records_source([
        {"customer_id": "c", "journey_id": "j", "ts": "2024-01-01T11:00:00Z", "touchpoint": "b"},
        {"customer_id": "c", "journey_id": "j", "ts": "2024-01-01T13:00:00Z", "touchpoint": "d"},
    ]))
    df = store.query("SELECT touchpoint, step, next_touchpoint, is_last FROM events ORDER BY step")
    assert df["touchpoint"].tolist() == ["a", "b", "c", "d"]
    assert df["step"].tolist() == [1, 2, 3, 4]
    assert df["next_touchpoint"].tolist()[:3] == ["b", "c", "d"]
    assert df["is_last"].tolist() == [False, False, False, True]


def test_equal_timestamps_keep_source_order(store, both_paths):
    ingest_source(store, records_source([
        {"customer_id": "c", "ts": "2024-01-01T10:00:00Z", "touchpoint": t} for t in ["z", "a", "m"]
    ]))
    assert store.query("SELECT touchpoint FROM events ORDER BY step")["touchpoint"].tolist() == ["z", "a", "m"]


def test_derived_columns_match_a_pandas_reference(store, both_paths):
    df = _events(40, 4).sample(frac=1.0, random_state=1)  # shuffled source order
    ingest_events_frame(store, df)
    got = store.query("SELECT journey_id, ts, touchpoint, step, next_touchpoint FROM events")
    ref = got.sort_values(["journey_id", "ts"], kind="stable").copy()
    ref["ref_step"] = ref.groupby("journey_id").cumcount() + 1
    ref["ref_next"] = ref.groupby("journey_id")["touchpoint"].shift(-1)
    assert (ref["step"] == ref["ref_step"]).all()
    assert ref["next_touchpoint"].fillna("").tolist() == ref["ref_next"].fillna("").tolist()


CHILD = textwrap.dedent(
    """
    import sys, time
    from keymoments.store import writer
    from keymoments.store.store import Store
    from keymoments.ingest.files import read_source
    real = writer.insert_with_derived
    def slow(*a, **k):
        n = real(*a, **k)
        print("inserted", flush=True)   # rows are written, the transaction is still open
        time.sleep(60)
        return n
    writer.insert_with_derived = slow
    store = Store(sys.argv[1])
    writer.ingest_source(store, read_source(sys.argv[2]))
    """
)


def test_kill_during_ingest_leaves_the_store_as_before(tmp_path):
    db = tmp_path / "km.duckdb"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    _events(30, 4).to_csv(first, index=False)
    more = _events(300, 4)
    more["journey_id"] = "k" + more["journey_id"]
    more.to_csv(second, index=False)
    with Store(db) as s:
        ingest_source(s, read_source(first))
        assert s.count("events") == 120
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(second)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "inserted", proc.stderr.read()  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    with Store(db) as s:
        assert s.count("events") == 120
        assert s.count("batches") == 1
        r = ingest_source(s, read_source(second))  # and the batch can simply be retried
        assert r.accepted == 1200 and s.count("events") == 1320


def test_a_file_with_a_missing_column_writes_nothing(tmp_path, store):
    from keymoments.exceptions import MissingColumnError

    path = tmp_path / "e.csv"
    pd.DataFrame({"customer_id": ["c"], "touchpoint": ["x"]}).to_csv(path, index=False)
    with pytest.raises(MissingColumnError):
        ingest_source(store, read_source(path))
    assert store.count("events") == 0 and store.count("batches") == 0


def test_store_path_errors(tmp_path):
    from keymoments.exceptions import StoreError

    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope" / "km.duckdb")
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    with pytest.raises(StoreError, match="Cannot open store"):
        Store(junk)


def test_readers_see_committed_data_while_a_write_is_open(store):
    ingest_events_frame(store, _events(2, 2))
    with store.write() as con:
        con.execute("DELETE FROM events")
        assert store.count("events") == 4  # a reader cursor still sees the committed rows
    assert store.count("events") == 0


def test_shared_path_exists():
    assert Path(__file__).exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "csv numbered as read"])
def test_big_files_keep_their_row_order(tmp_path, store, fmt, monkeypatch):
    """Positions (seq, rejects' line numbers) follow the file across many row groups."""
    import duckdb

    from keymoments.store import writer

    if fmt == "csv numbered as read":  # as if DuckDB could not keep the file's order when staging it
        monkeypatch.setattr(writer, "_keeps_order", lambda con, sql: False)
        fmt = "csv"

    n, bad = 400_000, 345_678  # row `bad` (0-based) has no customer
    path = tmp_path / f"big.{fmt}"
    opts = {"csv": "(HEADER)", "parquet": "(FORMAT parquet)", "jsonl": "(FORMAT json)"}[fmt]
    duckdb.connect().execute(f"""
        COPY (SELECT CASE WHEN i = {bad} THEN NULL ELSE 'c' || i END AS customer_id, 'j' || (i // 7) AS journey_id,
                     TIMESTAMP '2024-01-01' + to_seconds(i) AS ts, 'tp' || (i % 5) AS touchpoint
              FROM range({n}) t(i)) TO '{path}' {opts}
    """)
    rejects = tmp_path / "rejects.csv"
    r = ingest_source(store, read_source(path), rejects_path=rejects)
    assert (r.accepted, r.rejected) == (n - 1, 1)
    first_line, position = (2, "line") if fmt == "csv" else (1, "row" if fmt == "parquet" else "line")
    assert pd.read_csv(rejects)[position].tolist() == [bad + first_line]
    off = store.query(
        "SELECT count(*) AS n FROM events WHERE customer_id <> 'c' || ((seq & 4294967295) - 1)"
    )["n"].iloc[0]
    assert off == 0
