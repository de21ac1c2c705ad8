"""The data-shape matrix: one store per shape (see shapes.py), built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .builders import build


@pytest.fixture(scope="session")
def shape_db(tmp_path_factory):
    """``shape_db(name)``: the path of that shape's store (built on first use, then shared read-only)."""
    root = tmp_path_factory.mktemp("shapes")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build(name, root / name)
        return built[name]

    return get


@pytest.fixture
def shape_copy(shape_db, tmp_path):
    """``shape_copy(name)``: a private copy of a shape's store, for commands that write."""

    def get(name: str) -> Path:
        dst = tmp_path / f"{name}.duckdb"
        shutil.copyfile(shape_db(name), dst)
        return dst

    return get


@pytest.fixture
def km(capsys, monkeypatch, tmp_path):
    """Run `keymoments ARGS` in-process from tmp_path: (exit code, stdout, stderr). A traceback fails the test."""
    from keymoments.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # what came before (a shape being built) is not this command's output
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    run.json = lambda *a: json.loads(run(*a, "--json")[1])  # type: ignore[attr-defined]
    return run





@pytest.fixture
def dashboard(shape_copy):
    """``dashboard(name)``: a TestClient of the app over a copy of that shape's store, signed in as an admin."""
    from fastapi.testclient import TestClient

    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    opened: list = []

    def get(name: str):  # noqa: ANN202
        store = Store(shape_copy(name))
        key = create_key(store, "admin", name="shapes admin")[1]
        client = TestClient(create_app(store), raise_server_exceptions=False)
        client.headers["X-API-Key"] = key
        opened.append((client, store))
        return client

    yield get
    for client, store in opened:
        client.close()
        store.close()
