"""The operational store on PostgreSQL (``KM_DATABASE_URL=postgresql://…``), shared by many processes.

Design notes:

* **psycopg 3 directly, not an ORM.** The embedded store is plain SQL with placeholders (``act_tables.py``);
  its PostgreSQL twin (``pg_tables.py``) is the same statements with ``%s`` and the few clauses that many
  concurrent writers need (``FOR UPDATE``, ``SKIP LOCKED``, ``ON CONFLICT``, advisory locks). An ORM or
  SQLAlchemy Core would put a second query language between the two twins and cost time on the hottest path
  (a spend is three short statements). Connections come from a ``psycopg_pool`` pool, one per process.
* **Alembic for the schema**, through SQLAlchemy's psycopg dialect, only to migrate: the revisions in
  ``pg_migrations/versions`` are explicit DDL (the tables mirror the embedded ones column for column), run
  under an advisory lock so processes that start together migrate once; the version table lives in the
  store's schema (``KM_DATABASE_SCHEMA``, default ``public``), so one database can hold several stores (the
  tests use a schema per run).
* **Transactions are READ COMMITTED with row locks** where a rule reads before it writes (a pool's remaining
  money, a case's status), which makes the rule's check and its write atomic without retry loops; deadlocks
  (which consistent lock order avoids) and serialisation failures are still retried by :meth:`transact`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from keymoments.exceptions import ConfigError, StoreError
from keymoments.quoting import quote_ident
from keymoments.store.ops import OperationalStore

__all__ = ["PostgresOps", "open_postgres"]

T = TypeVar("T")
_MIGRATIONS = Path(__file__).with_name("pg_migrations")
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def _need_live() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError:  # pragma: no cover - the live extra is installed by scripts/setup
        raise ConfigError(
            "KM_DATABASE_URL needs the live extra: pip install 'keymoments[live]' (psycopg, alembic, nats-py)."
        ) from None
    return psycopg


def _check_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"KM_DATABASE_URL must start with postgresql://; got {url.split('@')[-1]!r}.")
    return url


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    head, tail = url.rsplit("@", 1)
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}@{tail}"


class PostgresOps(OperationalStore):
    """The operational tables in a PostgreSQL schema, reached through a connection pool.

    >>> ops = PostgresOps("postgresql://127.0.0.1:5432/test", schema="km_doc")  # doctest: +SKIP
    >>> with ops.write() as con:                                                  # doctest: +SKIP
    ...     ops.sql.get_case(con, "case-1")
    """

    kind = "postgresql"

    def __init__(self, url: str, *, schema: str = "public", migrate: bool = True, min_size: int = 1,
                 max_size: int = 8, connect_timeout: float = 10.0) -> None:  # fmt: skip
        psycopg = _need_live()
        from psycopg_pool import ConnectionPool

        from keymoments.store import pg_tables

        self.url = _check_url(url)
        self.schema = schema
        self.sql = pg_tables
        self.keys = pg_tables
        self._psycopg = psycopg
        if migrate:
            self.migrate()
        self._pool = ConnectionPool(
            self.url, min_size=min_size, max_size=max_size, kwargs={"autocommit": False},
            configure=self._configure, open=False, timeout=connect_timeout, name="keymoments",
        )  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            self._pool.close()
            raise StoreError(
                f"Cannot connect to the operational store at {_safe(self.url)}: {exc}. Is PostgreSQL running, and "
                "is KM_DATABASE_URL right?"
            ) from None

    def _configure(self, conn: Any) -> None:
        from psycopg.types.string import TextLoader

        conn.adapters.register_loader("jsonb", TextLoader)  # JSON comes back as text, as from DuckDB
        conn.adapters.register_loader("json", TextLoader)
        quoted = quote_ident(self.schema)
        conn.execute(f"SET search_path TO {quoted}")
        conn.execute("SET TimeZone TO 'UTC'")
        # psycopg prepares a statement run 5 times; PostgreSQL then keeps a generic plan made while the tables
        # were small (a new store's), which scanned case_events whole on every batch of a worker: its
        # latency grew minute by minute. Statements stay prepared (parsed once) but are planned for each run.
        conn.execute("SET plan_cache_mode TO force_custom_plan")
        conn.commit()

    # -- schema ------------------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema to the newest revision (Alembic); return it."""
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", _sqlalchemy_url(self.url))
        cfg.attributes["schema"] = self.schema
        try:
            command.upgrade(cfg, "head")
        except Exception as exc:
            if isinstance(exc, self._psycopg.OperationalError) or "connection" in str(exc).lower():
                raise StoreError(
                    f"Cannot migrate the operational store at {_safe(self.url)}: {str(exc).splitlines()[0]}. "
                    "Is PostgreSQL running, and is KM_DATABASE_URL right?"
                ) from None
            raise
        return str(ScriptDirectory.from_config(cfg).get_current_head())

    def schema_version(self) -> str | None:
        with self.read() as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None

    # -- connections -------------------------------------------------------------------------------------
    @contextmanager
    def write(self, *, pipeline: bool = False) -> Iterator[Any]:
        """One transaction. ``pipeline=True`` runs it in psycopg's pipeline mode: statements whose results are
        not read are sent without waiting for each other (the commit too), so a transaction of many writes
        and a few reads costs a round trip per read, plus one (the worker's batches)."""
        with self._pool.connection() as conn:
            if pipeline:
                with conn.pipeline(), conn.transaction():
                    yield conn
            else:
                with conn.transaction():
                    yield conn

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A connection of its own, outside the pool, in autocommit (advisory locks held for a process's life)."""
        conn = self._psycopg.connect(self.url, autocommit=True)
        try:
            self._configure_autocommit(conn)
            yield conn
        finally:
            conn.close()

    def _configure_autocommit(self, conn: Any) -> None:
        quoted = quote_ident(self.schema)
        conn.execute(f"SET search_path TO {quoted}")
        conn.execute("SET TimeZone TO 'UTC'")

    def transact(self, fn: Callable[[Any], T], *, attempts: int = 5) -> T:
        """``fn(con)`` in one transaction, retried when PostgreSQL aborts it for concurrency alone."""
        for attempt in range(attempts):
            try:
                with self.write() as con:
                    return fn(con)
            except self._psycopg.errors.OperationalError as exc:
                if getattr(exc, "sqlstate", None) not in _RETRY_SQLSTATES or attempt == attempts - 1:
                    raise
                time.sleep(0.005 * (attempt + 1) * (1 + (os.getpid() % 7) / 7))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return f"postgresql ({_safe(self.url)}, schema {self.schema})"

    # -- administration (tests and operators) --------------------------------------------------------------
    def drop_schema(self) -> None:
        """Drop the store's schema with everything in it (tests: a schema per run, dropped afterwards)."""
        self._pool.close()
        with self._psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(self.schema)} CASCADE")


def _sqlalchemy_url(url: str) -> str:
    rest = url.split("://", 1)[1]
    return "postgresql+psycopg://" + rest


def open_postgres(url: str, *, schema: str = "public", **kwargs: Any) -> PostgresOps:
    """Open (and migrate) the operational store at ``url``."""
    return PostgresOps(url, schema=schema, **kwargs)
