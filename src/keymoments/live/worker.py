"""``keymoments worker``: decide on events from NATS JetStream, many processes, nothing lost or done twice.

One worker process takes partitions of the stream (``SUBJECT.<p>``; see :mod:`keymoments.live.broker`), each
with a JetStream durable pull consumer (``km-worker-<p>``) and its own pure engine
(:class:`keymoments.act.engine.Engine`), and for each batch of messages:

1. evaluates the events in stream order (one customer's events are in one partition, so in order);
2. commits, in **one PostgreSQL transaction** (with the batches of the worker's other partitions that are
   ready: see *Group commit*), the decisions with their cases, ledger entries and outbox
   messages (:meth:`keymoments.act.runner.PlaybookRunner.fire`, the same rules as everywhere), the events'
   ids (``processed_events``) and the partition's cursor (the last stream sequence done); at the commit,
   PostgreSQL announces the cursors on the ``km_commits`` channel (``pg_tables.notify_commit``). The transaction runs
   in psycopg's pipeline mode: every read and lock of the batch (the pools' rows, the customers' limits, the
   touched cases) travels in one round trip (``pg_tables.fire_reads``), every write and the commit in one more;
   a batch that neither spends nor updates a case needs no read at all (its rows are idempotent inserts);
3. only then acknowledges the messages.

Fetching asks for one message (waiting at most half a second) and then for exactly as many as the stream says
are pending for this consumer, so a lone event is never held for a batch to fill.

**Group commit.** Fetching never waits for a commit. Each partition adds what it fetches to its next batch;
one committer per worker takes every partition's waiting batch into one transaction whenever the previous
one is done, then acknowledges their messages. So an
event waits for at most the transaction in flight and its own, and under load the worker writes fuller,
fewer transactions instead of one per partition at a time (the commits, and the client and server time per
statement, were what held the latency's tail at 1,000 events/s on 2 cores: ``bench/bench_live.py``).
``report.timing`` sums the seconds per step (``bench/profile_worker.py`` prints them).

So a crash before the commit loses nothing (the messages are redelivered), and a crash between the commit and
the acknowledgements duplicates nothing: a redelivered message at or below the cursor is acknowledged and
skipped, an event id seen before is skipped, and decision, case, ledger and message ids derive from the
decision id (playbook + trigger event), which is unique in the database.

**Order and state across restarts.** When a worker takes a partition it rebuilds that partition's engine by
replaying the stream's messages up to the cursor (decisions discarded: they are committed already), so the
state is the one the previous owner had, and the same events give the same decisions. Messages the previous
owner had received but not acknowledged (it died) are then processed straight from the stream, in order, up to
what the durable consumer had delivered; only after that does the worker pull new messages from the durable
consumer, which hands them out in stream order. JetStream redelivers the dead owner's messages later; they are
at or below the cursor by then and are only acknowledged.

**One owner per partition.** A worker holds a PostgreSQL session advisory lock per partition it works; the
lock goes when its process or connection does (SIGKILL included), and a worker waiting for that partition
takes it over within a second. ``--partition`` spreads partitions over workers; without it a worker takes
every partition it can get and stands by for the rest.

**Stopping.** SIGTERM (or SIGINT) lets the batch in flight commit and be acknowledged, marks the worker
stopped, and exits 0. A partition that cannot finish its batch within :data:`STOP_GRACE_S` (30 s) is left
unacknowledged, for JetStream to deliver again to the next owner; the worker still stops, names it in
``WorkerReport.unfinished`` and exits 1.

Proactive triggers (absence, quiet sign-off) fire at event time as the partition's clock moves with its
events, so a replay decides the same; the engine's state lives in memory and is rebuilt from the stream, so a
stream's retention bounds how far back a rebuild can reach.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from keymoments.act.engine import Engine, event_tuple
from keymoments.act.models import PlaybookFile
from keymoments.act.runner import PlaybookRunner
from keymoments.events import rating_to_valence
from keymoments.exceptions import ConfigError, InvalidEventError, KeymomentsError
from keymoments.live.broker import BrokerAddress, StreamConsumer

__all__ = ["PartitionState", "Worker", "WorkerReport"]

log = logging.getLogger("keymoments.worker")
#: how long a stop (SIGTERM) waits for a partition to finish its batch in flight (:attr:`Worker.stop_grace_s`)
STOP_GRACE_S = 30.0

_REPLAY_BATCH = 2_000
_REPLAY_PATIENCE_S = 60.0  # how long a rebuild waits for the stream's messages up to its target


@dataclass
class PartitionState:
    """One partition's engine, its cursor (last stream sequence committed) and the event ids it has seen."""

    partition: int
    engine: Engine
    cursor: int = 0
    seen: set[str] = field(default_factory=set)
    replayed: int = 0
    processed: int = 0
    failed: Exception | None = None  # a transaction with this partition's batch failed: rebuild


