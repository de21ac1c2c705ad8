"""``keymoments serve --workers 2``: two API processes on one port, sharing the PostgreSQL operational store and
publishing posted events to the stream; refused without PostgreSQL and a broker; SIGTERM stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from keymoments.serve.auth import list_keys
from keymoments.store.postgres import PostgresOps

from ._live import make_events


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_api_processes_share_postgresql_and_publish(tmp_path, pg_url, pg_schema, nats_url, stream_name):
    port = _free_port()
    db = tmp_path / "km.duckdb"
    env = {**os.environ, "KM_DATABASE_URL": pg_url, "KM_DATABASE_SCHEMA": pg_schema, "KM_PARTITIONS": "2",
           "KM_BROKER": f"{nats_url}/{stream_name.lower()}"}  # fmt: skip
    refused = subprocess.run([sys.executable, "-m", "keymoments", "serve", "--db", str(db), "--workers", "2"],
                             env={k: v for k, v in env.items() if k != "KM_BROKER"}, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "KM_BROKER" in refused.stderr
    proc = subprocess.Popen([sys.executable, "-m", "keymoments", "serve", "--db", str(db), "--port", str(port),
                             "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        key = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and key is None:
            line = proc.stdout.readline()
            if line.strip().startswith("km_"):
                key = line.strip()
        assert key, "serve printed no admin key"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        h = {"X-API-Key": key}
        answers = [httpx.post(f"http://127.0.0.1:{port}/api/v1/events", headers=h, json=make_events(5, 4, seed=i),
                              timeout=30).json() for i in range(6)]  # fmt: skip
        assert all(a["accepted"] == 20 and a["published"] == stream_name for a in answers)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["operational_store"] == "postgresql" and health["broker"]["stream"] == stream_name
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, proc.stderr.read()[-2000:]
    ops = PostgresOps(pg_url, schema=pg_schema, migrate=False)
    try:
        assert [k["role"] for k in list_keys(ops)] == ["admin"]  # the one key both processes authenticated
    finally:
        ops.close()
