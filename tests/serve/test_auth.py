"""API keys: every route but /health needs one; roles limit what a key may do; revoked keys stop working."""

from __future__ import annotations

import hashlib

import pytest


def test_health_needs_no_key(api):
    r = api.client.get("/health")
    assert r.status_code == 200
    assert r.json()["ok"] is True


@pytest.mark.parametrize("path", ["/api/v1/analyses/journey", "/api/v1/analyses", "/api/v1/keys"])
def test_missing_key_is_401(api, path):
    r = api.client.get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "X-API-Key" in r.json()["error"]


def test_missing_key_on_ingest_is_401_and_writes_nothing(api):
    before = api.store.count("events")
    r = api.client.post("/api/v1/events", json=[{"customer_id": "x", "ts": "2025-01-01", "touchpoint": "a"}])
    assert r.status_code == 401
    assert api.store.count("events") == before


def test_unknown_key_is_401(api):
    r = api.client.get("/api/v1/analyses", headers={"X-API-Key": "km_deadbeef_not-a-real-key"})
    assert r.status_code == 401
    assert "unknown or has been revoked" in r.json()["error"]


def test_bearer_token_works_like_the_header(api):
    r = api.client.get("/api/v1/analyses", headers={"Authorization": f"Bearer {api.keys['analyst']}"})
    assert r.status_code == 200
    assert any(a["name"] == "journey" for a in r.json()["analyses"])


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("agent", "get", "/api/v1/analyses/journey", 403),  # agents work cases, they do not read analyses
        ("analyst", "post", "/api/v1/events", 403),  # analysts read, they do not ingest
        ("analyst", "get", "/api/v1/keys", 403),  # only admins manage keys
        ("agent", "post", "/api/v1/keys", 403),
        ("analyst", "get", "/api/v1/analyses", 200),
        ("admin", "get", "/api/v1/keys", 200),
    ],
)
def test_roles(api, role, method, path, status):
    kw = {"json": [{"customer_id": "r", "ts": "2025-01-01", "touchpoint": "a"}]} if method == "post" else {}
    if path == "/api/v1/keys" and method == "post":
        kw = {"json": {"role": "analyst"}}
    r = getattr(api.client, method)(path, headers=api.headers(role), **kw)
    assert r.status_code == status, r.text
    if status == 403:
        assert f"'{role}' role may not" in r.json()["error"]


def test_revoked_key_is_refused_at_once(api):
    r = api.post("/api/v1/keys", json={"role": "analyst", "name": "temp"})
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["key_id"]
    headers = {"X-API-Key": key}
    assert api.client.get("/api/v1/analyses", headers=headers).status_code == 200
    r = api.client.delete(f"/api/v1/keys/{key_id}", headers=api.headers("admin"))
    assert r.status_code == 200
    r = api.client.get("/api/v1/analyses", headers=headers)
    assert r.status_code == 401
    listed = {k["key_id"]: k for k in api.get("/api/v1/keys").json()["keys"]}
    assert listed[key_id]["revoked_at"] is not None


def test_revoking_an_unknown_key_is_404(api):
    r = api.client.delete("/api/v1/keys/nosuchkey", headers=api.headers("admin"))
    assert r.status_code == 404


def test_keys_are_stored_hashed(api):
    key = api.keys["analyst"]
    rows = api.store.query("SELECT * FROM api_keys")
    dump = rows.astype(str).to_string()
    assert key not in dump
    secret = key.split("_", 2)[2]
    assert secret not in dump
    assert hashlib.sha256(key.encode()).hexdigest() in set(rows["key_hash"])


def test_cli_keys_create_list_revoke(tmp_path):
    import json

    from typer.testing import CliRunner

    from keymoments.cli import app

    db = str(tmp_path / "k.duckdb")
    runner = CliRunner()
    r = runner.invoke(app, ["keys", "create", "--role", "agent", "--employee-id", "E7", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    made = json.loads(r.output)
    assert made["key"].startswith(f"km_{made['key_id']}_")
    r = runner.invoke(app, ["keys", "list", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert [k["role"] for k in listed] == ["agent"] and listed[0]["employee_id"] == "E7"
    assert made["key"] not in r.output
    r = runner.invoke(app, ["keys", "revoke", made["key_id"], "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["keys", "create", "--role", "boss", "--db", db])
    assert r.exit_code != 0
