"""Browser tests: a real uvicorn server on loopback over the demo airline, driven by Debian's Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keymoments.testing.servers import free_port, wait_healthy

HERE = Path(__file__).parent
SHOTS = HERE / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip


def _serve(db: Path, *extra: str):  # noqa: ANN202
    """Start ``_server.py`` on ``db`` on a free loopback port; return (process, base URL) once it answers."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "_server.py"), str(db), str(port), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, base)
    return proc, base


def _stop(proc) -> None:  # noqa: ANN001
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _keys(store) -> dict[str, str]:  # noqa: ANN001
    from keymoments.serve.auth import create_key

    return {
        "admin": create_key(store, "admin", name="Alex Manager")[1],
        "analyst": create_key(store, "analyst", name="Ana Lyst")[1],
        "agent": create_key(store, "agent", name="Sam Agent", employee_id="CREW-001")[1],
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The demo airline (1,500 customers, seed 1) with cases from a live playbook pass, served on loopback.

    Yields (base_url, {role: key})."""
    from keymoments.act.library import load_library
    from keymoments.act.runner import PlaybookRunner
    from keymoments.examples import generate_airline
    from keymoments.score.store import score_store
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    db = tmp_path_factory.mktemp("browser") / "demo.duckdb"
    demo = generate_airline(1500, seed=1)
    with Store(db) as store:
        ingest_events_frame(store, demo.events, source="demo")
        ingest_outcomes_frame(store, demo.outcomes, key="customer_id", observed_at="2026-01-01")  # the year's end
        ingest_outcomes_frame(store, demo.customers, key="customer_id", attributes_only=True)
        score_store(store)
        PlaybookRunner(store, load_library(["service-recovery", "unresolved-crisis"])).run_live()
        keys = _keys(store)
    proc, base = _serve(db)
    yield base, keys
    _stop(proc)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """What `keymoments demo` leaves (1,500 customers, seed 1: the library live over the second half, outcomes
    observed at the end), served with the whole library as `keymoments serve` would. Yields (base_url, keys)."""
    from keymoments.cli.demo import run_demo
    from keymoments.store.store import Store

    folder = tmp_path_factory.mktemp("demo-store")
    db = folder / "keymoments.duckdb"
    run_demo(db, customers=1500, seed=1, data_dir=folder / "data", report=None, echo=lambda *_: None)
    with Store(db) as store:
        keys = _keys(store)
    proc, base = _serve(db, "library")
    yield base, keys
    _stop(proc)


@pytest.fixture(scope="session")
def shape_server(tmp_path_factory):
    """``shape_server(name)``: one of tests/shapes' data shapes served on loopback, (base URL, admin key)."""
    import importlib.util

    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    spec = importlib.util.spec_from_file_location("shape_builders", HERE.parent / "shapes" / "builders.py")
    builders = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["shape_builders"] = builders  # its dataclasses look their module up
    spec.loader.exec_module(builders)  # type: ignore[union-attr]
    running: dict[str, tuple[str, str, subprocess.Popen]] = {}

    def get(name: str) -> tuple[str, str]:
        if name not in running:
            db = builders.build(name, tmp_path_factory.mktemp(f"browser-{name}"))
            with Store(db) as store:
                key = create_key(store, "admin", name=f"{name} admin")[1]
            proc, base = _serve(db)
            running[name] = (base, key, proc)
        return running[name][0], running[name][1]

    yield get
    for _, _, proc in running.values():
        _stop(proc)


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module: Playwright's sync API keeps an event loop running in the main thread while
    it is open, which would break every later test that runs asyncio (the NATS client, the hardening checks),
    so it is closed at the end of each module rather than of the session."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (scripts/test does as root)")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Session:
    """A signed-in browser page that records any request leaving loopback (there must be none)."""

    def __init__(self, browser, base: str, key: str, *, viewport: dict | None = None) -> None:  # noqa: ANN001
        self.base = base
        self.context = browser.new_context(viewport=viewport or {"width": 1440, "height": 900})
        self.context.set_default_timeout(60_000)
        self.outside: list[str] = []
        self.errors: list[str] = []

        def guard(route):  # noqa: ANN001, ANN202
            url = route.request.url
            if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
                return route.continue_()
            self.outside.append(url)
            return route.abort()

        self.context.route("**/*", guard)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # the Content-Security-Policy refuses inline script: a page that still had one would log this
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" and "Content Security Policy" in m.text else None)  # fmt: skip
        self.page.goto(f"{base}/login")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("load")

    def open(self, path: str) -> None:
        r = self.page.goto(self.base + path)
        assert r is not None and r.status == 200, f"{path}: HTTP {r.status if r else '?'}"
        self.page.wait_for_load_state("load")

    def charts(self, at_least: int = 1) -> int:
        self.page.wait_for_selector(".js-plotly-plot .main-svg", state="attached")
        n = self.page.locator(".js-plotly-plot").count()
        assert n >= at_least
        return n

    def shot(self, name: str, full_page: bool = True) -> Path:
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        assert not self.outside, f"requests left loopback: {self.outside[:5]}"
        assert not self.errors, f"JavaScript errors: {self.errors[:5]}"
        self.context.close()


def _sessions(browser, server):  # noqa: ANN001, ANN202
    base, keys = server
    made: list[Session] = []

    def make(role: str = "admin", **kw) -> Session:  # noqa: ANN003
        s = Session(browser, base, keys[role], **kw)
        made.append(s)
        return s

    return make, made


@pytest.fixture(scope="module")
def signed_in(server, browser):
    """A factory of signed-in sessions: ``signed_in("agent")``; closed (and checked) at the end."""
    make, made = _sessions(browser, server)
    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def demo_signed_in(demo_server, browser):
    """Signed-in sessions on the store `keymoments demo` leaves (see ``demo_server``)."""
    make, made = _sessions(browser, demo_server)
    yield make
    for s in made:
        s.close()


@pytest.fixture
def browse(browser):
    """``browse(base, key)``: a signed-in Session on any server (closed, and checked, after the test)."""
    made: list[Session] = []

    def make(base: str, key: str, **kw) -> Session:  # noqa: ANN003
        s = Session(browser, base, key, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def serve_db():
    """``serve_db(db)``: serve a store a test module built on loopback, with one key per role; returns
    (base_url, {role: key}). Stopped at the end of the module."""
    from keymoments.store.store import Store

    running: list[subprocess.Popen] = []

    def start(db: Path) -> tuple[str, dict[str, str]]:
        with Store(db) as store:
            keys = _keys(store)
        proc, base = _serve(db)
        running.append(proc)
        return base, keys

    yield start
    for proc in running:
        _stop(proc)


@pytest.fixture(scope="module")
def sessions_on(browser):
    """``sessions_on((base_url, keys), role)``: a signed-in session on a server of ``serve_db``; closed (and
    checked) at the end of the module."""
    made: list[Session] = []

    def make(server: tuple[str, dict[str, str]], role: str = "admin", **kw) -> Session:  # noqa: ANN003
        s = Session(browser, server[0], server[1][role], **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
