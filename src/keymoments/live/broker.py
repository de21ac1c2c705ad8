"""The event stream on NATS JetStream: where it is, how customers are partitioned, publishing and lag.

A broker address is ``nats://HOST:PORT/SUBJECT`` (``KM_BROKER``, ``keymoments worker --from``). Events are
published to ``SUBJECT.<partition>``, the partition being a stable hash of the customer id modulo the number of
partitions (``KM_PARTITIONS``), so one customer's events share one subject and stay in order; the stream
(default name: the subject in capitals, dots as underscores) holds ``SUBJECT.*``. Each message is one event as
JSON (the data contract's fields, ``ts`` in ISO-8601) with ``Nats-Msg-Id: <event_id>``, so JetStream drops a
publisher's retry within its duplicate window, and workers dedupe on ``event_id`` beyond it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import orjson

from keymoments.exceptions import ConfigError, InvalidEventError

__all__ = ["BrokerAddress", "BrokerClient", "StreamConsumer", "encode_event", "ensure_stream", "event_id_of",
           "partition_of"]

_FIELDS = ("event_id", "customer_id", "journey_id", "ts", "touchpoint", "stage", "channel", "outcome", "rating",
           "rating_scale", "text", "value", "employee_id", "location_id", "attrs")  # fmt: skip


@dataclass(frozen=True)
class BrokerAddress:
    """Where the event stream is: ``servers`` (nats://host:port), ``subject`` and the ``stream`` name."""

    servers: str
    subject: str
    stream: str

    @classmethod
    def parse(cls, url: str, stream: str | None = None) -> BrokerAddress:
        """``nats://HOST:PORT/SUBJECT`` → an address; the stream defaults to the subject in capitals."""
        u = urlparse(url)
        subject = u.path.lstrip("/")
        if u.scheme != "nats" or not u.hostname or not subject:
            raise ConfigError(
                f"A broker address looks like nats://127.0.0.1:4222/keymoments.events; got {url!r}."
            )
        if any(c in subject for c in " *>") or subject.endswith("."):
            raise ConfigError(f"The subject {subject!r} must be a plain NATS subject (no spaces, * or >).")
        name = stream or subject.upper().replace(".", "_").replace("-", "_")
        return cls(f"nats://{u.hostname}:{u.port or 4222}", subject, name)

    def partition_subject(self, partition: int) -> str:
        return f"{self.subject}.{partition}"

    def durable(self, partition: int) -> str:
        return f"km-worker-{partition}"


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition of a customer: blake2b of the id, modulo ``partitions`` (stable across processes)."""
    h = hashlib.blake2b(str(customer_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") % partitions


def event_id_of(event: dict[str, Any]) -> str:
    """The event's id, or a stable hash of its content when it has none (as file ingest does)."""
    eid = event.get("event_id")
    if eid not in (None, ""):
        return str(eid)
    body = orjson.dumps({k: event.get(k) for k in _FIELDS if k != "event_id"}, option=orjson.OPT_SORT_KEYS, default=str)
    return "h-" + hashlib.blake2b(body, digest_size=12).hexdigest()


def encode_event(event: dict[str, Any]) -> tuple[str, bytes]:
    """Validate one event enough to route and decide on it; return ``(event_id, JSON body)``.

    Raises InvalidEventError with the field at fault."""
    cid = event.get("customer_id")
    if cid in (None, ""):
        raise InvalidEventError("customer_id is missing")
    ts = event.get("ts")
    if ts in (None, ""):
        raise InvalidEventError("ts is missing")
    out = {k: event.get(k) for k in _FIELDS if event.get(k) is not None}
    out["customer_id"] = str(cid)
    out["ts"] = _iso(ts)
    out["event_id"] = event_id_of(event)
    return out["event_id"], orjson.dumps(out, default=str)


def _iso(ts: Any) -> str:
    if isinstance(ts, datetime):
        t = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return t.astimezone(UTC).isoformat()
    if isinstance(ts, int | float):
        return datetime.fromtimestamp(float(ts), UTC).isoformat()
    try:
        t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEventError(f"ts {ts!r} is not an ISO-8601 time or epoch seconds") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


async def ensure_stream(js: Any, address: BrokerAddress, *, duplicate_window: float = 120.0) -> None:
    """Create the stream (``SUBJECT.*``, kept on file) if it does not exist yet."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(address.stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=address.stream, subjects=[f"{address.subject}.*"],
                                         duplicate_window=duplicate_window))  # fmt: skip


class StreamConsumer:
    """What the stream's consumers share (``keymoments worker``, ``keymoments ingest-stream``): a stop request
    (SIGTERM/SIGINT, or :meth:`request_stop` from any thread) that lets the batch in flight finish, the
    connection to NATS with the stream ensured, and durable pull consumers that acknowledge explicitly."""

    address: BrokerAddress
    _stop: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        """Finish the batch in flight, then stop (what SIGTERM does); safe to call from any thread."""
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def _start(self, *, install_signals: bool) -> tuple[Any, Any]:
        """Set up the stop request (and the signals), connect, ensure the stream; return (connection, jetstream)."""
        import nats

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
        return nc, js

    async def _durable(self, js: Any, subject: str, durable: str, *, ack_wait: float, **config: Any) -> Any:
        """A durable pull consumer over ``subject`` from the stream's start; each message acknowledged explicitly,
        redelivered after ``ack_wait`` seconds without an acknowledgement, as often as it takes."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        return await js.pull_subscribe(
            subject, durable=durable, stream=self.address.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=ack_wait,
                                  max_deliver=-1, **config),
        )  # fmt: skip


