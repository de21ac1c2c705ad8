"""The design / held-out split of every hand-labelled set in ``bench/data`` (fixed on 2026-12-06).

Each labelled CSV carries a ``split`` column, ``design`` or ``heldout``, computed by the rule below and checked by
``tests/test_bench_splits.py``. Choices (settings, lists, thresholds, thresholds of tests) may look at design rows
only; held-out rows are read only by the final report run (``bench/bench_text_eval.py --heldout``), and each such
read is recorded in ``bench/data/README.md``.

The rule, per row:

- a tweet of ``twcs_more_negative_topics.csv`` (the 593) is ``design`` when its ``batch`` is part1 or part2 and
  ``heldout`` when part3 or part4, in every set that holds it (parts 3-4 were the held-out part before this split);
- any other tweet is ``heldout`` when the SHA-256 of ``"keymoments-heldout-2026-12:tweet:<tweet_id>"``, read as a
  number from its first 8 hex digits, is odd; so a tweet is on the same side in every set that holds it (the 119
  negative tweets are a subset of the 240, the airline reasons label the airline topics' complaints);
- a UCI review sentence is ``heldout`` when the same hash of ``"keymoments-heldout-2026-12:uci-<source>:<line>"`` is
  odd.

Run ``python bench/splits.py`` to (re)write the column; it changes nothing once the column is there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent / "data"
SALT = "keymoments-heldout-2026-12"
DESIGN, HELDOUT = "design", "heldout"

TWEET_SETS = (
    "twcs_inbound_labels.csv",
    "twcs_negative_topics.csv",
    "twcs_more_negative_topics.csv",
    "twcs_more_topics.csv",
    "twcs_airline_topics.csv",
    "twcs_airline_reasons.csv",
)
UCI_SETS = {"uci_yelp_touchpoints.csv": "yelp", "uci_amazon_touchpoints.csv": "amazon"}


def hashed(key: str) -> str:
    """``heldout`` for about half of all keys, ``design`` for the rest, the same on every machine and run."""
    digest = hashlib.sha256(f"{SALT}:{key}".encode()).hexdigest()
    return HELDOUT if int(digest[:8], 16) % 2 else DESIGN


def _batches(data: Path) -> dict[str, str]:
    more = pd.read_csv(data / "twcs_more_negative_topics.csv", dtype=str, keep_default_na=False)
    return dict(zip(more["tweet_id"], more["batch"], strict=True))


def tweet_split(tweet_id: str, batches: dict[str, str]) -> str:
    batch = batches.get(str(tweet_id))
    if batch is not None:
        return DESIGN if batch in ("part1", "part2") else HELDOUT
    return hashed(f"tweet:{tweet_id}")


def expected_splits(data: Path = DATA) -> dict[str, list[str]]:
    """Per labelled file of ``data``: the split of each row, in the file's order."""
    batches = _batches(data)
    out = {}
    for name in TWEET_SETS:
        ids = pd.read_csv(data / name, dtype=str, keep_default_na=False)["tweet_id"]
        out[name] = [tweet_split(t, batches) for t in ids]
    for name, source in UCI_SETS.items():
        lines = pd.read_csv(data / name, dtype=str, keep_default_na=False)["line"]
        out[name] = [hashed(f"uci-{source}:{int(line)}") for line in lines]
    return out


def design(df: pd.DataFrame) -> pd.DataFrame:
    """The design rows of a labelled set read from ``bench/data``."""
    return df[df["split"] == DESIGN]


def heldout(df: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows: for the final report run only."""
    return df[df["split"] == HELDOUT]


def main() -> int:
    for name, splits in expected_splits().items():
        path = DATA / name
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df["split"] = splits
        df.to_csv(path, index=False, lineterminator="\n")
        counts = df["split"].value_counts().to_dict()
        print(f"{name}: {len(df)} rows, design {counts.get(DESIGN, 0)}, held-out {counts.get(HELDOUT, 0)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