@dataclass
class WorkerReport:
    """What a worker did before it stopped."""

    worker_id: str
    partitions: list[int] = field(default_factory=list)
    events: int = 0
    decisions: int = 0
    skipped: int = 0
    rejected: int = 0
    restarts: int = 0
    unfinished: list[int] = field(default_factory=list)  # partitions still working at the stop's grace end
    last_event_id: str | None = None
    last_seq: int | None = None
    timing: Counter = field(default_factory=Counter)  # seconds per step (fetch, engine, db, ack); counts of
    # batches (a partition's messages committed together), transactions (a worker's, each of one or more
    # batches) and retries

    def to_dict(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "partitions": self.partitions, "events": self.events,
                "decisions": self.decisions, "skipped": self.skipped, "rejected": self.rejected,
                "restarts": self.restarts, "unfinished": self.unfinished, "batches": int(self.timing["batches"]),
                "retries": int(self.timing["retries"]), "transactions": int(self.timing["transactions"]),
                "seconds": {k: round(v, 3) for k, v in self.timing.items()
                            if k not in ("batches", "retries", "transactions")}}  # fmt: skip


def _tuple(ev: dict[str, Any], seq: int) -> tuple:
    """An engine tuple from a stream message's event (the rating's valence as the store would compute it)."""
    rating, scale = ev.get("rating"), ev.get("rating_scale")
    val = None
    if rating is not None and scale:
        try:
            val = rating_to_valence(float(rating), str(scale))
        except (InvalidEventError, ValueError):
            val = None
    return event_tuple({**ev, "valence": val}, seq=seq)


