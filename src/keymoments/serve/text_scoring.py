"""Text that arrives through the API is scored in the background, shortly after its batch commits.

``POST /events`` answers as soon as its batch is written; the events' text (valence fused with the rating,
emotions) and, for events sent without a touchpoint, the touchpoint are filled in by one background thread,
the same way ``keymoments ingest`` does it (:func:`keymoments.score.store.score_store` then
:func:`~keymoments.score.store.tag_store`). The thread wakes when a batch with new events commits and waits
until no batch has come for ``delay`` seconds (0.5), or at most ``max_wait`` (10) since the first unscored one,
then scores whatever is unscored: a burst of batches is written at full speed and scored together after it (one
model call on many texts costs less per text than many small ones), while a steady stream is still scored
within seconds. A batch that lands during a round is picked up by the next. Analyses read scores as they are: a
text scored a second later changes the next answer.

A failure (the text model cannot load, say) is kept in :attr:`BackgroundScorer.error` and reported by
``/health``; the events stay unscored, and ``keymoments score`` can score them later.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from keymoments.store.store import Store

__all__ = ["BackgroundScorer"]

log = logging.getLogger("keymoments.serve")


class BackgroundScorer:
    """One daemon thread that scores and tags new text after :meth:`poke` (see the module)."""

    def __init__(
        self, store: Store, *, model: str = "auto", journey: Any = None, delay: float = 0.5, max_wait: float = 10.0
    ) -> None:
        self.store = store
        self.model = model
        self.journey = journey
        self.delay = delay
        self.max_wait = max_wait
        self._last_poke = 0.0
        self.scored = 0  # texts scored and events tagged since start
        self.tagged = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._pokes = 0  # how many pokes so far: the thread is idle once a round started after the last one ends
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundScorer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="km-text-scoring")
            self._thread.start()
        return self

    def poke(self) -> None:
        """New events were committed: score their text soon."""
        with self._lock:
            self._pokes += 1
            self._last_poke = time.monotonic()
            self._idle.clear()
            self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything poked so far is scored (True), or the timeout passes (False)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread (after the round in progress, if any; text not scored yet stays for later)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        return {"scored": self.scored, "tagged": self.tagged, "busy": not self._idle.is_set(), "error": self.error}

    def _run(self) -> None:
        from keymoments.score.store import score_store, tag_store

        while True:
            self._wake.wait()
            if self._stop:
                return
            first = time.monotonic()
            while not self._stop:  # let a burst of batches land, then score them together
                quiet = self.delay - (time.monotonic() - self._last_poke)
                if quiet <= 0 or time.monotonic() - first >= self.max_wait:
                    break
                time.sleep(min(quiet, self.max_wait - (time.monotonic() - first)))
            if self._stop:  # shutting down: what is left is scored at the next start, or by `keymoments score`
                return
            with self._lock:
                self._wake.clear()
                seen = self._pokes
            try:
                self.scored += score_store(self.store, scorer=self.model)
                self.tagged += tag_store(self.store, self.journey)
                self.error = None
            except Exception as exc:  # noqa: BLE001 - a scoring failure must not take the server down
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.exception("scoring the text of new events failed; they stay unscored until `keymoments score`")
            with self._lock:
                if self._pokes == seen:  # nothing committed since this round began
                    self._idle.set()
