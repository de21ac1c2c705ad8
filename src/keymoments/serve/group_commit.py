"""Group commit: event batches from concurrent requests are written together, each answered on its own.

The store has one writer, so concurrent ``POST /events`` requests queue for it anyway. Whichever request
finds the writer free takes every batch waiting behind it that has the same shape (the same fields and
options) and writes them in one transaction (:func:`keymoments.store.writer.ingest_batches`), then wakes their
requests. Each request gets exactly its own answer, the same as if the batches had been written one after
the other in the order they arrived: its own batch id, accepted / duplicate / rejected counts and rejects.

Atomicity is per request, as before: all of a batch's good rows are written, or none of them. A batch commits
together with the rest of its group, and no request is answered before its group has committed. If a group
fails as a whole, its batches are written again one by one, so only the batch at fault gets the error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from keymoments.ingest.source import Source
from keymoments.store.store import Store
from keymoments.store.writer import BatchAnswer, batch_shape, ingest_batches

__all__ = ["GroupCommit"]


@dataclass
class _Waiting:
    src: Source
    answer: BatchAnswer | None = None
    error: Exception | None = None
    done: bool = False


class GroupCommit:
    """Writes event batches for concurrent callers, several to a transaction.

    ``max_rows`` bounds a group (a batch bigger than that is written alone).

    >>> from keymoments.ingest.files import records_source
    >>> writer = GroupCommit(Store(":memory:"))
    >>> ev = {"customer_id": "c1", "ts": "2025-01-01T10:00:00Z", "touchpoint": "booking"}
    >>> writer.write(records_source([ev])).result.accepted
    1
    """

    def __init__(self, store: Store, *, max_rows: int = 100_000) -> None:
        self.store = store
        self.max_rows = max_rows
        self.groups = 0  # transactions written, and batches in them: batches / groups is the grouping achieved
        self.batches = 0
        self._cv = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False

    def write(self, src: Source) -> BatchAnswer:
        """Write one batch (an in-memory Source) and return its answer; raises the batch's own error."""
        me = _Waiting(src)
        with self._cv:
            self._queue.append(me)
            while not me.done:
                if self._writing:
                    self._cv.wait()
                    continue
                group = self._take()
                self._writing = True
                self._cv.release()
                try:
                    self._write(group)
                finally:
                    self._cv.acquire()
                    self._writing = False
                    self._cv.notify_all()
        if me.error is not None:
            raise me.error
        assert me.answer is not None
        return me.answer

    def _take(self) -> list[_Waiting]:
        """The first waiting batch and those right behind it of the same shape, up to ``max_rows`` rows."""
        first = self._queue[0]
        shape, rows, n = batch_shape(first.src), _rows(first.src), 1
        while n < len(self._queue):
            nxt = self._queue[n]
            if batch_shape(nxt.src) != shape or rows + _rows(nxt.src) > self.max_rows:
                break
            rows += _rows(nxt.src)
            n += 1
        group, self._queue[:n] = self._queue[:n], []
        return group

    def _write(self, group: list[_Waiting]) -> None:
        try:
            try:
                answers = ingest_batches(self.store, [w.src for w in group])
            except Exception as exc:
                if len(group) == 1:
                    group[0].error = exc
                    return
                for w in group:  # the group failed: alone, only the batch at fault fails
                    try:
                        w.answer = ingest_batches(self.store, [w.src])[0]
                    except Exception as own:  # noqa: BLE001 - handed to the batch's own request
                        w.error = own
                return
            for w, answer in zip(group, answers, strict=True):
                w.answer = answer
            self.groups += 1
            self.batches += len(group)
        finally:
            for w in group:
                w.done = True


def _rows(src: Source) -> int:
    return src.table.num_rows if src.table is not None else 0
