"""Fixtures of the API tests: a demo store built once per session, copied for each module that writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def build_demo_db(path: Path, customers: int = 1500, seed: int = 1) -> Path:
    """A store with the demo airline: events, outcomes, customer attributes, scored text."""
    from keymoments.examples import generate_airline
    from keymoments.score.store import score_store
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    demo = generate_airline(customers, seed=seed)
    with Store(path) as store:
        ingest_events_frame(store, demo.events, source="demo")
        ingest_outcomes_frame(store, demo.outcomes, key="customer_id", observed_at="2026-01-01")  # the year's end
        ingest_outcomes_frame(store, demo.customers, key="customer_id", attributes_only=True)
        score_store(store)
    return path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """The demo airline with 1,500 customers (seed 1)."""
    return build_demo_db(tmp_path_factory.mktemp("demo") / "demo.duckdb")


@pytest.fixture(scope="session")
def small_demo_db(tmp_path_factory) -> Path:
    """The demo airline with 300 customers (seed 2): quick to run playbooks over."""
    return build_demo_db(tmp_path_factory.mktemp("small") / "small.duckdb", customers=300, seed=2)


class Api:
    """A TestClient over a fresh copy of the demo store, with one key per role."""

    def __init__(self, db: Path) -> None:
        from fastapi.testclient import TestClient

        from keymoments.serve.app import create_app
        from keymoments.serve.auth import create_key
        from keymoments.store.store import Store

        self.store = Store(db)
        self.keys = {role: create_key(self.store, role, name=f"test {role}", employee_id="E001" if role == "agent" else None)[1]
                     for role in ("admin", "analyst", "agent")}  # fmt: skip
        self.app = create_app(self.store)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def get(self, path: str, role: str = "admin", **kw):  # noqa: ANN003, ANN201
        return self.client.get(path, headers={**self.headers(role), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, role: str = "admin", **kw):  # noqa: ANN003, ANN201
        return self.client.post(path, headers={**self.headers(role), **kw.pop("headers", {})}, **kw)

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture(scope="module")
def api(demo_db, tmp_path_factory):
    db = tmp_path_factory.mktemp("api") / "api.duckdb"
    shutil.copyfile(demo_db, db)
    a = Api(db)
    yield a
    a.close()


@pytest.fixture
def empty_api(tmp_path):
    a = Api(tmp_path / "empty.duckdb")
    yield a
    a.close()


@pytest.fixture(scope="session")
def api_class() -> type[Api]:
    return Api
