"""The outbox against a real HTTP server on loopback that fails some calls, and a worker killed mid-delivery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keymoments.act.outbox import OutboxWorker, sign, verify_signature
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.store import act_tables as sql
from keymoments.store.store import Store

from .conftest import ev, load_events

SECRET = "s3cret"


class Receiver:
    """A webhook receiver: verifies signatures, dedupes by Idempotency-Key, fails on request."""

    def __init__(self, fail=lambda n: None, delay: float = 0.0):
        self.fail = fail
        self.delay = delay
        self.requests: list[str] = []  # every Idempotency-Key received, repeats included
        self.processed: dict[str, int] = {}  # key -> position in which its effect was applied (once per key)
        self.effects: list[str] = []  # the side effects the receiver applied, one per first-seen key
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.got_request = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append(key)
                outer.got_request.set()
                if outer.delay:
                    time.sleep(outer.delay)
                code = outer.fail(n)
                if code == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if code:
                    self.send_response(code)
                    self.end_headers()
                    self.wfile.write(b"nope")
                    return
                if not verify_signature(SECRET, body, self.headers["X-Keymoments-Signature"]):
                    outer.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with outer.lock:
                    if key not in outer.processed:  # idempotency: a repeat is acknowledged, not applied again
                        outer.processed[key] = len(outer.effects)
                        outer.effects.append(json.loads(body)["message_id"])
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _fill_outbox(store: Store, url: str, n: int) -> list[str]:
    pf = loads_playbooks(f"""
playbooks:
  - name: sorry
    trigger: {{type: crisis}}
    actions: [{{type: notify, template: "sorry about {{touchpoint}}", url: "{url}"}}]
""")
    load_events(store, [ev(f"c{i}", i, outcome="cancelled", event_id=f"e{i}") for i in range(n)])
    PlaybookRunner(store, pf).run_live()
    cur = store.cursor()
    ids = [r[0] for r in cur.execute("SELECT message_id FROM outbox WHERE status = 'pending'").fetchall()]
    cur.close()
    assert len(ids) == n
    return ids


def test_signature_roundtrip_and_tamper():
    body = b'{"a": 1}'
    h = sign(SECRET, body, timestamp=1_000)
    assert verify_signature(SECRET, body, h, now=1_010)
    assert not verify_signature(SECRET, body + b" ", h, now=1_010)
    assert not verify_signature("other", body, h, now=1_010)
    assert not verify_signature(SECRET, body, h, now=5_000)  # stale: a replay
    assert not verify_signature(SECRET, body, "garbage")


def test_retries_with_backoff_until_delivered(store):
    # every 3rd call fails with 503, some connections are dropped, one message gets a 400 (permanent)
    def fail(n):
        return 503 if n % 3 == 0 else ("drop" if n % 7 == 1 else None)

    with Receiver(fail) as rx:
        ids = _fill_outbox(store, rx.url, 12)
        worker = OutboxWorker(store, secret=SECRET, base_delay=10, max_attempts=6, timeout=2)
        now = datetime.now(UTC)
        first = worker.deliver_due(now=now)
        assert first.retried > 0 and first.delivered > 0
        cur = store.cursor()
        retry_at = cur.execute("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()[0]
        cur.close()
        assert retry_at >= now + timedelta(seconds=10)  # backoff, not an immediate retry
        assert worker.deliver_due(now=now).attempted == 0  # nothing is due yet
        t = now
        for _ in range(6):
            t += timedelta(seconds=700)
            worker.deliver_due(now=t)
        worker.close()
        assert sorted(rx.effects) == sorted(ids)  # every action applied once, its key = its message id
        assert rx.bad_signatures == 0
        assert len(rx.requests) > len(ids)  # some were retried
    cur = store.cursor()
    assert sql.outbox_counts(cur) == {"delivered": 12}
    assert cur.execute("SELECT max(attempts) FROM outbox").fetchone()[0] >= 2
    cur.close()


def test_permanent_errors_go_dead(store):
    with Receiver(lambda n: 400) as rx:
        _fill_outbox(store, rx.url, 2)
        w = OutboxWorker(store, secret=SECRET)
        r = w.deliver_due()
        w.close()
    assert r.dead == 2 and "HTTP 400" in r.errors[0]


WORKER = """
import sys
from keymoments.store.store import Store
from keymoments.act.outbox import OutboxWorker
store = Store(sys.argv[1])
OutboxWorker(store, secret=sys.argv[2], base_delay=0.05, timeout=10).run(max_seconds=60, poll=0.05)
store.close()
"""


@pytest.mark.slow
def test_killed_worker_neither_loses_nor_duplicates(tmp_path):
    path = str(tmp_path / "km.duckdb")
    with Receiver(delay=0.15) as rx:
        store = Store(path)
        ids = _fill_outbox(store, rx.url, 10)
        store.close()  # DuckDB: one writing process per file; the worker owns it now
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen([sys.executable, "-c", WORKER, path, SECRET], env=env)
        # wait until a few were delivered and one is in flight, then kill -9 mid-delivery
        deadline = time.monotonic() + 60
        while len(rx.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 0 < len(rx.processed) < len(ids)
        # restart: the pending messages (including the one in flight) are sent again
        proc2 = subprocess.run([sys.executable, "-c", WORKER, path, SECRET], env=env, timeout=90)
        assert proc2.returncode == 0
    assert sorted(rx.effects) == sorted(ids)  # nothing lost, each applied once at the receiver
    from collections import Counter

    repeats = {k: n for k, n in Counter(rx.requests).items() if n > 1}
    # only the message in flight when the worker died was sent again (same key); delivered ones never were
    assert len(repeats) == 1 and list(repeats.values()) == [2]
    store = Store(path)
    cur = store.cursor()
    assert sql.outbox_counts(cur) == {"delivered": 10}
    cur.close()
    store.close()


def test_cli_run_deliver_sends_signed_webhooks(run_cli, tmp_path, monkeypatch):
    db = str(tmp_path / "km.duckdb")
    with Receiver() as rx:
        pb = tmp_path / "pb.yaml"
        pb.write_text(f"""
playbooks:
  - name: call-them
    trigger: {{type: good_news}}
    actions: [{{type: notify, channel: call, template: "congratulations on your {{outcome}}", url: "{rx.url}"}}]
""")
        store = Store(db)
        load_events(store, [ev(f"c{i}", i, outcome="upgraded", event_id=f"u{i}") for i in range(3)])
        store.close()
        code, out, err = run_cli("playbooks", "run", str(pb), "--db", db, "--deliver")
        assert code == 2 and "webhook secret" in err  # no secret, no unsigned webhooks
        monkeypatch.setenv("KM_WEBHOOK_SECRET", SECRET)
        res = run_cli.json("playbooks", "run", str(pb), "--db", db, "--deliver")
        assert res["decisions"] == 3 and res["delivered"] == 3
        assert len(rx.effects) == 3 and rx.bad_signatures == 0
