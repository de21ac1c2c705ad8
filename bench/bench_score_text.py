"""Throughput of the lexicon text scorer on 20,000 real texts; prints texts per second.

The texts: all 5,000 tweets of twcs_head5000.csv (customer support on Twitter), the 3,000 UCI review
sentences (Amazon, IMDb, Yelp) and the first 12,000 SST-2 training sentences (movie reviews) to make 20,000
real, mostly distinct texts. Compared: VADER's own ``polarity_scores`` loop (the reference), our scorer with
and without the in-batch dedupe, and ``score_text_file`` end to end on the twcs file (read, score, write).
Times are the best of ``--repeat`` runs in CPU seconds of this (single-threaded) process, so other work on
the machine disturbs them less than wall time would.

Run: ``.venv/bin/python bench/bench_score_text.py [--data ../shared/data] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from keymoments.score import LexiconScorer, score_text_file

REPO = Path(__file__).resolve().parents[1]


def load_texts(data: Path, n: int = 20_000) -> list[str]:
    twcs = data / "support_journeys" / "twcs_head5000.csv"
    texts = pd.read_csv(twcs, lineterminator="\n", dtype=str, keep_default_na=False)["text"].tolist()
    uci = data / "sentiment_corpora" / "uci_sentiment_labelled_sentences"
    for name in ("amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"):
        lines = (uci / name).read_text(encoding="utf-8").splitlines()
        texts += [line.rsplit("\t", 1)[0].strip() for line in lines if line.strip()]
    sst2 = pd.read_csv(data / "sentiment_corpora" / "sst2_train_subset30k.tsv", sep="\t", quoting=3)
    texts += sst2["sentence"].astype(str).tolist()[: max(0, n - len(texts))]
    return texts[:n]


def best_of(repeat: int, fn) -> float:
    """The least CPU time of ``repeat`` runs: steadier than wall time on a shared machine (one thread only)."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    texts = load_texts(args.data)
    n = len(texts)
    print(
        f"keymoments bench: lexicon text scoring on {platform.python_implementation()} {platform.python_version()}"
    )
    print(f"  {n:,} real texts, {len(set(texts)):,} distinct, mean {sum(map(len, texts)) / n:.0f} characters")

    reference = SentimentIntensityAnalyzer()
    LexiconScorer().score(texts[:100])  # build the shared analyzer outside the timing
    rows = [
        (
            "vaderSentiment polarity_scores loop",
            best_of(args.repeat, lambda: [reference.polarity_scores(t) for t in texts]),
        ),
        (
            "LexiconScorer(dedupe=False).score",
            best_of(args.repeat, lambda: LexiconScorer(dedupe=False).score(texts)),
        ),
        ("LexiconScorer().score", best_of(args.repeat, lambda: LexiconScorer().score(texts))),
    ]
    base = rows[0][1]
    for label, seconds in rows:
        print(f"  {label:<38} {n / seconds:>10,.0f} texts/s  ({seconds:.3f} s, x{base / seconds:.2f})")

    twcs = args.data / "support_journeys" / "twcs_head5000.csv"
    with tempfile.TemporaryDirectory() as tmp:
        seconds = best_of(args.repeat, lambda: score_text_file(twcs, out=Path(tmp) / "twcs.scored.csv"))
    print(
        f"  {'score_text_file twcs (read+score+write)':<38} {5000 / seconds:>10,.0f} rows/s   ({seconds:.3f} s)"
    )


if __name__ == "__main__":
    main()
