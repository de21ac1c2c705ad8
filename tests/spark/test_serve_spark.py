"""`serve --engine spark` and `report --engine spark`: the API, the dashboard and the report read every analysis
from Spark and show what the embedded engine shows.

The Spark side's DuckDB file holds the demo's outcomes, attributes and keys but *no events*: the events are only
in its Parquet dataset, so an answer that leaked from the DuckDB file instead of Spark would differ (or fail).
The Spark app is built by the real CLI path (`keymoments serve --engine spark …`, with uvicorn.run caught).
"""

from __future__ import annotations

import re
import shutil
import threading
import time

import pytest

from keymoments.testing.compare import same

#: every analysis route with the parameters the comparison asks of it
ROUTES = {
    "journey": {},
    "moments": {"outcome": "retained", "n_boot": 200},
    "peak-end": {"outcome": "retained"},
    "segments": {},
    "recovery": {"outcome": "retained"},
    "milestones": {"outcome": "retained"},
    "recognition": {},
    "roadmap": {"outcome": "retained"},
}


@pytest.fixture(scope="module")
def folder(demo, spark, tmp_path_factory, make_duckdb_store):
    """duck.duckdb: the demo in DuckDB; spark.duckdb: its outcomes and attributes only, its events in
    spark.events (the Parquet dataset); an admin key in each; report-*.duckdb: copies of both."""
    from keymoments.serve.auth import create_key
    from keymoments.store.spark import write_events_dataset
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame

    folder = tmp_path_factory.mktemp("serve")
    keys = {}
    with make_duckdb_store(folder / "duck.duckdb", demo=demo) as duck:
        write_events_dataset(duck, folder / "spark.events")
        keys["duckdb"] = create_key(duck, "admin", name="admin")[1]
    with Store(folder / "spark.duckdb") as s:
        ingest_outcomes_frame(s, demo.outcomes)
        ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]])
        keys["spark"] = create_key(s, "admin", name="admin")[1]
        assert s.count("events") == 0
    for name in ("duck", "spark"):  # the report's own copies: the apps below hold the stores open for writing
        shutil.copyfile(folder / f"{name}.duckdb", folder / f"report-{name}.duckdb")
    return folder, keys


@pytest.fixture(scope="module")
def apps(folder, cli):
    """{engine: (TestClient, key)}: the DuckDB app, and the Spark app as `keymoments serve --engine spark` builds it
    (neither scores text: a DuckDB server would score the store's unscored text when it starts)."""
    import uvicorn
    from fastapi.testclient import TestClient

    from keymoments.config import Settings
    from keymoments.serve.app import create_app
    from keymoments.store.store import Store

    path, keys = folder
    built = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KM_SCORE_API_TEXT", "false")
        mp.setattr(uvicorn, "run", lambda app, **kw: built.setdefault("app", app))
        code = cli("serve", "--db", str(path / "spark.duckdb"), "--engine", "spark", "--events",
                   str(path / "spark.events"), "--conf", "spark.sql.shuffle.partitions=2", "--no-admin-key")  # fmt: skip
        assert code == 0 and "app" in built  # the CLI built the app and handed it to uvicorn
    duck = Store(path / "duck.duckdb")
    clients = {
        "duckdb": (TestClient(create_app(duck, Settings(score_api_text=False))), keys["duckdb"]),
        "spark": (TestClient(built["app"]), keys["spark"]),
    }
    yield clients
    for c, _ in clients.values():
        c.close()
    built["app"].state.km.store.close()
    duck.close()


def get(apps, engine, path, **params):
    client, key = apps[engine]
    return client.get(path, params=params, headers={"X-API-Key": key})


def test_the_cli_serves_the_events_on_spark(apps):
    from keymoments.store.spark import SparkStore

    r = get(apps, "spark", "/health")
    assert r.status_code == 200 and r.json()["engine"] == "spark"
    assert get(apps, "duckdb", "/health").json()["engine"] == "duckdb"
    store = apps["spark"][0].app.state.km.store
    assert isinstance(store, SparkStore) and store.events_path.name == "spark.events"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ROUTES))
