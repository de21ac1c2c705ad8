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

__all__ = ["GroupCommit", "SparkEventsWriter"]


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


class SparkEventsWriter:
    """The events writer of a server whose events are on Spark: each batch is validated as the embedded store
    validates it (its answer, rejects included, is the embedded writer's), its text scored, and then appended
    to the store's Parquet dataset by Spark (:func:`keymoments.engine.stage_to_spark`), one batch at a time:
    an append rewrites the date partitions it touches, so appends do not overlap."""

    def __init__(self, store: Store, *, score: bool = True, scorer: str = "auto", journey: object = None) -> None:
        self.store = store
        self.score, self.scorer, self.journey = score, scorer, journey
        self.groups = self.batches = 0
        self._lock = threading.Lock()

    def write(self, src: Source) -> BatchAnswer:
        """Append one batch (an in-memory Source) to the dataset and return its answer."""
        from keymoments.engine import stage_to_spark
        from keymoments.exceptions import ConfigError

        table = getattr(self.store, "events_table", None)
        if table:
            raise ConfigError(
                f"This server reads its events from the Spark table {table!r} (--events-table), which keymoments "
                "does not write: POST /api/v1/events appends to the store's own Parquet dataset only. Load the "
                "batch into that table with your own pipeline, or serve the dataset (--events PATH). Nothing was written."
            )
        with self._lock:
            answer = stage_to_spark(self.store, lambda staged: ingest_batches(staged, [src])[0], score=self.score,
                                    scorer=self.scorer, journey=self.journey)  # fmt: skip
            self.groups += 1
            self.batches += 1
        return answer


def _rows(src: Source) -> int:
    return src.table.num_rows if src.table is not None else 0
