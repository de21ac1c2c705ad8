"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"


@pytest.fixture
def store(tmp_path):
    from keymoments.store.store import Store

    s = Store(tmp_path / "km.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Small subsets of real public data that the tests carry (tests/data/SOURCES.md; scripts/make_test_data.py)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def airline_complaints(test_data: Path):
    """The real complaints to airlines of the design split of bench/data/twcs_airline_topics.csv (106 of the 213),
    with their touchpoint on the demo's airline journey (columns tweet_id, text, topic). Tests never read the
    held-out rows (bench/data/README.md)."""
    import pandas as pd

    labels = pd.read_csv(ROOT / "bench" / "data" / "twcs_airline_topics.csv", dtype=str, keep_default_na=False)
    tweets = pd.read_csv(test_data / "twcs_sample.csv", lineterminator="\n", dtype={"tweet_id": str})
    complaints = labels[(labels["complaint"] == "yes") & (labels["split"] == "design")][["tweet_id", "topic"]]
    return complaints.merge(tweets[["tweet_id", "text"]], on="tweet_id", validate="one_to_one")


@pytest.fixture
def fail_writes_of(monkeypatch):
    """``fail_writes_of(customer)``: from then on, writing a batch (or group) that holds ``customer``'s events
    fails after its rows went in, as a full disk would (an OSError)."""
    from keymoments.store import writer

    real = writer.insert_with_derived

    def arm(customer: str) -> None:
        def insert(con, rows, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            written = real(con, rows, *args, **kwargs)
            if con.execute(f"SELECT count(*) FROM {rows} WHERE customer_id = ?", [customer]).fetchall()[0][0]:
                raise OSError("No space left on device")
            return written

        monkeypatch.setattr(writer, "insert_with_derived", insert)

    return arm
