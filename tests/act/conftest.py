"""Fixtures of the act tests: a store with hand-written events, and event tuples for the pure engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from keymoments.act.engine import event_tuple
from keymoments.store.store import Store

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday


def ev(customer: str, hours: float, touchpoint: str = "flight", **kw):
    """One event dict, ``hours`` after T0."""
    d = {"customer_id": customer, "ts": T0 + timedelta(hours=hours), "touchpoint": touchpoint}
    d.update(kw)
    return d


def tuples(events: list[dict]) -> list[tuple]:
    return [event_tuple(e, seq=i + 1) for i, e in enumerate(events)]


def load_events(store: Store, events: list[dict], *, ts_range: str | None = None) -> None:
    """Ingest event dicts through the store's real writer (``ts_range="any"`` lets in dates outside 1990 to next
    year, which ingest otherwise refuses as misread)."""
    from keymoments.ingest.files import frame_source
    from keymoments.store.writer import ingest_source

    df = pd.DataFrame(events)
    if "valence" in df.columns:  # the contract carries valence as a rating on the 'valence' scale
        df["rating"] = df.pop("valence")
        df["rating_scale"] = df["rating"].map(lambda v: None if pd.isna(v) else "valence")
    ingest_source(store, frame_source(df, name="frame", ts_range=ts_range))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "km.duckdb")
    yield s
    s.close()


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run `keymoments ARGS` in-process from tmp_path; return (exit code, stdout, stderr)."""
    import json

    from keymoments.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    run.json = lambda *a: json.loads(run(*a, "--json")[1])  # type: ignore[attr-defined]
    return run
