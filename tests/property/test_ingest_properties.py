"""Invariants of ingest and scoring, over generated batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keymoments.ingest.files import records_source
from keymoments.score.store import score_store
from keymoments.store.store import Store
from keymoments.store.writer import ingest_source
from keymoments.testing import event_records


@pytest.mark.filterwarnings("ignore::keymoments.exceptions.NotEnglishWarning")  # generated text is not English
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_records())
def test_ingest_roundtrip_and_invariants(records):
    with Store(":memory:") as store:
        r = ingest_source(store, records_source(records))
        assert r.rejected == 0
        assert r.accepted + r.duplicates == len(records)
        assert r.accepted == len(records)  # ids are content + occurrence: every record is kept once
        score_store(store, scorer="lexicon")
        df = store.query("SELECT * FROM events")
        assert len(df) == len(records)
        v = df["valence"].dropna()
        assert ((v >= -1) & (v <= 1)).all()
        c = df["confidence"]
        assert ((c >= 0) & (c <= 1)).all()
        assert set(df["valence_source"]) <= {"rating", "text", "both", "none"}
        # every journey's steps are 1..n, and the next-touchpoint links sum to events minus journeys
        per = df.groupby("journey_id")["step"].agg(["min", "max", "count"])
        assert (per["min"] == 1).all() and (per["max"] == per["count"]).all()
        assert df["next_touchpoint"].notna().sum() == len(df) - df["journey_id"].nunique()
        again = ingest_source(store, records_source(records))
        assert again.accepted == 0 and again.duplicates == len(records)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)).map(lambda d: d.replace(microsecond=0)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([" ", "T"]),
)
def test_plain_iso_text_reads_as_the_same_utc_instant(moments, sep):
    """The fast path for 'YYYY-MM-DD HH:MM:SS' agrees with Python's reading of the same text as UTC."""
    records = [{"customer_id": f"c{i}", "touchpoint": "t", "ts": d.isoformat(sep=sep)} for i, d in enumerate(moments)]
    with Store(":memory:") as store:
        # the reading is what is checked here, over 1900-2200: the window that refuses implausible batches is off
        assert ingest_source(store, records_source(records, ts_range="any")).accepted == len(records)
        got = store.query("SELECT customer_id, ts FROM events")
    by_customer = {r.customer_id: r.ts.to_pydatetime() for r in got.itertuples()}
    assert [by_customer[f"c{i}"] for i in range(len(moments))] == [d.replace(tzinfo=UTC) for d in moments]
