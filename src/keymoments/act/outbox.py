"""``act``: deliver the outbox's messages as signed webhooks, with retries and exponential backoff.

The transactional outbox: a decision and its messages are written in the *same* transaction (see
:meth:`keymoments.act.runner.PlaybookRunner.fire`), and a message is marked ``delivered`` only after the
receiver answered 2xx. So a crash between decision and delivery loses nothing (the message is still
``pending`` and is sent on restart), and duplicates nothing the receiver cares about: every request carries the
message's id as ``Idempotency-Key``, the same on every retry, so the receiver processes each action once.

Each request is signed: ``X-Keymoments-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
(check it with :func:`verify_signature`, which also rejects stale timestamps against replays).

Retries: connection errors, timeouts, 408, 429 and 5xx are retried after ``base_delay * 2**attempt`` seconds
(capped at ``max_delay``, plus up to 25% deterministic jitter); other 4xx answers and messages that used up
``max_attempts`` become ``dead`` (visible in ``keymoments playbooks report``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from keymoments.act.holdouts import unit_hash
from keymoments.store.ops import OperationalStore, ops_of
from keymoments.store.store import Store

__all__ = ["DeliveryReport", "OutboxWorker", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Keymoments-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRY_STATUS = {408, 425, 429}


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str | bytes, body: bytes, header: str, *, tolerance_s: float = 300, now: float | None = None) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance_s`` seconds."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


@dataclass
class DeliveryReport:
    """What one pass of the worker did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.dead


class OutboxWorker:
    """Deliver pending outbox messages.

    ``deliver_due()`` sends every message due now once (in order) and returns a :class:`DeliveryReport`;
    ``run()`` loops until the outbox has nothing pending (or ``max_seconds``). ``now`` can be passed to drive
    the clock in tests. ``client`` defaults to an :class:`httpx.Client` with ``timeout``.
    """

    def __init__(
        self,
        store: Store | OperationalStore,
        *,
        secret: str | bytes,
        client: httpx.Client | None = None,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 600.0,
        timeout: float = 5.0,
        batch: int = 100,
    ) -> None:
        if not secret:
            from keymoments.exceptions import ConfigError

            raise ConfigError("The outbox needs a webhook secret to sign requests; set KM_WEBHOOK_SECRET or pass secret=.")
        self.store = store
        self.ops = ops_of(store)
        self.secret = secret
        self.client = client or httpx.Client(timeout=timeout)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.batch = batch

    def backoff(self, message_id: str, attempts: int) -> float:
        """Seconds to wait before the next try after ``attempts`` failed ones (deterministic jitter)."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return delay * (1 + 0.25 * unit_hash(message_id, attempts))

    def deliver_due(self, now: datetime | None = None) -> DeliveryReport:
        now = now or datetime.now(UTC)
        with self.ops.write() as con:  # claimed, so several deliverers can share one outbox
            due = self.ops.sql.claim_due(con, now, self.batch)
        report = DeliveryReport()
        for message_id, url, payload, attempts in due:
            self._deliver_one(message_id, url, payload.encode(), int(attempts or 0), now, report)
        return report

    def _deliver_one(self, message_id: str, url: str, body: bytes, attempts: int, now: datetime,
                     report: DeliveryReport) -> None:  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: message_id,
            SIGNATURE_HEADER: sign(self.secret, body),
            "User-Agent": "keymoments-outbox/1",
        }
        code: int | None = None
        try:
            resp = self.client.post(url, content=body, headers=headers)
            code = resp.status_code
            if 200 <= code < 300:
                with self.ops.write() as con:
                    self.ops.sql.mark_delivered(con, message_id, code, datetime.now(UTC))
                report.delivered += 1
                return
            error = f"HTTP {code}: {resp.text[:200]}"
            permanent = 400 <= code < 500 and code not in _RETRY_STATUS
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            permanent = False
        tries = attempts + 1
        if permanent or tries >= self.max_attempts:
            with self.ops.write() as con:
                self.ops.sql.mark_failed(con, message_id, status="dead", next_at=None, error=error, status_code=code)
            report.dead += 1
        else:
            next_at = now + timedelta(seconds=self.backoff(message_id, tries))
            with self.ops.write() as con:
                self.ops.sql.mark_failed(con, message_id, status="pending", next_at=next_at, error=error, status_code=code)
            report.retried += 1
        report.errors.append(f"{message_id}: {error}")

    def pending(self) -> int:
        with self.ops.read() as cur:
            return self.ops.sql.outbox_counts(cur).get("pending", 0)

    def run(self, *, max_seconds: float = 60.0, poll: float = 0.2) -> DeliveryReport:
        """Deliver until nothing is pending or ``max_seconds`` have passed; sleeps between passes."""
        total = DeliveryReport()
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            r = self.deliver_due()
            total.delivered += r.delivered
            total.retried += r.retried
            total.dead += r.dead
            total.errors += r.errors
            if self.pending() == 0:
                break
            if r.attempted == 0:
                time.sleep(poll)
        return total

    def close(self) -> None:
        self.client.close()
