"""The worker's committer alone (no services): a batch queued behind a transaction that failed its partition is
failed too, never dropped, so the partition's loop that waits on it rebuilds instead of waiting for ever.

Found by the chaos test under load: partition P had batch 1 in the failing transaction and a full batch 2 queued
(its loop waiting for batch 2's commit); the committer skipped batch 2 because P had failed, and P's loop, its
advisory lock and every event of P waited until the worker was killed (it did not stop on SIGTERM either).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from keymoments.live.worker import PartitionState, Worker, WorkerReport, _Entry


class _Message:
    class metadata:  # noqa: N801 - the shape of a nats message's metadata
        class sequence:  # noqa: N801
            stream = 1

    data = b"{}"

    async def ack(self) -> None:
        return None


def _committer(commit) -> Worker:  # noqa: ANN001
    worker = object.__new__(Worker)  # only what _drain touches
    worker.report = WorkerReport("w-test")
    worker._pending = []
    worker._commit_group = commit
    return worker


def test_a_batch_queued_behind_a_failed_transaction_fails_too():
    entered, release = threading.Event(), threading.Event()

    def commit(groups):  # noqa: ANN001, ANN202
        entered.set()
        release.wait(5)
        raise RuntimeError("deadlock detected")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        worker = _committer(commit)
        st = PartitionState(0, engine=None)
        first = _Entry(st, loop.create_future(), msgs=[_Message()])
        worker._pending.append(first)
        drain = asyncio.ensure_future(worker._drain())
        await asyncio.to_thread(entered.wait, 5)
        second = _Entry(st, loop.create_future(), msgs=[_Message()])  # fetched while the transaction runs
        worker._pending.append(second)
        release.set()
        await asyncio.wait_for(drain, 5)
        assert first.done.done() and second.done.done()  # both answered: the partition's loop wakes and rebuilds
        with pytest.raises(RuntimeError, match="deadlock detected"):
            second.done.result()
        assert worker._pending == []

    asyncio.run(scenario())


def test_other_partitions_in_the_next_transaction_still_commit():
    calls: list[list[int]] = []

    def commit(groups):  # noqa: ANN001, ANN202
        calls.append([st.partition for st, _ in groups])
        if len(calls) == 1:
            raise RuntimeError("serialization failure")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        worker = _committer(commit)
        bad, good = PartitionState(0, engine=None), PartitionState(1, engine=None)
        worker._pending.append(_Entry(bad, loop.create_future(), msgs=[_Message()]))
        await worker._drain()
        assert bad.failed is not None
        late_bad = _Entry(bad, loop.create_future(), msgs=[_Message()])
        ok = _Entry(good, loop.create_future(), msgs=[_Message()])
        worker._pending += [late_bad, ok]
        await worker._drain()
        assert calls == [[0], [1]]  # the failed partition's batch is not committed; the other one is
        assert ok.done.result() is None and late_bad.done.exception() is not None

    asyncio.run(scenario())
