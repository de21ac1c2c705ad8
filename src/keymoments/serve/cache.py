"""Cache analysis results per store state, so repeated reads of an unchanged store cost a dictionary lookup.

A result is keyed by (analysis, parameters) and stamped with the store's *data version*: the last ingest
batch, the number of scored texts and of tag corrections (anything that changes what an analysis sees). When the version moves
on, the next read recomputes. Concurrent readers of the same missing key wait for one computation
(single flight) instead of each fitting the same model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from keymoments.store.store import Store

__all__ = ["ResultCache", "data_version"]


def data_version(store: Store) -> tuple[int, ...]:
    """A cheap fingerprint of the store's analysable state (with events on Spark, their files' as well: any
    process may append to the dataset or table)."""
    cur = store.cursor()
    try:
        row = cur.execute(
            "SELECT (SELECT coalesce(max(batch_id), 0) FROM batches), (SELECT count(*) FROM batches), "
            "(SELECT count(*) FROM text_scores), (SELECT count(*) FROM events WHERE NOT text_scored), "
            "(SELECT count(*) FROM text_corrections)"  # a correction re-tags texts: their journeys change
        ).fetchone()
    finally:
        cur.close()
    version = tuple(int(x) for x in row) if row else (0,)
    events_version = getattr(store, "events_version", None)  # a SparkStore's events are not in the file
    return version + tuple(events_version()) if events_version is not None else version


class ResultCache:
    """A small LRU of computed results, valid for one data version each."""

    def __init__(self, store: Store, size: int = 64) -> None:
        self.store = store
        self.size = size
        self._items: OrderedDict[Hashable, tuple[tuple[int, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        version = data_version(self.store)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] == version:
                self._items.move_to_end(key)
                self.hits += 1
                return hit[1]
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:  # another thread may have computed it while we waited
                hit = self._items.get(key)
                if hit is not None and hit[0] == version:
                    self.hits += 1
                    return hit[1]
            value = compute()
            self.misses += 1
            with self._lock:
                self._items[key] = (version, value)
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._flights.pop(key, None)
            return value
