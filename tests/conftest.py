"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    from keymoments.store.store import Store

    s = Store(tmp_path / "km.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing (CI clones the repo with shared/ beside it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def airline_complaints(shared_data: Path):
    """The 213 real complaints to airlines of bench/data, with their touchpoint on the demo's airline journey
    (columns tweet_id, text, topic)."""
    import pandas as pd

    labels = pd.read_csv(ROOT / "bench" / "data" / "twcs_airline_topics.csv", dtype=str, keep_default_na=False)
    tweets = pd.read_csv(shared_data / "support_journeys" / "twcs_head5000.csv", lineterminator="\n", dtype={"tweet_id": str})
    complaints = labels[labels["complaint"] == "yes"][["tweet_id", "topic"]]
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
