"""Fixtures for the score tests: real text from tests/data (the ``test_data`` fixture of tests/)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def twcs_path(test_data: Path) -> Path:
    """2,376 records of Kaggle's "Customer Support on Twitter" head, as published (the first 1,500 among them)."""
    return test_data / "twcs_sample.csv"


@pytest.fixture(scope="session")
def twcs_texts(twcs_path: Path) -> list[str]:
    return pd.read_csv(twcs_path, lineterminator="\n", dtype=str, keep_default_na=False)["text"].tolist()


@pytest.fixture(scope="session")
def uci_sentences(test_data: Path) -> list[str]:
    folder = test_data / "uci_sentiment_labelled_sentences"
    out = []
    for name in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(line.rsplit("\t", 1)[0].strip())  # imdb has literal quotes: split on the last TAB
    return out
