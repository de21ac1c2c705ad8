"""Alembic's entry point for the operational store: runs the migrations in ``versions/`` online.

``store/postgres.py`` builds the Alembic config in code (no alembic.ini) and passes the schema in
``config.attributes["schema"]``. The migrations hold under a session advisory lock, so processes that start
at the same time migrate one after the other; the version table lives in the store's own schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from keymoments.quoting import quote_ident

config = context.config
schema = config.attributes.get("schema", "public")
url = config.get_main_option("sqlalchemy.url")
assert url, "store/postgres.py sets sqlalchemy.url"

engine = create_engine(url)
with engine.connect() as connection:
    quoted = quote_ident(schema)
    connection.execute(text("SELECT pg_advisory_lock(hashtextextended('keymoments-migrate', 0))"))
    try:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
        connection.execute(text(f"SET search_path TO {quoted}"))
        connection.commit()
        context.configure(connection=connection, target_metadata=None, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(hashtextextended('keymoments-migrate', 0))"))
        connection.commit()
engine.dispose()
