"""SQL of the API keys: one row per key, the key itself never stored, only its SHA-256 hash.

A key is ``km_<prefix>_<secret>``; the ``prefix`` (8 hex characters) names the key in lists and logs, the
hash authenticates it. Revoking sets ``revoked_at``; a revoked key is kept for the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

__all__ = ["KEYS_MIGRATION", "find_key", "insert_key", "list_keys", "revoke_key", "touch_key"]

#: The API keys table (one migration, appended to ``schema.MIGRATIONS``).
KEYS_MIGRATION: list[str] = [
    """CREATE TABLE api_keys (
        key_id VARCHAR PRIMARY KEY,        -- the public prefix, e.g. 3f9a1c2e
        key_hash VARCHAR NOT NULL UNIQUE,  -- sha256 hex of the whole key
        role VARCHAR NOT NULL,             -- admin | analyst | agent
        name VARCHAR,                      -- who or what holds it
        employee_id VARCHAR,               -- an agent's employee id (their cases and budget scope)
        created_at TIMESTAMPTZ NOT NULL,
        last_used_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ
    )""",
]

_COLS = ("key_id", "role", "name", "employee_id", "created_at", "last_used_at", "revoked_at")


def insert_key(
    con: duckdb.DuckDBPyConnection, key_id: str, key_hash: str, role: str, name: str | None,
    employee_id: str | None, at: datetime,
) -> None:  # fmt: skip
    con.execute(
        "INSERT INTO api_keys (key_id, key_hash, role, name, employee_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [key_id, key_hash, role, name, employee_id, at],
    )


def find_key(con: duckdb.DuckDBPyConnection, key_hash: str) -> dict[str, Any] | None:
    cur = con.execute(f"SELECT {', '.join(_COLS)} FROM api_keys WHERE key_hash = ?", [key_hash])
    row = cur.fetchone()
    return None if row is None else dict(zip(_COLS, row, strict=True))


def revoke_key(con: duckdb.DuckDBPyConnection, key_id: str, at: datetime) -> bool:
    """Revoke a key by its id; False when no such key (revoking twice keeps the first time)."""
    if con.execute("SELECT 1 FROM api_keys WHERE key_id = ?", [key_id]).fetchone() is None:
        return False
    con.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?", [at, key_id])
    return True


def touch_key(con: duckdb.DuckDBPyConnection, key_id: str, at: datetime) -> None:
    con.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", [at, key_id])


def list_keys(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = con.execute(f"SELECT {', '.join(_COLS)} FROM api_keys ORDER BY created_at").fetchall()
    return [dict(zip(_COLS, r, strict=True)) for r in rows]
