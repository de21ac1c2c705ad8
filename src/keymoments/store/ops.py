"""The operational store: what people and workers change concurrently, behind one small interface.

Operational state is the act layer's: playbook runs and decisions, holdout assignments, cases and their
timeline, budget pools and the ledger, the webhook outbox, and API keys. It lives

* in the DuckDB store file by default (:class:`EmbeddedOps`: the tables of ``store/act_tables.py`` and
  ``store/keys.py``, written through the store's single writer), or
* in PostgreSQL when ``KM_DATABASE_URL=postgresql://…`` is set (:class:`keymoments.store.postgres.PostgresOps`:
  the same tables, the same functions in ``store/pg_tables.py``, migrated with Alembic), which many API and
  worker processes share.

Analytical events always stay in DuckDB (or the lakehouse); the two are joined by ids (``customer_id``,
``event_id``, ``case_id``), never by copying tables.

The act layer holds the rules (when a spend is approved, reserved or refused; which case transitions are
allowed) once, and reaches storage only through an ``OperationalStore``::

    with ops.write() as con:          # one transaction
        row = ops.sql.lock_pool(con, pool, key, start)   # PostgreSQL: SELECT … FOR UPDATE
        ...

``ops.sql`` is the backend's module of table functions: every function has the same name, arguments and
result in both modules, so a rule written against it runs unchanged on either backend. The locking functions
(``lock_pool``, ``lock_case``, ``lock_limits``) take row locks on PostgreSQL; on DuckDB the store's single
writer already serialises every write transaction, so they are plain reads (or nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from keymoments.store.store import Store

__all__ = ["EmbeddedOps", "OperationalStore", "ops_of"]

T = TypeVar("T")


class OperationalStore:
    """What every backend of the operational store provides.

    ``kind``: ``"embedded"`` or ``"postgresql"``. ``sql`` and ``keys``: the backend's table functions.
    ``write()``: one transaction (commits on leaving the block, rolls back on an error). ``read()``: a
    connection that sees committed data. ``transact(fn)``: ``fn(con)`` in a transaction, retried where the
    backend can fail a transaction for concurrency alone (PostgreSQL deadlocks and serialisation failures).
    """

    kind: str = "abstract"
    sql: Any = None
    keys: Any = None

    @contextmanager
    def write(self) -> Iterator[Any]:  # pragma: no cover - interface
        raise NotImplementedError
        yield

    @contextmanager
    def read(self) -> Iterator[Any]:  # pragma: no cover - interface
        raise NotImplementedError
        yield

    def transact(self, fn: Callable[[Any], T]) -> T:
        with self.write() as con:
            return fn(con)

    def close(self) -> None:
        """Release the backend's connections (the embedded one belongs to its Store)."""

    def describe(self) -> str:
        return self.kind


class EmbeddedOps(OperationalStore):
    """The operational tables inside the DuckDB store file, written through the store's single writer."""

    kind = "embedded"

    def __init__(self, store: Store) -> None:
        from keymoments.store import act_tables, keys

        self.store = store
        self.sql = act_tables
        self.keys = keys

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.store.write() as con:
            yield con

    @contextmanager
    def read(self) -> Iterator[Any]:
        cur = self.store.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def describe(self) -> str:
        return f"embedded ({self.store.path})"


def ops_of(obj: Any) -> OperationalStore:
    """The operational store of a :class:`~keymoments.store.store.Store` (or ``obj`` itself if it is one)."""
    if isinstance(obj, OperationalStore):
        return obj
    ops = getattr(obj, "ops", None)
    if isinstance(ops, OperationalStore):
        return ops
    raise TypeError(f"Expected a Store or an OperationalStore, got {type(obj).__name__}.")
