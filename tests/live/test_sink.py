"""``keymoments ingest-stream``: the stream's events reach the DuckDB store once, through the file ingest's
validation, so the analyses see what the workers decided on."""

from __future__ import annotations

import asyncio
import threading
import time

from keymoments.live.broker import BrokerAddress
from keymoments.live.sink import StreamSink

from ._live import make_events, publish


def test_the_stream_is_written_into_the_store_once(store, nats_url, stream_name):
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    events = make_events(30, 5, seed=5)
    publish(nats_url, address, events, 3)
    sink = StreamSink(store, address, batch=40)
    t = threading.Thread(target=lambda: asyncio.run(sink.run()), daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and store.count("events") < len(events):
        time.sleep(0.1)
    publish(nats_url, address, events[:25], 3, raw=True)  # published again: the store keeps one of each
    while time.monotonic() < deadline and sink.report.duplicates < 25:
        time.sleep(0.1)
    sink.request_stop()
    t.join(timeout=30)
    assert not t.is_alive()
    assert store.count("events") == len(events)
    assert (sink.report.accepted, sink.report.duplicates, sink.report.rejected) == (len(events), 25, 0)
    got = store.query("SELECT event_id, customer_id, touchpoint, outcome FROM events ORDER BY event_id")
    want = sorted((e["event_id"], e["customer_id"], e["touchpoint"], e["outcome"]) for e in events)
    assert [tuple(r) for r in got.itertuples(index=False)] == want