class Worker(StreamConsumer):
    """Consume partitions of an event stream and fire playbooks on PostgreSQL.

    ``ops``: the PostgreSQL operational store. ``partitions``: how many the stream has; ``claim``: the ones
    this worker may take (default: all). ``batch``: messages per transaction. ``ack_wait``: seconds JetStream
    waits for an acknowledgement before it redelivers. ``on_commit(partition, decisions)`` is called after each
    commit (tests and the benchmark time decisions with it).
    """

    def __init__(self, ops: Any, file: PlaybookFile, address: BrokerAddress, *, partitions: int,
                 claim: Sequence[int] | None = None, batch: int = 256, ack_wait: float = 30.0,
                 worker_id: str | None = None, seed: int | None = None, source: str | None = None,
                 on_commit: Callable[[int, list], None] | None = None) -> None:  # fmt: skip
        if getattr(ops, "kind", None) != "postgresql":
            raise ConfigError(
                "keymoments worker needs the PostgreSQL operational store that all workers and API processes "
                "share: set KM_DATABASE_URL=postgresql://…"
            )
        self.ops = ops
        self.sql = ops.sql
        self.file = file
        self.address = address
        self.partitions = partitions
        self.claim = sorted(set(claim)) if claim is not None else list(range(partitions))
        bad = [p for p in self.claim if not 0 <= p < partitions]
        if bad:
            raise ConfigError(f"Partitions {bad} do not exist; the stream has partitions 0-{partitions - 1}.")
        self.batch = batch
        self.ack_wait = ack_wait
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.runner = PlaybookRunner(None, file, ops=ops, seed=seed, source=source or "worker")
        self.on_commit = on_commit
        #: seconds a stop waits for the partitions' batches in flight before leaving them to redelivery
        self.stop_grace_s = STOP_GRACE_S
        self.report = WorkerReport(self.worker_id)
        self._pending: list[_Entry] = []
        self._committer: asyncio.Future | None = None
        from psycopg import errors as pg

        # what fails an optimistic batch: money taken meanwhile, a lock order crossed
        self._retry_errors = (pg.CheckViolation, pg.DeadlockDetected, pg.SerializationFailure)
        self._owned: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def run(self, *, install_signals: bool = False) -> WorkerReport:
        """Work until :meth:`request_stop` (or SIGTERM/SIGINT with ``install_signals``)."""
        nc, js = await self._start(install_signals=install_signals)
        assert self._stop is not None
        now = datetime.now(UTC)
        with self.ops.write() as con:
            self.sql.register_worker(con, self.worker_id, host=socket.gethostname(), pid=os.getpid(),
                                     stream=self.address.stream, partitions="", now=now)  # fmt: skip
        tasks: dict[int, asyncio.Task] = {}
        with self.ops.session() as locks:
            try:
                while not self._stop.is_set():
                    for p in self.claim:
                        if p not in tasks and self._try_lock(locks, p):
                            tasks[p] = asyncio.create_task(self._partition(js, p), name=f"km-partition-{p}")
                            self._owned.add(p)
                            self.report.partitions = sorted(self._owned)
                            with self.ops.write() as con:
                                self.sql.heartbeat_worker(con, self.worker_id, datetime.now(UTC),
                                                          partitions=",".join(map(str, sorted(self._owned))))  # fmt: skip
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                    except TimeoutError:
                        await asyncio.to_thread(self._heartbeat)
                if tasks:  # each partition finishes its batch in flight; one that cannot is left to JetStream
                    done, late = await asyncio.wait(list(tasks.values()), timeout=self.stop_grace_s)
                    for t in done:
                        if not t.cancelled():
                            t.result()  # an error a partition did not recover from is raised here, as before
                    if late:
                        self.report.unfinished = sorted(p for p, t in tasks.items() if t in late)
                        log.error("partitions %s did not finish their batch within %.0f s of the stop; leaving it "
                                  "unacknowledged: JetStream delivers it again to the next owner",
                                  self.report.unfinished, self.stop_grace_s)  # fmt: skip
            finally:
                for t in tasks.values():
                    t.cancel()
                self._heartbeat(stopped=True)
                await nc.drain()
        return self.report

    def _heartbeat(self, *, stopped: bool = False) -> None:
        """Once a second: alive, and the events processed so far with the last one (for /health)."""
        r = self.report
        with self.ops.write() as con:
            self.sql.heartbeat_worker(con, self.worker_id, datetime.now(UTC), stopped=stopped, events=r.events,
                                      last_event_id=r.last_event_id, last_seq=r.last_seq)  # fmt: skip

    def _try_lock(self, con: Any, partition: int) -> bool:
        key = f"km-partition:{self.address.stream}:{partition}"
        row = con.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key]).fetchone()
        return bool(row and row[0])

    # -- one partition -------------------------------------------------------------------------------------------
    async def _partition(self, js: Any, p: int) -> None:
        """Own partition ``p`` until stopped; on any error, rebuild its state and go on."""
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self._work(js, p)
                return
            except (KeymomentsError, OSError, RuntimeError, ValueError, TimeoutError) as exc:
                self.report.restarts += 1
                log.warning("partition %s: %s; rebuilding its state from the stream", p, exc)
            except Exception as exc:  # noqa: BLE001 - psycopg and nats errors: same recovery
                self.report.restarts += 1
                log.warning("partition %s: %s: %s; rebuilding its state from the stream", p, type(exc).__name__, exc)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def _work(self, js: Any, p: int) -> None:
        assert self._stop is not None
        sub = await self._durable(js, self.address.partition_subject(p), self.address.durable(p), ack_wait=self.ack_wait,
                                  max_ack_pending=max(1000, self.batch * 4))  # fmt: skip
        entry: _Entry | None = None
        try:
            st = await self._open(js, p, sub)
            timing = self.report.timing
            # fetching never waits for a commit: what arrives while the worker's transaction runs joins the
            # partition's next batch, which the committer takes when that transaction is done; after a stop
            # request the fetch in flight is the last, and its messages are processed too
            while True:
                t0 = time.perf_counter()
                msgs = await self._fetch(sub)
                timing["fetch"] += time.perf_counter() - t0
                if st.failed is not None:
                    raise st.failed
                if msgs:
                    if entry is None or entry.taken:
                        entry = _Entry(st, asyncio.get_running_loop().create_future())
                        self._pending.append(entry)
                    entry.msgs += msgs
                    if self._committer is None or self._committer.done():
                        self._committer = asyncio.ensure_future(self._drain())
                    if len(entry.msgs) >= self.batch:
                        await asyncio.shield(entry.done)  # a full batch: fetch more once it is committed
                if self._stop.is_set():
                    break
            if entry is not None:
                await asyncio.shield(entry.done)  # the last batch committed and acknowledged before leaving
        finally:
            await sub.unsubscribe()

    async def _fetch(self, sub: Any) -> list[Any]:
        """The next messages: wait (at most half a second) for one, then take those the stream already holds
        for this consumer (the first message says how many: ``num_pending``), never waiting for more.

        A single ``fetch(batch)`` would hold a lingering pull until the batch is full or it expires, which at a
        low rate delays every decision by the whole expiry; asking only for what is pending returns at once."""
        try:
            msgs = await sub.fetch(1, timeout=0.5)
        except TimeoutError:
            return []
        pending = min(self.batch - 1, int(msgs[-1].metadata.num_pending or 0))
        if pending > 0:
            try:
                msgs += await sub.fetch(pending, timeout=0.05)
            except TimeoutError:
                pass
        return msgs

    async def _open(self, js: Any, p: int, sub: Any) -> PartitionState:
        """Rebuild the partition's engine from the stream up to its cursor, then process (with effects) what a
        previous owner received but never acknowledged, so that the durable consumer only has new messages."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        with self.ops.read() as con:
            cursor = self.sql.partition_cursor(con, self.address.stream, p)
        delivered = int((await sub.consumer_info()).delivered.stream_seq or 0)
        st = PartitionState(p, Engine(self.file, seed=self.runner.seed, simulate_budgets=False), cursor=cursor)
        target = max(cursor, delivered)
        if target == 0:
            return st
        replay = await js.pull_subscribe(
            self.address.partition_subject(p), stream=self.address.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0,
                                  mem_storage=True),
        )  # fmt: skip
        try:
            done = False
            deadline = time.monotonic() + _REPLAY_PATIENCE_S
            while not done:
                try:
                    msgs = await replay.fetch(_REPLAY_BATCH, timeout=2.0)
                except TimeoutError:
                    # the messages up to the target exist: a busy server can be slow to hand them over, and a
                    # rebuild that stopped short would decide differently from then on; wait for them
                    if time.monotonic() < deadline:
                        continue
                    log.warning("partition %s: the stream gave back nothing for %.0f s before sequence %s; going on "
                                "from what was rebuilt", p, _REPLAY_PATIENCE_S, target)  # fmt: skip
                    break
                rebuild, fresh = [], []
                for m in msgs:
                    seq = m.metadata.sequence.stream
                    if seq > target:
                        done = True
                        break
                    (rebuild if seq <= cursor else fresh).append((seq, m.data))
                    if seq == target or m.metadata.num_pending == 0:
                        done = True
                        break
                self._replay(st, rebuild)
                if fresh:  # received by a previous owner, never acknowledged: processed here, in order
                    await asyncio.to_thread(self._commit, st, fresh)
        finally:
            await replay.unsubscribe()
        return st

    def _events(self, st: PartitionState, items: list[tuple[int, bytes]]) -> list[tuple[int, dict[str, Any] | None]]:
        out = []
        for seq, data in items:
            try:
                ev = orjson.loads(data)
                if not isinstance(ev, dict) or not ev.get("event_id") or not ev.get("customer_id") or not ev.get("ts"):
                    raise ValueError("not an event")
            except ValueError:
                ev = None
            out.append((seq, ev))
        return out

    def _replay(self, st: PartitionState, items: list[tuple[int, bytes]]) -> None:
        """Evaluate already-committed events to rebuild state (their decisions are committed already)."""
        for _seq, ev in self._events(st, items):
            if ev is None or ev["event_id"] in st.seen:
                continue
            st.seen.add(ev["event_id"])
            try:
                st.engine.evaluate(_tuple(ev, _seq))
            except (InvalidEventError, ValueError, TypeError, KeyError):
                continue
            st.replayed += 1

    # -- group commit --------------------------------------------------------------------------------------------
    async def _drain(self) -> None:
        """Commit the partitions' waiting batches, all of them in one transaction at a time, then acknowledge
        their messages.

        A worker's partitions share one transaction at a time: a batch that arrives while one commits waits for
        it and goes with the others that arrived meanwhile, so the same rows go in fewer, fuller transactions (each costs a commit, and client and server time per statement whatever its rows: at
        1,000 events/s on 2 cores that was what held the latency's tail). A batch that finds the worker idle
        commits at once. Should a transaction fail, every partition in it fails (and rebuilds its state from
        the stream); their messages are not acknowledged, so JetStream delivers them again."""
        timing = self.report.timing
        while self._pending:
            for e in self._pending:  # queued behind a transaction that failed its partition: fail it too, so
                if e.st.failed is not None:  # that the partition's loop, which may wait on it, rebuilds
                    self._fail(e, e.st.failed)
            group = [e for e in self._pending if e.st.failed is None]
            self._pending = []
            for e in group:
                e.taken = True
            try:
                await asyncio.to_thread(self._commit_group, [(e.st, [(m.metadata.sequence.stream, m.data) for m in e.msgs]) for e in group])
            except BaseException as exc:  # noqa: BLE001 - handed to every batch's partition, which recovers
                for e in group:
                    self._fail(e, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            t2 = time.perf_counter()
            for e in group:
                try:
                    for m in e.msgs:
                        await m.ack()
                except Exception as exc:  # noqa: BLE001 - committed: JetStream's redelivery is only acknowledged
                    self._fail(e, exc)
                    continue
                if not e.done.done():
                    e.done.set_result(None)
                timing["batches"] += 1
            timing["ack"] += time.perf_counter() - t2

    @staticmethod
    def _fail(e: _Entry, exc: BaseException) -> None:
        """The batch's partition failed: its loop raises ``exc`` and rebuilds from the stream."""
        e.st.failed = exc if isinstance(exc, Exception) else RuntimeError("the commit was cancelled")
        if not e.done.done():
            e.done.set_exception(e.st.failed)
            e.done.exception()  # retrieved: the partition's loop raises st.failed itself

    def _commit(self, st: PartitionState, items: list[tuple[int, bytes]]) -> None:
        """Decide on one partition's batch and commit it (a rebuild's unacknowledged messages)."""
        self._commit_group([(st, items)])

    # -- the step ------------------------------------------------------------------------------------------------
    def _evaluate(self, st: PartitionState, items: list[tuple[int, bytes]], now: datetime) -> _Batch:
        """Run a partition's engine over a batch (in stream order); what the transaction will write."""
        b = _Batch(st, last_seq=st.cursor)
        for seq, ev in self._events(st, items):
            if seq <= st.cursor:
                b.skipped += 1  # a redelivery of a committed message
                continue
            b.last_seq = max(b.last_seq, seq)
            if ev is None:
                b.rejected += 1
                log.warning("partition %s: message %s is not an event; skipped", st.partition, seq)
                continue
            if ev["event_id"] in st.seen:
                b.skipped += 1  # the same event published twice
                continue
            st.seen.add(ev["event_id"])
            try:
                out = st.engine.evaluate(_tuple(ev, seq))
            except (InvalidEventError, ValueError, TypeError, KeyError) as exc:
                b.rejected += 1
                log.warning("partition %s: event %s: %s; skipped", st.partition, ev["event_id"], exc)
                continue
            b.decisions.extend(out)
            b.processed.append((ev["event_id"], self.address.stream, st.partition, seq, ev["customer_id"], now))
            b.last_ev = ev
        return b

    def _commit_group(self, group: list[tuple[PartitionState, list[tuple[int, bytes]]]]) -> None:
        """Decide on the batches and commit their effects, event ids and cursors in one transaction."""
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        batches = [self._evaluate(st, items, now) for st, items in group]
        for b in batches:
            self.report.skipped += b.skipped
            self.report.rejected += b.rejected
        t1 = time.perf_counter()
        self.report.timing["engine"] += t1 - t0
        todo = [b for b in batches if b.last_seq != b.st.cursor]
        if not todo:
            return
        decisions = [d for b in todo for d in b.decisions]
        # first with the pools read optimistically (their rows locked only by the UPDATE, for the commit); if
        # others took the money meanwhile (the CHECK fails) or a lock order crossed an agent's, once more with
        # every lock taken first, the decisions as the engine made them
        spending = [(d, d.budget_blocked, d.cost_cents, dict(d.detail), d.status, d.needs_approval) for d in decisions
                    if any(a["type"] == "compensate" for a in d.actions)]  # fire() changes these  # fmt: skip
        for optimistic in (True, False):
            try:
                self._record(todo, decisions, now, lock_pools=not optimistic)
                break
            except self._retry_errors as exc:
                if not optimistic:
                    raise
                self.report.timing["retries"] += 1
                log.info("partitions %s: %s; the batch again with the pools locked first",
                         [b.st.partition for b in todo], exc)  # fmt: skip
                for d, blocked, cost, detail, status, approval in spending:
                    d.budget_blocked, d.cost_cents, d.detail, d.status, d.needs_approval = (
                        blocked, cost, detail, status, approval)  # fmt: skip
        self.report.timing["db"] += time.perf_counter() - t1
        self.report.timing["transactions"] += 1
        for b in todo:
            st = b.st
            st.cursor = b.last_seq
            st.processed += len(b.processed)
            self.report.events += len(b.processed)
            if b.last_ev is not None:
                self.report.last_event_id, self.report.last_seq = b.last_ev["event_id"], b.last_seq
            self.report.decisions += len(b.decisions)
            if self.on_commit is not None:
                self.on_commit(st.partition, b.decisions)

    def _record(self, todo: list[_Batch], decisions: list, now: datetime, *, lock_pools: bool) -> None:
        """One transaction: the batches' effects, their event ids and their partitions' cursors; at its commit,
        PostgreSQL tells listeners of ``km_commits`` which cursors moved (``pg_tables.notify_commit``)."""
        with self.ops.write(pipeline=True) as raw:  # reads cost a round trip each, writes and commit one in all
            con = self.sql.DeferredInserts(raw)  # and the inserts of the seven append-only tables one statement
            self.sql.insert_rows(con, "processed_events", self.sql.PROCESSED_COLS,
                                 [r for b in todo for r in b.processed], ignore=True)  # fmt: skip
            if decisions:
                self.runner.fire(decisions, con=con, blind=True, lock_pools=lock_pools)
            for b in todo:
                ev = b.last_ev
                self.sql.advance_partition(
                    con, self.address.stream, b.st.partition, last_seq=b.last_seq,
                    last_event_id=ev["event_id"] if ev else None,
                    last_event_ts=datetime.fromisoformat(ev["ts"]) if ev else None, added=len(b.processed),
                    worker_id=self.worker_id, now=now,
                )  # fmt: skip
            con.flush()
            self.sql.notify_commit(con, self.address.stream, {b.st.partition: b.last_seq for b in todo})


@dataclass
class _Entry:
    """A partition's batch waiting for the worker's next transaction (it grows until the committer takes it)."""

    st: PartitionState
    done: asyncio.Future
    msgs: list[Any] = field(default_factory=list)
    taken: bool = False


@dataclass
class _Batch:
    """What one partition's batch commits: its decisions, its events' rows and the cursor it moves to."""

    st: PartitionState
    last_seq: int
    decisions: list = field(default_factory=list)
    processed: list[tuple] = field(default_factory=list)
    last_ev: dict[str, Any] | None = None
    skipped: int = 0
    rejected: int = 0


def run_worker(worker: Worker) -> WorkerReport:
    """Run a worker in this thread until SIGTERM/SIGINT; returns its report."""
    t0 = time.monotonic()
    # a full collection walks every object the process holds: with the libraries a worker imports that took
    # 130-150 ms on the 2-core box, stalling every partition twice a minute (the latency's tail at 1,000
    # events/s); what exists now (imports, connections, playbooks) lives as long as the worker
    gc.collect()
    gc.freeze()
    report = asyncio.run(worker.run(install_signals=True))
    log.info("worker %s stopped after %.1f s", worker.worker_id, time.monotonic() - t0)
    return report
