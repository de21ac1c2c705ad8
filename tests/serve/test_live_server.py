"""A real uvicorn server on loopback: a 200 MB POST without a key is turned away without the server reading it
(its memory stays flat), and /health answers while a back-test over a catastrophic pattern runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from keymoments.testing.servers import free_port, wait_healthy

pytestmark = pytest.mark.slow

SERVER = textwrap.dedent("""
    import sys
    import uvicorn
    from keymoments.serve.app import create_app
    from keymoments.store.store import Store

    store = Store(sys.argv[1])
    uvicorn.run(create_app(store, close_store=True), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
""")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(base url, admin key, server process) over a small store with texts a catastrophic pattern chokes on."""
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame
    from keymoments.testing import make_events

    folder = tmp_path_factory.mktemp("live")
    db = folder / "live.duckdb"
    events = make_events(200, seed=5)
    events["text"] = "a" * 28 + "!"
    with Store(db) as store:
        ingest_events_frame(store, events)
        key = create_key(store, "admin")[1]
    (folder / "server.py").write_text(SERVER)
    port = free_port()
    env = {**os.environ, "KM_SCORE_API_TEXT": "false", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(folder / "server.py"), str(db), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, base)
    yield base, key, proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _post_huge(port: int, path: str, size: int, headers: dict[str, str]) -> tuple[bytes, int]:
    """POST ``size`` bytes over a raw socket, as fast as the server takes them; returns (the answer's first
    bytes, how many body bytes the server accepted before it answered and closed)."""
    chunk = b"[" + b" " * (1 << 20 - 1)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode())
        try:
            while sent < size:
                n = s.send(chunk[: min(len(chunk), size - sent)])
                sent += n
        except OSError:  # the server answered and closed: it takes no more
            pass
        s.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                part = s.recv(65536)
                if not part:
                    break
                answer += part
        except OSError:
            pass
    return answer, sent


def test_a_200_mb_post_without_a_key_leaves_the_server_memory_flat(live):
    base, key, proc = live
    port = int(base.rsplit(":", 1)[1])
    server = psutil.Process(proc.pid)
    before = server.memory_info().rss
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        answers = [_post_huge(port, path, 200 << 20, hdrs) for path, hdrs in [
            ("/api/v1/events", {}), ("/api/v1/outcomes", {"X-API-Key": "km_deadbeef_wrong"}),
            ("/cases/x/compensate", {}),
        ]]  # fmt: skip
    finally:
        stop.set()
        t.join()
    grew = (peak - before) / 2**20
    for (answer, sent), status in zip(answers, (b" 401 ", b" 401 ", b" 303 "), strict=True):
        assert status in answer.split(b"\r\n", 1)[0], answer[:200]
        assert sent < 200 << 20, "the server read the whole body"
    assert grew < 50, f"the server's memory grew {grew:.0f} MB on three 200 MB posts without a key"
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200


def test_an_over_cap_body_with_a_valid_key_gets_413_at_once(live):
    base, key, _ = live
    port = int(base.rsplit(":", 1)[1])
    answer, sent = _post_huge(port, "/api/v1/events", 1 << 30, {"X-API-Key": key})
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:300]
    assert b"KM_MAX_INGEST_BYTES" in answer or sent < 1 << 30


def test_health_answers_while_a_back_test_runs(live):
    base, key, _ = live
    playbook = Path(__file__).with_name("test_hardening.py").read_text().split('CATASTROPHIC = """', 1)[1].split('"""')[0]
    done: list[float] = []

    def backtest() -> None:
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/api/v1/playbooks/backtest", content=playbook.encode(), timeout=120,
                       headers={"X-API-Key": key, "content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 200, r.text
        done.append(time.perf_counter() - t0)

    t = threading.Thread(target=backtest)
    t.start()
    slowest = 0.0
    while t.is_alive():
        t0 = time.perf_counter()
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        slowest = max(slowest, time.perf_counter() - t0)
        time.sleep(0.05)
    t.join()
    assert done, "the back-test failed"
    assert slowest < 1.0, f"/health took {slowest:.2f} s during a back-test"
    assert done[0] < 30
