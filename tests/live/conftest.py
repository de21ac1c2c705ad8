"""Fixtures of the live tests: a real PostgreSQL schema and a real NATS JetStream stream per test run.

The services are the ones CI and every development machine run (PostgreSQL on 127.0.0.1:5432 with trust auth
and a database ``test``; NATS with JetStream on 127.0.0.1:4222); ``KM_TEST_DATABASE_URL`` and
``KM_TEST_NATS_URL`` point elsewhere. Nothing here is skipped: a missing service fails the test with a message
that says what to start. Every schema and stream a test creates is dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlparse

import pytest

PG_URL = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("KM_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _reachable(url: str, default_port: int) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    if not _reachable(PG_URL, 5432):
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL}: the live tests need it (CI and development machines run it "
            "on 127.0.0.1:5432 with trust auth and a database 'test'; set KM_TEST_DATABASE_URL to use another)."
        )
    return PG_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    if not _reachable(NATS_URL, 4222):
        pytest.fail(
            f"NATS is not reachable at {NATS_URL}: the live tests need NATS with JetStream (`nats-server -js`, "
            "on 127.0.0.1:4222 on CI and development machines; set KM_TEST_NATS_URL to use another)."
        )
    return NATS_URL


def new_schema() -> str:
    return f"km_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_schema(pg_url):
    """A fresh schema name, dropped after the test (whatever created tables in it)."""
    import psycopg

    schema = new_schema()
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_ops(pg_url, pg_schema):
    """The operational store in its own, migrated PostgreSQL schema."""
    from keymoments.store.postgres import PostgresOps

    ops = PostgresOps(pg_url, schema=pg_schema)
    yield ops
    ops.close()


@pytest.fixture
def pg_store(tmp_path, pg_url, pg_schema):
    """A DuckDB store for the events whose operational store is PostgreSQL."""
    from keymoments.store.store import Store

    s = Store(tmp_path / "km.duckdb", database_url=pg_url, database_schema=pg_schema)
    yield s
    s.close()


@pytest.fixture
def stream_name(nats_url):
    """A fresh JetStream stream name (and subject prefix), deleted after the test."""
    import asyncio

    name = f"KMTEST_{os.getpid()}_{uuid.uuid4().hex[:8].upper()}"
    yield name

    async def delete() -> None:
        import nats

        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().delete_stream(name)
        except Exception:  # noqa: BLE001 - the test may not have created it
            pass
        await nc.close()

    asyncio.run(delete())
