"""Every hand-labelled set of bench/data keeps the design / held-out split fixed by bench/splits.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _splits():
    spec = importlib.util.spec_from_file_location("bench_splits", ROOT / "bench" / "splits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_labelled_set_has_its_fixed_split():
    splits = _splits()
    expected = splits.expected_splits()
    labelled = {p.name for p in (ROOT / "bench" / "data").glob("*.csv")}
    assert labelled == set(expected), (
        "a labelled set without a split: add it to bench/splits.py before using it"
    )
    for name, want in expected.items():
        got = pd.read_csv(ROOT / "bench" / "data" / name, dtype=str, keep_default_na=False)["split"].tolist()
        assert got == want, f"{name}: the split column differs from bench/splits.py's rule"
        assert 0.4 < want.count("heldout") / len(want) < 0.6


def test_a_tweet_is_on_the_same_side_in_every_set():
    side: dict[str, str] = {}
    for name in _splits().TWEET_SETS:
        df = pd.read_csv(ROOT / "bench" / "data" / name, dtype=str, keep_default_na=False)
        for tweet_id, split in zip(df["tweet_id"], df["split"], strict=True):
            assert side.setdefault(tweet_id, split) == split, (name, tweet_id)
    more = pd.read_csv(ROOT / "bench" / "data" / "twcs_more_negative_topics.csv", dtype=str)
    assert (
        more["split"]
        == more["batch"].map({"part1": "design", "part2": "design", "part3": "heldout", "part4": "heldout"})
    ).all()
