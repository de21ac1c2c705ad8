#!/usr/bin/env python3
"""Build ``tests/data/`` (the real data the tests carry) from ``../shared/data``; see ``tests/data/SOURCES.md``.

Run from anywhere: ``.venv/bin/python scripts/make_test_data.py [--shared ../shared/data]``. The output is
deterministic (the same bytes on every run) and committed, so the test suite needs no folder beside the repository.
Each subset keeps whole rows exactly as published (the bytes of each CSV record, quirks included), chosen by
position or by the ids the tests and their fixtures name, never by content:

- ``twcs_sample.csv``: records of ``twcs_head5000.csv``: the first 1,500, the 1,200 tweets of
  ``training/data/twcs_train_labels.csv`` (``learn-text``'s rated text), the airline complaints of the design split
  of ``bench/data/twcs_airline_topics.csv`` and tweet 3399 (two bare carriage returns in an unquoted field), in the
  file's order;
- ``uci_sentiment_labelled_sentences/``: the three UCI files and their readme, whole (3 x 1,000 sentences);
- ``Helpdesk.xes.gz``: the Helpdesk log, whole (the golden journey test compares it with pm4py's graph);
  ``Helpdesk_events_first600.csv``: the flat CSV export's rows of the first 600 cases, whole cases;
- ``telco_churn_sample.csv``: the first 1,000 customers of the IBM telco churn table, plus the customers whose
  ``TotalCharges`` is blank (11), in the file's order.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data"
TWCS_HEAD = 1500
HELPDESK_CASES = 600
TELCO_HEAD = 1000
BROKEN_TWEET = "3399"


def csv_records(raw: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the records of a CSV file as bytes, each with its ending newline, split on the newlines
    outside double quotes (a field may hold newlines when quoted, and a bare carriage return when not)."""
    records, start, quoted = [], 0, False
    for i, byte in enumerate(raw):
        if byte == 0x22:  # '"': doubled quotes inside a quoted field toggle twice
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            records.append(raw[start : i + 1])
            start = i + 1
    if start < len(raw):
        records.append(raw[start:])
    return records[0], records[1:]


def _read_twcs(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), lineterminator="\n", dtype=str, keep_default_na=False)


def twcs_sample(shared: Path) -> bytes:
    raw = (shared / "support_journeys" / "twcs_head5000.csv").read_bytes()
    header, records = csv_records(raw)
    full = _read_twcs(raw)
    assert len(full) == len(records), "the record splitter disagrees with pandas"
    labels = pd.read_csv(ROOT / "training" / "data" / "twcs_train_labels.csv", dtype=str)
    airline = pd.read_csv(
        ROOT / "bench" / "data" / "twcs_airline_topics.csv", dtype=str, keep_default_na=False
    )
    airline = airline[(airline["complaint"] == "yes") & (airline["split"] == "design")]
    wanted = set(labels["tweet_id"]) | set(airline["tweet_id"]) | {BROKEN_TWEET}
    keep = [i for i, tweet_id in enumerate(full["tweet_id"]) if i < TWCS_HEAD or tweet_id in wanted]
    missing = wanted - set(full["tweet_id"].iloc[keep])
    assert not missing, f"tweets not in the head: {sorted(missing)[:5]}"
    out = header + b"".join(records[i] for i in keep)
    # the subset reads as the same rows as the full file's
    pd.testing.assert_frame_equal(_read_twcs(out), full.iloc[keep].reset_index(drop=True))
    return out


def helpdesk_csv(shared: Path) -> bytes:
    raw = (shared / "support_journeys" / "Helpdesk_events.csv").read_bytes()
    header, records = csv_records(raw)
    full = pd.read_csv(io.BytesIO(raw), dtype=str)
    assert len(full) == len(records)
    cases = full["case:concept:name"].drop_duplicates().head(HELPDESK_CASES)
    keep = [i for i, case in enumerate(full["case:concept:name"]) if case in set(cases)]
    return header + b"".join(records[i] for i in keep)


def telco_sample(shared: Path) -> bytes:
    raw = (shared / "churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv").read_bytes()
    header, records = csv_records(raw)
    full = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    assert len(full) == len(records)
    blank = full["TotalCharges"].str.strip() == ""
    keep = [i for i in range(len(full)) if i < TELCO_HEAD or blank.iloc[i]]
    return header + b"".join(records[i] for i in keep)


def build(shared: Path, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "twcs_sample.csv": twcs_sample(shared),
        "Helpdesk_events_first600.csv": helpdesk_csv(shared),
        "telco_churn_sample.csv": telco_sample(shared),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    shutil.copyfile(shared / "support_journeys" / "Helpdesk.xes.gz", out / "Helpdesk.xes.gz")
    uci_src = shared / "sentiment_corpora" / "uci_sentiment_labelled_sentences"
    uci_out = out / "uci_sentiment_labelled_sentences"
    uci_out.mkdir(exist_ok=True)
    for name in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt", "readme.txt"):
        shutil.copyfile(uci_src / name, uci_out / name)
    return {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shared", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not args.shared.is_dir():
        print(
            f"{args.shared} is missing: this script needs the shared data folder beside the repository",
            file=sys.stderr,
        )
        return 2
    sizes = build(args.shared, args.out)
    for name, size in sizes.items():
        print(f"{size:>9,}  {name}")
    print(f"{sum(sizes.values()):>9,}  in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
