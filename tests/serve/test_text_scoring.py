"""Text posted to the API is scored (and text-only events tagged) in the background after the batch commits."""

from __future__ import annotations

import json

import pandas as pd
from fastapi.testclient import TestClient

from keymoments.config import Settings
from keymoments.serve.app import create_app
from keymoments.serve.auth import create_key
from keymoments.serve.text_scoring import BackgroundScorer
from keymoments.store.schema import MIGRATIONS
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame

EVENTS = [
    {"customer_id": "c1", "ts": "2024-05-01T10:00:00Z", "touchpoint": "booking", "text": "easy to book, thanks"},
    {"customer_id": "c1", "ts": "2024-05-02T10:00:00Z", "touchpoint": "baggage", "text": "they lost my bag at the carousel"},
    {"customer_id": "c2", "ts": "2024-05-02T11:00:00Z", "touchpoint": "baggage", "text": "my suitcase came back torn"},
    {"customer_id": "c2", "ts": "2024-05-03T11:00:00Z", "text": "still no sign of my luggage, the bag is lost"},
]


def _scored(store: Store) -> dict[str, object]:
    row = store.query(
        "SELECT count(*) FILTER (WHERE text_scored) AS scored, count(*) FILTER (WHERE touchpoint IS NULL) AS untagged, "
        "max(touchpoint) FILTER (WHERE text LIKE 'still no sign%') AS tagged FROM events"
    ).iloc[0]
    return {"scored": int(row["scored"]), "untagged": int(row["untagged"]), "tagged": row["tagged"]}


def test_posted_text_is_scored_and_tagged_in_the_background(tmp_path):
    store = Store(tmp_path / "km.duckdb")
    key = create_key(store, "admin", name="test")[1]
    app = create_app(store, Settings(text_model="lexicon"))
    with TestClient(app) as client:  # the context runs the app's start-up: the scoring thread starts
        r = client.post("/api/v1/events", headers={"X-API-Key": key}, json=EVENTS)
        assert r.status_code == 200 and r.json()["accepted"] == 4
        scorer = app.state.km.text_scorer
        assert scorer.wait_idle(60)
        assert _scored(store) == {"scored": 4, "untagged": 0, "tagged": "baggage"}
        health = client.get("/health").json()["text_scoring"]
        assert health == {"scored": 4, "tagged": 1, "busy": False, "error": None}
        tags = json.loads(store.query("SELECT tags FROM text_scores t JOIN events e USING (event_id) WHERE e.text LIKE 'easy%'")["tags"].iloc[0])
        assert tags["emotion"] == "gratitude"
    assert scorer._thread is None  # stopped with the app
    store.close()


def test_scoring_can_be_switched_off(tmp_path):
    store = Store(tmp_path / "km.duckdb")
    app = create_app(store, Settings(score_api_text=False))
    with TestClient(app) as client:
        assert app.state.km.text_scorer is None
        assert client.get("/health").json()["text_scoring"] == "off"
    store.close()


def test_a_failing_model_is_reported_and_the_thread_goes_on(tmp_path):
    store = Store(tmp_path / "km.duckdb")
    ingest_events_frame(store, pd.DataFrame(EVENTS))
    scorer = BackgroundScorer(store, model="no-such-model", delay=0.01).start()
    scorer.poke()
    assert scorer.wait_idle(30)
    assert scorer.status()["error"].startswith("ConfigError") and _scored(store)["scored"] == 0
    scorer.model = "lexicon"  # fixed: the next commit scores everything that was left
    scorer.poke()
    assert scorer.wait_idle(30)
    assert scorer.status()["error"] is None and _scored(store)["scored"] == 4
    scorer.stop()
    store.close()


def test_health_answers_while_the_writer_is_busy(tmp_path):
    import threading

    store = Store(tmp_path / "km.duckdb")
    app = create_app(store, Settings(score_api_text=False))
    busy, done = threading.Event(), threading.Event()

    def writer() -> None:
        with store.write() as con:  # a long statement on the writer connection, under the store's lock
            busy.set()
            con.execute("CREATE TABLE scratch AS SELECT sum(i) AS s FROM range(600000000) t(i)")
        done.set()

    with TestClient(app) as client:
        t = threading.Thread(target=writer)
        t.start()
        assert busy.wait(30)
        answers = []
        while not done.is_set():  # asked again and again while the statement runs
            r = client.get("/health")
            answers.append((r.status_code, r.json().get("schema_version")))
        t.join()
    assert len(answers) > 1 and set(answers) == {(200, len(MIGRATIONS))}
    store.close()
