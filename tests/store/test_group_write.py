"""Several record batches written in one transaction answer and store exactly what one-by-one writes would."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.ingest.files import records_source
from keymoments.store.store import Store
from keymoments.store.writer import ingest_batches, ingest_source


def _batches() -> list[list[dict]]:
    def ev(j: str, hour: int, tp: str, **kw) -> dict:  # noqa: ANN003
        return {"customer_id": "c" + j, "journey_id": j, "ts": f"2024-03-01T{hour:02d}:00:00Z", "touchpoint": tp, **kw}

    a = [ev("j1", 8, "booking"), ev("j1", 10, "check-in"), ev("j2", 9, "booking"), ev("j2", 9, "booking"),
         ev("j3", 9, "booking", rating="9", rating_scale="csat5")]  # an exact duplicate row, a bad rating
    b = [ev("j1", 9, "seat"),  # a late event in a journey that batch a started
         ev("j1", 8, "booking"),  # the same content as a's first row: a duplicate of it
         ev("j2", 9, "booking"), ev("j2", 9, "booking"), ev("j2", 9, "booking"),  # numbered :1..:3 in b alone
         ev("j4", 7, "booking", rating="4", rating_scale="csat5"), {"customer_id": "", "ts": "x", "touchpoint": "t"}]
    c = [ev("j4", 11, "flight"), ev("j1", 12, "boarding"), ev("j5", 1, "booking", event_id="given-1"),
         ev("j6", 2, "booking", event_id="given-1")]  # a repeated given id keeps its first row
    return [a, b, c]  # fmt: skip


def _answers(results: list) -> list[dict]:
    out = []
    for r in results:
        d = r.to_dict()
        d.pop("seconds")
        d.pop("rejects_path")
        out.append(d)
    return out


def _events(store: Store) -> pd.DataFrame:
    return store.query("SELECT * EXCLUDE (attrs) FROM events ORDER BY seq")


def test_a_group_write_answers_and_stores_what_one_by_one_writes_do(tmp_path):
    batches = _batches()
    with Store(tmp_path / "one.duckdb") as one, Store(tmp_path / "group.duckdb") as group:
        ingest_source(one, records_source([batches[0][0]]))  # both stores start with one event of j1
        ingest_source(group, records_source([batches[0][0]]))
        alone = [ingest_source(one, records_source(b), rejects_path=tmp_path / "r.csv") for b in batches]
        together = ingest_batches(group, [records_source(b) for b in batches])
        assert _answers([a.result for a in together]) == _answers(alone)
        assert [r.batch_id for r in alone] == [2, 3, 4]
        pd.testing.assert_frame_equal(_events(group), _events(one))
        assert group.query("SELECT * FROM batches ORDER BY batch_id")[["batch_id", "accepted", "duplicates", "rejected"]].equals(
            one.query("SELECT * FROM batches ORDER BY batch_id")[["batch_id", "accepted", "duplicates", "rejected"]]
        )
    rejects = together[1].rejects
    assert rejects["row"].tolist() == [7] and rejects["reason"].iloc[0] == "customer_id is empty"
    assert together[0].rejects["reason"].tolist() == ["rating 9 is outside the csat5 scale"]


def test_a_group_commits_together_or_not_at_all(tmp_path, fail_writes_of):
    store = Store(tmp_path / "km.duckdb")
    ok = records_source([{"customer_id": "c", "ts": "2024-01-01T00:00:00Z", "touchpoint": "t"}])
    bad = records_source([{"customer_id": "boom", "ts": "2024-01-01T00:00:00Z", "touchpoint": "t"}])
    fail_writes_of("boom")
    with pytest.raises(OSError, match="No space"):
        ingest_batches(store, [ok, bad])
    assert store.count("events") == 0 and store.count("batches") == 0
    store.close()


def test_batches_with_other_extra_fields_are_not_written_together(store):
    ev = {"customer_id": "c", "ts": "2024-01-01", "touchpoint": "t"}
    with pytest.raises(ValueError, match="one shape"):  # extra fields go to attrs: a batch's own set of keys
        ingest_batches(store, [records_source([ev]), records_source([{**ev, "gate": "B12"}])])
    assert store.count("events") == 0
