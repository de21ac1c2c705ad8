"""Fixtures the analysis tests share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_store_at():
    """``demo_store_at(folder, demo)``: a store at ``folder/km.duckdb`` holding a demo's events and outcomes
    (close it when done)."""
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    def make(folder, demo):
        s = Store(folder / "km.duckdb")
        ingest_events_frame(s, demo.events)
        ingest_outcomes_frame(s, demo.outcomes)
        return s

    return make
