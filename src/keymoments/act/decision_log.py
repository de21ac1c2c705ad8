"""The decisions of a back-test, held in bounded memory whatever their number.

A back-test over tens of millions of events makes millions of decisions; as Python objects they take about a
kilobyte each, so a list of them grows with the events. :class:`DecisionLog` is an append-only sequence that keeps
its last :data:`CHUNK` decisions in memory and writes the ones before to an anonymous temporary file (pickled,
compressed, one block per chunk), which is deleted when the log is closed or collected. It reads as a list does
(``len``, iteration, indexing, slices, ``==`` with a list) and hands back equal decisions; a log that never grew
past one chunk (every test's and most analysts' back-tests) never touches the disk.
"""

from __future__ import annotations

import pickle
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, overload

from keymoments.act.engine import Decision

__all__ = ["CHUNK", "DecisionLog"]

#: decisions per block (in memory: the block being filled and, while reading, one block read back)
CHUNK = 50_000


class DecisionLog(Sequence[Decision]):
    """An append-only sequence of decisions: the last ``chunk`` in memory, the rest spilled to a temporary file."""

    def __init__(self, decisions: Iterable[Decision] = (), *, chunk: int | None = None) -> None:
        chunk = CHUNK if chunk is None else chunk
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self._chunk = chunk
        self._tail: list[Decision] = []
        self._blocks: list[
            tuple[int, int]
        ] = []  # (offset, length) of each spilled block of `chunk` decisions
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._cached: tuple[int, list[Decision]] | None = None  # the last block read back
        self.extend(decisions)

    # -- writing -------------------------------------------------------------------------------------------
    def append(self, decision: Decision) -> None:
        self._tail.append(decision)
        if len(self._tail) >= self._chunk:
            self._spill()

    def extend(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.append(d)

    def _spill(self) -> None:
        data = zlib.compress(pickle.dumps(self._tail, protocol=pickle.HIGHEST_PROTOCOL), 1)
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="km-decisions-")
            self._file.seek(0, 2)
            self._blocks.append((self._file.tell(), len(data)))
            self._file.write(data)
        self._tail = []

    @property
    def spilled(self) -> int:
        """How many decisions are on disk rather than in memory."""
        return len(self._blocks) * self._chunk

    # -- reading -------------------------------------------------------------------------------------------
    def _block(self, i: int) -> list[Decision]:
        with self._lock:
            if self._cached is not None and self._cached[0] == i:
                return self._cached[1]
            assert self._file is not None
            offset, size = self._blocks[i]
            self._file.seek(offset)
            block: list[Decision] = pickle.loads(zlib.decompress(self._file.read(size)))
            self._cached = (i, block)
            return block

    def __len__(self) -> int:
        return self.spilled + len(self._tail)

    def __iter__(self) -> Iterator[Decision]:
        for i in range(len(self._blocks)):
            with self._lock:
                assert self._file is not None
                offset, size = self._blocks[i]
                self._file.seek(offset)
                data = self._file.read(size)
            yield from pickle.loads(zlib.decompress(data))  # not cached: a scan must not hold two blocks
        yield from list(self._tail)

    @overload
    def __getitem__(self, index: int) -> Decision: ...
    @overload
    def __getitem__(self, index: slice) -> list[Decision]: ...
    def __getitem__(self, index: int | slice) -> Decision | list[Decision]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"decision index {index} out of range ({n} decisions)")
        block, at = divmod(index, self._chunk)
        if block < len(self._blocks):
            return self._block(block)[at]
        return self._tail[at]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"DecisionLog({len(self)} decisions, {self.spilled} on disk)"

    # -- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Delete the spilled blocks (the log is empty afterwards)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self._blocks, self._cached, self._tail = None, [], None, []

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
