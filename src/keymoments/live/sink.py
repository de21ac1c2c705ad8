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

from keymoments.exceptions import ConfigError
from keymoments.live.broker import BrokerAddress, ensure_stream

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


class StreamSink:
    """Consume the whole stream into a DuckDB store; ``request_stop()`` (or SIGTERM) ends it after its batch."""

    def __init__(self, store: Any, address: BrokerAddress, *, batch: int = 1000, ack_wait: float = 60.0) -> None:
        self.store = store
        self.address = address
        self.batch = batch
        self.ack_wait = ack_wait
        self.report = SinkReport()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, *, install_signals: bool = False) -> SinkReport:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if install_signals:
            import signal

            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.request_stop)
        try:
            nc = await nats.connect(self.address.servers, max_reconnect_attempts=-1, connect_timeout=10)
        except Exception as exc:
            raise ConfigError(f"Cannot reach NATS at {self.address.servers}: {exc}") from None
        js = nc.jetstream()
        await ensure_stream(js, self.address)
        sub = await js.pull_subscribe(
            f"{self.address.subject}.*", durable=DURABLE, stream=self.address.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                  ack_wait=self.ack_wait, max_deliver=-1),
        )  # fmt: skip
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
