"""Ingest over HTTP: the same validation and rejects as files, idempotent, atomic per batch."""

from __future__ import annotations

import pandas as pd

BATCH = [
    {"event_id": "api-1", "customer_id": "cx1", "journey_id": "jx1", "ts": "2025-06-01T08:00:00Z",
     "touchpoint": "booking", "channel": "web", "rating": 5, "rating_scale": "csat5"},
    {"event_id": "api-2", "customer_id": "cx1", "journey_id": "jx1", "ts": "2025-06-02T08:00:00+02:00",
     "touchpoint": "check-in", "channel": "app", "rating": 2, "rating_scale": "csat5", "text": "Long queue"},
    {"event_id": "api-3", "customer_id": "", "ts": "2025-06-02T09:00:00Z", "touchpoint": "boarding"},
    {"event_id": "api-4", "customer_id": "cx1", "ts": "not a time", "touchpoint": "boarding"},
    {"event_id": "api-5", "customer_id": "cx1", "ts": "2025-06-02T09:00:00Z", "touchpoint": "boarding",
     "rating": 9, "rating_scale": "csat5"},
]  # fmt: skip


def test_batch_rejects_bad_rows_with_reasons_and_keeps_the_good(empty_api):
    r = empty_api.post("/api/v1/events", json=BATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["received"], body["accepted"], body["duplicates"], body["rejected"]) == (5, 2, 0, 3)
    rejects = {x["row"]: x for x in body["rejects"]}
    assert set(rejects) == {3, 4, 5}
    assert "customer_id" in rejects[3]["reason"]
    assert "ts" in rejects[4]["reason"]
    assert "rating" in rejects[5]["reason"]
    assert rejects[4]["event"]["event_id"] == "api-4"
    assert sum(body["reasons"].values()) == 3
    ev = empty_api.store.query("SELECT event_id, ts, valence FROM events ORDER BY ts")
    assert list(ev["event_id"]) == ["api-1", "api-2"]
    assert ev["ts"].iloc[1] == pd.Timestamp("2025-06-02T06:00:00Z")  # stored in UTC


def test_same_batch_twice_adds_nothing(empty_api):
    first = empty_api.post("/api/v1/events", json={"events": BATCH[:2]}).json()
    again = empty_api.post("/api/v1/events", json={"events": BATCH[:2]}).json()
    assert (first["accepted"], first["duplicates"]) == (2, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert empty_api.store.count("events") == 2


def test_events_without_ids_are_idempotent_by_content(empty_api):
    batch = [{k: v for k, v in e.items() if k != "event_id"} for e in BATCH[:2]]
    assert empty_api.post("/api/v1/events", json=batch).json()["accepted"] == 2
    assert empty_api.post("/api/v1/events", json=batch).json()["duplicates"] == 2
    assert empty_api.store.count("events") == 2


def test_outcomes_upsert(empty_api):
    rows = [{"customer_id": "cx1", "retained": True, "spend": 120.5, "tier": "gold"},
            {"customer_id": "cx2", "retained": False, "spend": 0, "tier": "blue"}]  # fmt: skip
    r = empty_api.post("/api/v1/outcomes", json=rows)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["outcomes"]) == ["retained", "spend"] and r.json()["attributes"] == ["tier"]
    again = empty_api.post("/api/v1/outcomes", json=rows)
    assert again.status_code == 200
    assert empty_api.store.count("outcomes") == 4
    missing = empty_api.post("/api/v1/outcomes", json=[{"id": "cx1", "retained": True}])
    assert missing.status_code == 422
    assert "customer_id" in missing.json()["error"]


def test_ingest_changes_what_analyses_see(empty_api):
    empty_api.post("/api/v1/events", json=BATCH[:2])
    a = empty_api.get("/api/v1/analyses/journey").json()
    assert a["events"] == 2
    empty_api.post("/api/v1/events", json=[{**BATCH[0], "event_id": "api-9", "journey_id": "jx9"}])
    b = empty_api.get("/api/v1/analyses/journey").json()
    assert b["events"] == 3
