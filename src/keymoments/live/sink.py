"""``keymoments ingest-stream``: write the event stream into the DuckDB store, the analytical side.

When the API publishes posted events to the broker (``KM_BROKER``), the workers decide on them and record on
PostgreSQL, and this one process (DuckDB lets one process write a file) writes the same events into the store
that the analyses read: one durable consumer (``km-store``) over every partition, batches through the file
ingest's own validation and de-duplication (idempotent on ``event_id``), each batch acknowledged only after it
has committed, so a crash loses nothing and a redelivery adds nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from keymoments.live.broker import BrokerAddress, StreamConsumer

__all__ = ["StreamSink", "SinkReport"]

log = logging.getLogger("keymoments.sink")

DURABLE = "km-store"


@dataclass
class SinkReport:
    """What the sink wrote before it stopped."""

    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}  # fmt: skip


class StreamSink(StreamConsumer):
    """Consume the whole stream into a DuckDB store; ``request_stop()`` (or SIGTERM) ends it after its batch."""

    def __init__(self, store: Any, address: BrokerAddress, *, batch: int = 1000, ack_wait: float = 60.0) -> None:
        self.store = store
        self.address = address
        self.batch = batch
        self.ack_wait = ack_wait
        self.report = SinkReport()

    async def run(self, *, install_signals: bool = False) -> SinkReport:
        nc, js = await self._start(install_signals=install_signals)
        sub = await self._durable(js, f"{self.address.subject}.*", DURABLE, ack_wait=self.ack_wait)
        assert self._stop is not None
        try:
            while not self._stop.is_set():
                try:
                    msgs = await sub.fetch(self.batch, timeout=0.5)
                except TimeoutError:
                    continue
                events = []
                for m in msgs:
                    try:
                        ev = orjson.loads(m.data)
                    except orjson.JSONDecodeError:
                        ev = None
                    if isinstance(ev, dict):
                        events.append(ev)
                if events:
                    await asyncio.to_thread(self._write, events)
                for m in msgs:
                    await m.ack()
        finally:
            await sub.unsubscribe()
            await nc.drain()
        return self.report

    def _write(self, events: list[dict[str, Any]]) -> None:
        from keymoments.ingest.files import records_source
        from keymoments.store.writer import ingest_batches

        answer = ingest_batches(self.store, [records_source(events, name="stream")])[0]
        r = answer.result
        self.report.batches += 1
        self.report.accepted += r.accepted
        self.report.duplicates += r.duplicates
        self.report.rejected += r.rejected
        if r.rejected:
            log.warning("%d events of a batch from the stream were rejected: %s", r.rejected, r.reasons)
