"""One path for HTTP and broker intake: with KM_BROKER set, ``POST /api/v1/events`` publishes to the stream that
``keymoments worker`` consumes; ``/health`` reports the broker's lag, the outbox's backlog and each worker's
last processed event."""

from __future__ import annotations

import asyncio
import threading
import time

from fastapi.testclient import TestClient

from keymoments.act.yaml_loader import loads_playbooks
from keymoments.config import Settings
from keymoments.live.broker import BrokerAddress
from keymoments.live.worker import Worker
from keymoments.serve.app import create_app
from keymoments.serve.auth import create_key

from ._live import PLAYBOOKS, make_events


def test_posted_events_reach_the_worker_and_health_reports_it(pg_store, pg_url, pg_schema, nats_url, stream_name):
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    settings = Settings(score_api_text=False, broker=f"{nats_url}/{address.subject}", partitions=2,
                        database_url=pg_url, database_schema=pg_schema)  # fmt: skip
    # the default stream name is the subject in capitals: the fixture's name, so the fixture deletes it
    assert BrokerAddress.parse(settings.broker).stream == stream_name
    _, key = create_key(pg_store, "admin")
    events = make_events(20, 5, seed=3)
    bad = [{"customer_id": "x", "touchpoint": "flight"}, {"customer_id": "y", "ts": "2025-01-01", "rating": 4,
                                                          "rating_scale": "stars7"}]  # fmt: skip
    with TestClient(create_app(pg_store, settings)) as client:
        h = {"X-API-Key": key}
        r = client.post("/api/v1/events", headers=h, json=events + bad)
        assert r.status_code == 200, r.text
        a = r.json()
        assert (a["accepted"], a["rejected"], a["published"]) == (100, 2, stream_name)
        assert [x["row"] for x in a["rejects"]] == [101, 102] and "ts" in a["rejects"][0]["reason"]
        assert pg_store.count("events") == 0  # published, not written here

        health = client.get("/health").json()
        assert health["operational_store"] == "postgresql" and health["broker"]["stream"] == stream_name
        assert [p["consumer"] for p in health["broker"]["partitions"]] == [None, None]  # no worker yet
        assert health["outbox"]["pending"] == 0 and health["workers"] == []

        w = Worker(pg_store.ops, loads_playbooks(PLAYBOOKS), address, partitions=2, batch=20, worker_id="w-health")
        t = threading.Thread(target=lambda: asyncio.run(w.run()), daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and w.report.events < 100:
            time.sleep(0.1)
        assert w.report.events == 100
        # the worker's row moves with its heartbeat (each second) and the acks follow each commit: wait for both
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = client.get("/health").json()
            mine = [x for x in health["workers"] if x["worker_id"] == "w-health"]
            if mine and mine[0]["events"] == 100 and health["broker"]["lag"] == 0:
                break
            time.sleep(0.2)
        w.request_stop()
        t.join(timeout=30)
    assert health["broker"]["lag"] == 0 and {p["partition"] for p in health["broker"]["partitions"]} == {0, 1}
    (me,) = [x for x in health["workers"] if x["worker_id"] == "w-health"]
    assert me["alive"] and me["events"] == 100 and me["last_event_id"] in {e["event_id"] for e in events}
    assert sum(p["events"] for p in health["partitions"]) == 100
    assert health["outbox"]["pending"] > 0 and health["outbox"]["oldest_pending_age_s"] >= 0  # notify webhooks wait
