"""Readers for the public corpora in ``../shared/data`` used to train and evaluate the text models.

Each reader returns ``(texts, labels)`` with labels 0 = negative, 1 = neutral, 2 = positive (the order of
``keymoments.score.base.SENTIMENTS``). Shared by ``training/train_text_head.py`` and ``bench/bench_text_eval.py``;
an embedding cache keyed by corpus name and encoder keeps reruns fast.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("KM_SHARED_DATA", ROOT.parent / "shared" / "data"))
SENT = DATA / "sentiment_corpora"
UCI = SENT / "uci_sentiment_labelled_sentences"
TWCS = DATA / "support_journeys" / "twcs_head5000.csv"
BENCH_LABELS = ROOT / "bench" / "data" / "twcs_inbound_labels.csv"
EMB_CACHE = ROOT / ".cache" / "embeddings"

NEG, NEU, POS = 0, 1, 2


def sst2(split: str) -> tuple[list[str], np.ndarray]:
    """SST-2: 'train' (30k subset), 'dev' or 'test'; binary labels mapped to 0 / 2."""
    name = {"train": "sst2_train_subset30k.tsv", "dev": "sst2_dev.tsv", "test": "sst2_test_labeled.tsv"}[split]
    df = pd.read_csv(SENT / name, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    text_col = "sentence" if "sentence" in df.columns else "content"
    return df[text_col].astype(str).tolist(), np.where(df["label"].astype(int) == 1, POS, NEG)


def uci(source: str) -> tuple[list[str], np.ndarray]:
    """UCI sentiment labelled sentences: 'amazon', 'imdb' or 'yelp' (split on the last TAB or space)."""
    fname = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}[source]
    texts, labels = [], []
    for line in (UCI / fname).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.rstrip()
        if not line:
            continue
        cut = max(line.rfind("\t"), line.rfind(" "))
        label = line[cut + 1 :].strip()
        if label not in ("0", "1"):
            continue
        texts.append(line[:cut].strip())
        labels.append(POS if label == "1" else NEG)
    return texts, np.asarray(labels)


def twcs() -> pd.DataFrame:
    """All 5,000 rows of the Customer Support on Twitter head, read as the data notes say."""
    return pd.read_csv(TWCS, lineterminator="\n", dtype={"tweet_id": str, "response_tweet_id": str})


def twcs_inbound() -> pd.DataFrame:
    df = twcs()
    return df[df["inbound"].astype(str) == "True"].reset_index(drop=True)


def bench_labels() -> pd.DataFrame:
    """The hand-labelled inbound tweets (``bench/data/twcs_inbound_labels.csv``); never train on them."""
    return pd.read_csv(BENCH_LABELS, dtype={"tweet_id": str}, keep_default_na=False)


def cached_embeddings(name: str, texts: list[str], encoder) -> np.ndarray:
    """Encode ``texts`` with ``encoder`` once; later calls load ``.cache/embeddings/<name>-<key>.npy``."""
    from keymoments.score.embed import _GRAPH_VERSION  # a new quantisation must not reuse old vectors

    ident = f"{encoder.name}|{encoder.every_layer}" + (f"|g{_GRAPH_VERSION}" if encoder.quantize else "")
    key = hashlib.sha256(("\x1f".join(texts) + "|" + ident).encode()).hexdigest()[:16]
    path = EMB_CACHE / f"{name}-{key}.npy"
    if path.is_file():
        return np.load(path)
    EMB_CACHE.mkdir(parents=True, exist_ok=True)
    emb = encoder.encode(texts)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb.astype(np.float16))
    tmp.replace(path)
    return np.load(path)
