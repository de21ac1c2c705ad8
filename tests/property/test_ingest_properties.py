"""Invariants of ingest and scoring, over generated batches."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from keymoments.ingest.files import records_source
from keymoments.score.store import score_store
from keymoments.store.store import Store
from keymoments.store.writer import ingest_source
from keymoments.testing import event_records


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
