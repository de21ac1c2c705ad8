"""The embedded DuckDB store: opening, migrations, the single writer and readers.

One :class:`Store` owns one DuckDB database instance. All writes go through :meth:`Store.write`, which holds
a process-wide lock, so there is one writer at a time; reads use their own cursors on the same instance and
see the last committed state (DuckDB's MVCC), so they never wait for a writer. A DuckDB connection refuses a
second call while one is running (``ResourceInUseException``), so nothing shares a cursor across threads:
:meth:`Store.cursor` makes a new one per use, and :attr:`Store.ibis` is one Ibis backend *per thread*, each on
its own cursor (a server's worker threads each query through their own).

A store opened read-only, and one opened with ``external_access=False`` (the server's), runs with DuckDB's
``enable_external_access = false``: no SQL it runs can read or write a file (``COPY``, ``ATTACH``,
``read_csv``) or load an extension. DuckDB holds that setting per database instance, not per connection, so a
writable store that ingests files keeps it on unless asked; the server only ingests batches from memory.

All SQL against the store's tables lives in this package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from keymoments.events import did_you_mean
from keymoments.exceptions import NotFoundError, StoreError
from keymoments.quoting import quote_ident
from keymoments.store.ops import EmbeddedOps, OperationalStore
from keymoments.store.schema import MIGRATIONS

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends.duckdb import Backend as IbisBackend

__all__ = ["Store", "connect"]

_IN_MEMORY = ":memory:"


class Store:
    """A keymoments store in one DuckDB file (or in memory with ``":memory:"``).

    >>> store = Store(":memory:")
    >>> store.count("events")
    0
    """

    def __init__(
        self,
        path: str | Path = "keymoments.duckdb",
        *,
        read_only: bool = False,
        threads: int | None = None,
        memory_limit: str | None = None,
        database_url: str | None = None,
        database_schema: str = "public",
        external_access: bool | None = None,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        #: False: SQL on this store cannot touch files (default: False when read-only, else True)
        self.external_access = (not read_only) if external_access is None else external_access
        config: dict[str, Any] = {}
        if not self.external_access:
            config["enable_external_access"] = False
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        if self.path != _IN_MEMORY:
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.exists():
                raise StoreError(f"Cannot open store {self.path!r}: folder {str(parent)!r} does not exist.")
            if read_only and not Path(self.path).exists():
                raise StoreError(f"Store {self.path!r} does not exist. Create it by ingesting data, e.g. `keymoments demo`.")
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            raise StoreError(
                f"Cannot open store {self.path!r}: {msg}. Another process may hold it open for writing "
                "(stop `keymoments serve` or use the API), or the file is not a DuckDB database."
            ) from None
        self._con.execute("SET TimeZone = 'UTC'")  # stored in UTC; naive times are read as UTC
        # DuckDB's own progress bar prints to the terminal from inside long statements (and into --json output):
        # it is tracked but never printed; commands draw their own (keymoments.present), polling query_progress()
        self._con.execute("SET enable_progress_bar = true")
        self._con.execute("SET enable_progress_bar_print = false")
        self._lock = threading.RLock()
        self._tx_depth = 0  # open transaction() blocks on the writer connection (under the lock)
        # one Ibis backend per thread: {thread: (backend, its cursor)}; entries of finished threads are dropped
        self._ibis_lock = threading.Lock()
        self._ibis_by_thread: dict[threading.Thread, tuple[IbisBackend, duckdb.DuckDBPyConnection]] = {}
        if not read_only:
            self.migrate()
        #: the operational store (cases, budgets, ledger, outbox, keys…): these tables, or PostgreSQL
        self.ops: OperationalStore = EmbeddedOps(self)
        if database_url:
            from keymoments.store.postgres import PostgresOps

            try:
                self.ops = PostgresOps(database_url, schema=database_schema)
            except BaseException:
                self._con.close()
                raise

    # -- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            with self._ibis_lock:
                for _backend, cur in self._ibis_by_thread.values():
                    cur.close()
                self._ibis_by_thread.clear()
            self.ops.close()
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})" if self.ops.kind == "embedded" else f"Store({self.path!r}, ops={self.ops.describe()!r})"

    # -- schema ------------------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        cur = self._con.cursor()  # its own cursor: asked (by /health) while the writer is busy, it must not fail
        try:
            rows = cur.execute("SELECT max(version) FROM schema_version").fetchall()  # fetched whole
        except duckdb.CatalogException:
            return 0
        finally:
            cur.close()
        return int(rows[0][0] or 0) if rows else 0

    def migrate(self) -> int:
        """Apply the migrations not applied yet; return the schema version."""
        with self._lock:
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
            )
            current = self.schema_version
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                self._con.execute("BEGIN TRANSACTION")
                try:
                    for sql in statements:
                        self._con.execute(sql)
                    self._con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, datetime.now(UTC)])
                    self._con.execute("COMMIT")
                except Exception:
                    self._con.execute("ROLLBACK")
                    raise
            return self.schema_version

    # -- writing -----------------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer: a transaction on the writer connection, under the store's lock.

        Everything done inside the block commits together or not at all. Inside :meth:`transaction` the block
        joins that transaction instead of opening its own.
        """
        if self.read_only:
            raise StoreError(f"Store {self.path!r} is open read-only; open it without read_only to write.")
        with self._lock:
            if self._tx_depth:
                yield self._con
                return
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction around several writes (the files of one ``ingest``, a survey's events and outcomes):
        every :meth:`write` and :meth:`session` inside the block joins it, and all of it commits at the end of
        the block or, if the block raises, none of it.

        >>> store = Store(":memory:")
        >>> try:
        ...     with store.transaction():
        ...         with store.write() as con:
        ...             _ = con.execute("INSERT INTO meta VALUES ('a', 'b')")
        ...         raise RuntimeError("a later step failed")
        ... except RuntimeError:
        ...     pass
        >>> store.count("meta")
        0
        """
        if self.read_only:
            raise StoreError(f"Store {self.path!r} is open read-only; open it without read_only to write.")
        with self._lock:
            if self._tx_depth:  # nested: part of the outer one
                self._tx_depth += 1
                try:
                    yield self._con
                finally:
                    self._tx_depth -= 1
                return
            self._con.execute("BEGIN TRANSACTION")
            self._tx_depth = 1
            try:
                yield self._con
            except BaseException:
                self._tx_depth = 0
                self._con.execute("ROLLBACK")
                raise
            self._tx_depth = 0
            self._con.execute("COMMIT")

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The writer connection under the store's lock but outside any transaction: for scratch work (temp
        tables) that prepares a write, so it can open :meth:`write` transactions of its own."""
        if self.read_only:
            raise StoreError(f"Store {self.path!r} is open read-only; open it without read_only to write.")
        with self._lock:
            yield self._con

    def new_batch_id(self, con: duckdb.DuckDBPyConnection) -> int:
        rows = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()  # fetched whole
        return int(rows[0][0]) if rows else 1

    # -- reading -----------------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A read cursor on the same database; it sees committed data and never blocks the writer."""
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a read query and return a pandas DataFrame."""
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    def count(self, table: str, where: str | None = None) -> int:
        self._check_table(table)
        sql = f"SELECT count(*) FROM {quote_ident(table)}" + (f" WHERE {where}" if where else "")  # where: code's SQL
        cur = self.cursor()
        try:
            row = cur.execute(sql).fetchone()
        finally:
            cur.close()
        return int(row[0]) if row else 0

    def tables(self) -> list[str]:
        cur = self.cursor()
        try:
            rows = cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='main'").fetchall()
        finally:
            cur.close()
        return sorted(r[0] for r in rows)

    def _check_table(self, table: str) -> None:
        tables = self.tables()
        if table not in tables:
            raise NotFoundError(f"Table {table!r} is not in the store.{did_you_mean(table, tables)}")

    # -- ibis --------------------------------------------------------------------------------------------
    @property
    def ibis(self) -> IbisBackend:
        """An Ibis DuckDB backend over this store for the calling thread (shares the database instance).

        Each thread gets its own backend on its own cursor, so threads never share a DuckDB connection (which
        answers a second concurrent call with ``ResourceInUseException``). An expression runs on the backend
        of the thread that built it: build and run it in one thread."""
        me = threading.current_thread()
        entry = self._ibis_by_thread.get(me)
        if entry is None:
            import ibis

            cur = self.cursor()
            entry = (ibis.duckdb.from_connection(cur), cur)
            with self._ibis_lock:
                for t in [t for t in self._ibis_by_thread if not t.is_alive()]:  # a finished worker thread's
                    self._ibis_by_thread.pop(t)[1].close()
                self._ibis_by_thread[me] = entry
        return entry[0]

    def table(self, name: str) -> ir.Table:
        """An Ibis table expression over one of the store's tables."""
        self._check_table(name)
        return self.ibis.table(name)

    def events(self) -> ir.Table:
        """The events table as an Ibis expression."""
        return self.table("events")

    # -- outcomes ----------------------------------------------------------------------------------------
    def outcome_names(self) -> dict[str, tuple[str, str]]:
        """{name: (key_kind, dtype)} of the outcomes in the store."""
        df = self.query("SELECT name, key_kind, dtype FROM outcome_defs ORDER BY name")
        return {r.name: (r.key_kind, r.dtype) for r in df.itertuples()}

    def outcomes_wide(
        self, names: list[str] | None = None, key_kind: str | None = None, keys: list[str] | None = None
    ) -> pd.DataFrame:
        """Outcomes as one row per key and one column per outcome (bool outcomes as 0/1 floats); ``keys``: only
        these keys' (a fit's sample)."""
        defs = self.outcome_names()
        names = names or list(defs)
        for n in names:
            if n not in defs:
                raise NotFoundError(
                    f"Outcome {n!r} is not in the store; known outcomes: {sorted(defs)}.{did_you_mean(n, defs)}"
                    " Load outcomes with `keymoments ingest-outcomes`."
                )
        kinds = {defs[n][0] for n in names}
        kind = key_kind or (kinds.pop() if len(kinds) == 1 else "customer_id")
        return self._wide("outcomes", names, kind, keys)

    def attributes_wide(self, key_kind: str = "customer_id", keys: list[str] | None = None) -> pd.DataFrame:
        """Customer (or journey) attributes as one row per key, one column per attribute; ``keys``: only these
        keys' (a fit's sample)."""
        names = self.query("SELECT DISTINCT name FROM attributes WHERE key_kind = ? ORDER BY name", [key_kind])["name"]
        return self._wide("attributes", [str(n) for n in names], key_kind, keys)

    def _wide(self, table: str, names: list[str], key_kind: str, keys: list[str] | None = None) -> pd.DataFrame:
        """One row per key of ``key_kind`` (of ``keys`` when given), one column per name: the names and keys
        (data, any text at all) reach SQL only as bound parameters, and the columns are named in pandas, never
        in SQL."""
        if table not in ("outcomes", "attributes"):
            raise ValueError(f"not a long table: {table!r}")
        if not names:
            return pd.DataFrame(columns=[key_kind])
        cols = ", ".join(f"max(value) FILTER (WHERE name = ?) AS _c{i}" for i in range(len(names)))
        only = "" if keys is None else " AND key IN (SELECT unnest(CAST(? AS VARCHAR[])))"
        df = self.query(
            f"SELECT key AS _key, {cols} FROM {table} WHERE key_kind = ?{only} GROUP BY key ORDER BY key",
            [*names, key_kind, *([list(keys)] if keys is not None else [])],
        )
        df.columns = _unique_columns([key_kind, *names])
        return df


def _unique_columns(names: list[str]) -> list[str]:
    """Column names as DuckDB would make them unique (a repeat gets ``_1``, ``_2``…), so a name equal to the
    key's keeps the key column intact."""
    seen: set[str] = set()
    out = []
    for n in names:
        m, i = n, 0
        while m in seen:
            i += 1
            m = f"{n}_{i}"
        seen.add(m)
        out.append(m)
    return out


def connect(path: str | Path = "keymoments.duckdb", **kwargs: Any) -> Store:
    """Open (creating and migrating if needed) the store at ``path``."""
    return Store(path, **kwargs)
