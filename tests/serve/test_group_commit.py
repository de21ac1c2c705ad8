"""Concurrent event batches are written together, and each caller still gets its own answer or error."""

from __future__ import annotations

import threading
import time

import pytest

from keymoments.ingest.files import records_source
from keymoments.serve.group_commit import GroupCommit


def _batch(j: int, n: int, ts: str = "2024-03-01T08:00:00Z") -> list[dict]:
    return [{"customer_id": f"c{j}", "journey_id": f"j{j}", "ts": ts, "touchpoint": f"t{k}"} for k in range(n)]


def _wait_for(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.005)


def _run_queued(writer: GroupCommit, batches: list[list[dict]]) -> dict[int, object]:
    """Write batch 0 while the store is busy, queue the others behind it, then let the writer go."""
    out: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            out[i] = writer.write(records_source(batches[i]))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(batches))]
    with writer.store.session():  # the single writer is busy: batches queue up
        threads[0].start()
        _wait_for(lambda: writer._writing)
        for t in threads[1:]:
            t.start()
        _wait_for(lambda: len(writer._queue) == len(batches) - 1)
    for t in threads:
        t.join(timeout=30)
    return out


def test_waiting_batches_go_in_one_transaction_and_each_gets_its_own_answer(store):
    writer = GroupCommit(store)
    batches = [_batch(j, n=j + 1) for j in range(4)]
    out = _run_queued(writer, batches)
    assert (writer.groups, writer.batches) == (2, 4)  # batch 0 alone, then 1-3 together
    for i, answer in out.items():
        assert answer.result.rows == i + 1 and answer.result.accepted == i + 1  # type: ignore[attr-defined]
    assert sorted(a.result.batch_id for a in out.values()) == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert store.count("events") == 10 and store.count("batches") == 4
    steps = store.query("SELECT journey_id, max(step) AS n FROM events GROUP BY 1 ORDER BY 1")
    assert steps["n"].tolist() == [1, 2, 3, 4]


def test_a_failing_batch_fails_alone(store, fail_writes_of):
    writer = GroupCommit(store)
    fail_writes_of("c9")  # a write that fails (a full disk) for the batch with customer c9's events
    out = _run_queued(writer, [_batch(0, 1), _batch(1, 2), _batch(9, 2), _batch(3, 3)])
    assert isinstance(out[2], OSError) and "No space" in str(out[2])
    assert [out[i].result.accepted for i in (0, 1, 3)] == [1, 2, 3]  # type: ignore[attr-defined]
    assert store.count("events") == 6


def test_a_single_caller_is_written_at_once(store):
    writer = GroupCommit(store)
    first = writer.write(records_source(_batch(1, 3)))
    again = writer.write(records_source(_batch(1, 3)))
    assert (first.result.accepted, again.result.duplicates) == (3, 3)
    assert (writer.groups, writer.batches) == (2, 2)


@pytest.mark.parametrize("n", [2, 8])
def test_many_concurrent_callers(store, n):
    writer = GroupCommit(store)
    results: list = []
    threads = [threading.Thread(target=lambda j=j: results.append(writer.write(records_source(_batch(j, 50)))))
               for j in range(n)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.result.accepted for r in results) == [50] * n
    assert store.count("events") == 50 * n and writer.batches == n


def test_docstring_example_runs():
    import doctest

    import keymoments.serve.group_commit as module

    assert doctest.testmod(module).failed == 0