def test_each_analysis_route_on_spark_equals_duckdb(apps, name):
    answers = {}
    for engine in apps:
        r = get(apps, engine, f"/api/v1/analyses/{name}", **ROUTES[name])
        assert r.status_code == 200, f"{engine}: {r.text[:500]}"
        answers[engine] = r.json()
    same(answers["duckdb"], answers["spark"])
    if name == "journey":
        assert answers["spark"]["events"] > 1000  # read from the dataset: the Spark side's DuckDB file has none


@pytest.mark.slow
def test_a_filtered_route_on_spark_equals_duckdb(apps):
    q = {"segment": "tier=gold", "channel": "app", "since": "2025-03-01", "until": "2025-09-01"}
    duck, spark = (get(apps, e, "/api/v1/analyses/journey", **q).json() for e in ("duckdb", "spark"))
    assert 0 < duck["events"] < 1000
    same(duck, spark)


def test_a_backtest_through_the_api_on_spark_equals_duckdb(apps):
    """POST /playbooks/backtest on a Spark server runs the playbooks on Spark (per customer, budgets replayed on the
    driver) and decides what the DuckDB server decides on the same events."""
    answers = {}
    for engine, (client, key) in apps.items():
        r = client.post("/api/v1/playbooks/backtest", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        answers[engine] = {k: v for k, v in r.json().items() if k not in ("run_id", "seconds", "events_per_second")}
    assert answers["spark"]["decisions"] > 0
    same(answers["spark"], answers["duckdb"])


def _text(html: str) -> list[str]:
    """The text a page or report shows, without scripts, styles, chart divs' ids and the time it was made."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    html = re.sub(r"(Generated|data as of) \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)
    return [t.strip() for t in re.sub(r"<[^>]+>", "\n", html).split("\n") if t.strip()]


@pytest.mark.slow
def test_the_touchpoint_page_reads_its_comments_on_spark(apps):
    """The drill-down page reads the worst and best comments straight from the events: on Spark too."""
    pages = {}
    for engine in apps:
        client, key = apps[engine]
        r = client.get("/journey/check-in", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text[:500]
        pages[engine] = _text(r.text)
    assert pages["duckdb"] == pages["spark"]
    assert any("check-in" in t for t in pages["spark"])


@pytest.mark.slow
def test_the_report_on_spark_shows_the_same_numbers(folder, tmp_path, cli):
    path, _ = folder
    assert cli("report", "--db", str(path / "report-duck.duckdb"), "--out", str(tmp_path / "duck.html")) == 0
    assert cli("report", "--db", str(path / "report-spark.duckdb"), "--engine", "spark", "--events",
               str(path / "spark.events"), "--out", str(tmp_path / "spark.html")) == 0  # fmt: skip
    duck, spark = (_text((tmp_path / f"{e}.html").read_text()) for e in ("duck", "spark"))
    numbers = [t for t in duck if re.search(r"\d", t)]
    assert len(numbers) > 100  # the tables and headline figures are compared, not an empty page
    assert duck == spark
    assert "Not available on this data" not in " ".join(spark) and "section failed" not in " ".join(spark)


# -- ingest and what a Spark server refuses ---------------------------------------------------------------
EVENTS = [
    {"customer_id": "c1", "ts": "2025-01-01T10:00:00Z", "touchpoint": "booking", "rating": 5, "rating_scale": "csat5"},
    {"customer_id": "c1", "ts": "2025-01-02T10:00:00Z", "touchpoint": "check-in", "rating": 2, "rating_scale": "csat5"},
    {"customer_id": "c2", "ts": "not a time", "touchpoint": "booking"},
]


@pytest.fixture(scope="module")
def fresh(spark, tmp_path_factory):
    """A Spark server over an empty store and no dataset yet (as after `keymoments serve --engine spark` on a
    new store), and its admin key."""
    from fastapi.testclient import TestClient

    from keymoments.config import Settings
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.spark import SparkStore

    store = SparkStore(tmp_path_factory.mktemp("fresh") / "km.duckdb", session=spark)
    key = create_key(store, "admin", name="admin")[1]
    client = TestClient(create_app(store, Settings(score_api_text=False)))
    yield client, key, store
    client.close()
    store.close()


@pytest.mark.slow
def test_posted_events_are_appended_to_the_spark_dataset(fresh):
    client, key, store = fresh
    h = {"X-API-Key": key}
    r = client.get("/api/v1/analyses/journey", headers=h)
    assert r.status_code == 404 and "ingest --engine spark" in r.json()["error"]
    r = client.post("/api/v1/events", json=EVENTS, headers=h)
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["accepted"], a["duplicates"], a["rejected"], a["batch_id"]) == (2, 0, 1, 1)
    assert a["rejects"][0]["row"] == 3 and "ts" in a["rejects"][0]["reason"]
    assert store.events_path.exists() and store.count("events") == 2
    assert store.query("SELECT count(*) AS n FROM events")["n"][0] == 0  # nothing went to the DuckDB file
    j = client.get("/api/v1/analyses/journey", headers=h).json()
    assert (j["events"], j["customers"]) == (2, 1)
    again = client.post("/api/v1/events", json=EVENTS[:2], headers=h).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)  # idempotent on event_id
    more = [{**EVENTS[0], "customer_id": "c3"}]
    b = client.post("/api/v1/events", json=more, headers=h).json()
    assert (b["accepted"], b["batch_id"]) == (1, 2)
    j = client.get("/api/v1/analyses/journey", headers=h).json()  # the cache saw the dataset change
    assert (j["events"], j["customers"]) == (3, 2)


@pytest.mark.slow
def test_a_case_shows_the_customers_journey_read_on_spark(fresh):
    from datetime import UTC, datetime, timedelta

    from keymoments.store import act_tables

    client, key, store = fresh
    h = {"X-API-Key": key}
    assert client.post("/api/v1/events", json=EVENTS[:2], headers=h).status_code == 200  # new, or duplicates
    journey = store.events_frame().where("customer_id = 'c1'").select("journey_id").first()[0]
    now = datetime.now(UTC)
    case = {"case_id": "k-spark", "playbook": "service-recovery", "customer_id": "c1", "journey_id": journey,
            "status": "open", "priority": 1, "reason": "a crisis", "trigger_event_ids": [], "opened_at": now,
            "sla_due_at": now + timedelta(days=1), "updated_at": now}  # fmt: skip
    with store.write() as con:
        act_tables.insert_case(con, case)
    body = client.get("/api/v1/cases/k-spark", headers=h).json()
    assert [e["touchpoint"] for e in body["journey"]] == ["booking", "check-in"]  # the DuckDB file has no events
    assert "events are on Spark" in body["journey_note"]
    page = client.get("/cases/k-spark", headers=h)
    assert page.status_code == 200 and 'id="journey-note"' in page.text and "check-in" in page.text


@pytest.mark.slow
def test_a_spark_server_refuses_what_it_cannot_do_and_says_why(fresh, spark):
    from fastapi.testclient import TestClient

    from keymoments.config import Settings
    from keymoments.serve.app import create_app
    from keymoments.store.spark import SparkStore

    client, key, store = fresh
    h = {"X-API-Key": key}
    r = client.post("/api/v1/playbooks/run", headers=h)
    assert r.status_code == 422 and "not available on a server whose events are on Spark" in r.json()["error"]
    spark.createDataFrame([("c1", "2025-01-01 10:00:00", "booking")], "customer_id string, ts string, "
                          "touchpoint string").createOrReplaceTempView("served_lake")  # fmt: skip
    over_table = SparkStore(store.path, table="served_lake", session=spark)
    with TestClient(create_app(over_table, Settings(score_api_text=False))) as c:
        r = c.post("/api/v1/events", json=EVENTS[:1], headers=h)
        assert r.status_code == 422 and "does not write" in r.json()["error"]
    assert spark.table("served_lake").count() == 1


def test_serve_on_spark_keeps_the_operational_store_on_postgresql(folder, cli, tmp_path, monkeypatch, capsys):
    """With KM_DATABASE_URL the keys (and cases, budgets…) of a Spark server are on PostgreSQL, as on DuckDB."""
    import os
    import uuid

    import psycopg
    import uvicorn
    from fastapi.testclient import TestClient

    url = os.environ.get("KM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"km_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    built = {}
    monkeypatch.setenv("KM_DATABASE_URL", url)
    monkeypatch.setenv("KM_DATABASE_SCHEMA", schema)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: built.setdefault("app", app))
    try:
        assert cli("serve", "--db", str(tmp_path / "km.duckdb"), "--engine", "spark", "--events",
                   str(folder[0] / "spark.events")) == 0  # fmt: skip
        key = re.search(r"km_\S+", capsys.readouterr().out).group(0)  # the first admin key, printed once
        state = built["app"].state.km
        assert state.engine == "spark" and state.store.ops.kind == "postgresql"
        c = TestClient(built["app"])  # no lifespan: nothing is warmed in the background
        h = c.get("/health").json()
        assert (h["engine"], h["operational_store"]) == ("spark", "postgresql")
        assert c.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 200
        with psycopg.connect(url) as conn:  # the key is in PostgreSQL, not in the DuckDB file
            assert conn.execute(f'SELECT count(*) FROM "{schema}".api_keys').fetchone()[0] == 1
    finally:
        if "app" in built:
            built["app"].state.km.store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_serve_refuses_a_broker_on_spark(tmp_path, cli, monkeypatch, capsys):
    monkeypatch.setenv("KM_BROKER", "nats://127.0.0.1:4222/km-test")
    assert cli("serve", "--db", str(tmp_path / "km.duckdb"), "--engine", "spark") == 2
    assert "KM_BROKER with --engine spark" in capsys.readouterr().err
    assert not (tmp_path / "km.duckdb").exists()  # refused before the store was opened


def test_serve_refuses_several_workers_on_spark(tmp_path, capsys, cli):
    assert cli("serve", "--db", str(tmp_path / "km.duckdb"), "--engine", "spark", "--workers", "2") == 2
    assert "--workers above 1 is for the DuckDB engine" in capsys.readouterr().err


# -- the dashboard in a browser ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(apps):
    """Both apps on loopback (uvicorn in threads of this process: the Spark app keeps the suite's one session)."""
    import socket

    import uvicorn

    servers, bases = [], {}
    for engine, (client, key) in apps.items():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True, name=f"km-{engine}").start()
        servers.append(server)
        bases[engine] = (f"http://127.0.0.1:{port}", key)
    deadline = time.monotonic() + 30
    while not all(s.started for s in servers):
        assert time.monotonic() < deadline, "the servers did not start"
        time.sleep(0.1)
    yield bases
    for s in servers:
        s.should_exit = True


@pytest.fixture(scope="module")
def chromium():
    """Chromium for this module only (Playwright's sync API holds an event loop while it is open)."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: install Debian's chromium package (scripts/test does as root)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.mark.slow
@pytest.mark.browser
def test_the_journey_page_shows_the_same_figures_on_spark(served, chromium):
    shown = {}
    for engine, (base, key) in served.items():
        context = chromium.new_context()
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        r = page.goto(f"{base}/journey")
        assert r is not None and r.status == 200
        page.wait_for_selector(".js-plotly-plot .main-svg", state="attached")  # the chart is drawn
        shown[engine] = {
            "title": page.locator("h1").inner_text(),
            "rows": page.locator("table.data tbody tr").all_inner_texts(),
            "touchpoints": page.locator("a.tp").all_inner_texts(),
            "facts": page.locator(".card-head .muted").all_inner_texts(),  # overall valence, events
            # the filter bar's choices, read from the events on Spark as well
            "channels": page.locator("select[name=channel] option").all_inner_texts(),
        }
        context.close()
    assert shown["duckdb"]["title"] == "Journey map"
    assert len(shown["duckdb"]["rows"]) > 10 and len(shown["duckdb"]["touchpoints"]) > 5
    assert any("overall valence" in f and "events" in f for f in shown["duckdb"]["facts"])
    assert len(shown["duckdb"]["channels"]) > 2 and "All channels" in shown["duckdb"]["channels"]
    assert shown["spark"] == shown["duckdb"]


@pytest.mark.slow
def test_concurrent_requests_on_a_spark_server_get_the_answers_one_at_a_time_gets(apps):
    """Several requests at once on one Spark session (uvicorn runs sync routes in a thread pool): every answer is
    the one the DuckDB server gives, none fails."""
    from concurrent.futures import ThreadPoolExecutor

    names = ["journey", "segments", "recovery", "peak-end"] * 2
    want = {n: get(apps, "duckdb", f"/api/v1/analyses/{n}", **ROUTES[n]).json() for n in set(names)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda n: (n, get(apps, "spark", f"/api/v1/analyses/{n}", **ROUTES[n])), names))
    for n, r in got:
        assert r.status_code == 200, f"{n}: {r.text[:300]}"
        same(want[n], r.json())