async def publish_events(js: Any, address: BrokerAddress, events: Iterable[dict[str, Any]], partitions: int,
                         *, concurrency: int = 256) -> list[str]:  # fmt: skip
    """Publish events (each acknowledged by JetStream before this returns); return their ids in order.

    Messages go out in the order given (``publish_async`` emits at the call), so one customer's events reach
    their partition in that order; up to ``concurrency`` acknowledgements are awaited at once."""
    ids: list[str] = []
    pending: list[Any] = []
    for ev in events:
        eid, body = encode_event(ev)
        subject = address.partition_subject(partition_of(str(ev["customer_id"]), partitions))
        pending.append(await js.publish_async(subject, body, headers={"Nats-Msg-Id": eid}))
        ids.append(eid)
        if len(pending) >= concurrency:
            await asyncio.gather(*pending)
            pending = []
    if pending:
        await asyncio.gather(*pending)
    return ids


async def stream_lag(js: Any, address: BrokerAddress, partitions: int) -> dict[str, Any]:
    """Per partition: messages not yet delivered to its worker and delivered but not acknowledged."""
    from nats.js.errors import NotFoundError

    out: dict[str, Any] = {"stream": address.stream, "subject": address.subject, "partitions": []}
    total = 0
    for p in range(partitions):
        try:
            info = await js.consumer_info(address.stream, address.durable(p))
        except NotFoundError:
            out["partitions"].append({"partition": p, "consumer": None, "pending": None, "ack_pending": None})
            continue
        lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        total += lag
        out["partitions"].append({"partition": p, "consumer": address.durable(p), "pending": int(info.num_pending or 0),
                                  "ack_pending": int(info.num_ack_pending or 0)})  # fmt: skip
    out["lag"] = total
    return out


class BrokerClient:
    """A synchronous face on one NATS connection, for threads that are not asyncio's (the API's handlers).

    It runs its own event loop in a daemon thread; :meth:`publish` and :meth:`lag` block until done.
    """

    def __init__(self, address: BrokerAddress, *, partitions: int, timeout: float = 10.0) -> None:
        self.address = address
        self.partitions = partitions
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="km-broker", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._lock = threading.Lock()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    async def _connect(self) -> Any:
        if self._js is None:
            import nats

            try:
                self._nc = await nats.connect(self.address.servers, connect_timeout=self.timeout,
                                              max_reconnect_attempts=-1)  # fmt: skip
            except Exception as exc:
                raise ConfigError(f"Cannot reach NATS at {self.address.servers}: {exc}") from None
            self._js = self._nc.jetstream()
            await ensure_stream(self._js, self.address)
        return self._js

    async def _publish(self, events: Sequence[dict[str, Any]]) -> list[str]:
        js = await self._connect()
        return await publish_events(js, self.address, events, self.partitions)

    async def _lag(self) -> dict[str, Any]:
        js = await self._connect()
        return await stream_lag(js, self.address, self.partitions)

    def publish(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """Publish events to their partitions; returns their event ids once JetStream has stored them all."""
        return self._call(self._publish(events))

    def lag(self) -> dict[str, Any]:
        return self._call(self._lag())

    def close(self) -> None:
        if self._nc is not None:
            try:
                self._call(self._nc.close())
            except Exception:  # noqa: BLE001 - closing on shutdown is best effort
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
