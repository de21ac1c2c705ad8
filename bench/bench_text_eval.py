"""Text-model evaluation: quality (accuracy, macro-F1) and throughput of the lexicon, semantic and domain models.

Run: ``.venv/bin/python bench/bench_text_eval.py [--quick] [--tagging]`` (``--tagging``: section 4 and the
tagger's throughput only; about 3-5 minutes on 2 cores for everything; embeddings of the
evaluation sets are cached under ``.cache/embeddings``). It prints three tables and writes
``bench/out/text_eval.json``:

1. **SST-2 test** (1,821 movie-review sentences, binary; never used in training): accuracy and macro-F1;
   a model's answer is positive when P(positive) > P(negative) (VADER: compound > 0).
2. **Real customer tweets**: 240 inbound tweets of ``twcs_head5000.csv``, hand-labelled negative / neutral /
   positive (``bench/data/twcs_inbound_labels.csv``, procedure in ``bench/data/README.md``; never trained on),
   three classes, with a bootstrap 95% interval of the macro-F1 (1,000 resamples of the 240 tweets). Rows: the
   lexicon, per depth the general, *support* (reply-labelled), *support-labelled* (hand-labelled, 1,200 other
   tweets: ``training/data/README.md``) and *blend* heads (``semantic.py``), the previous default (the blend
   without the hand-labelled head), the default cut at 64 word pieces, and *domain-adapted* heads fitted with
   :func:`keymoments.score.domain.fit_domain_model` on the other inbound tweets of the same file, labelled from
   the brand's reply (``training/twcs_weak_labels.py``): the business's own "rated" text. (The shipped support
   heads are the same fit, made at training time with the fp32 encoder.)
3. **Domain adaptation on rated reviews**: UCI Amazon + Yelp sentences as a business's rated text. The general
   head is refitted here *without* Amazon and Yelp (SST-2 + IMDb only) and scored on them; the domain head's
   figure is 5-fold cross-validated on them.
4. **Zero-shot touchpoint tagging**: the 119 negative tweets of (2), hand-labelled into 8 support topics or
   "other" (``bench/data/twcs_negative_topics.csv``), and the 593 negative tweets of the sentiment training
   labels, topic-labelled by other labellers (``bench/data/twcs_more_negative_topics.csv``), tagged with only
   the one-line descriptions of ``bench/data/support_journey.yaml``; and, within one domain, 213 complaints to
   airlines tagged with the demo's airline journey (``bench/data/twcs_airline_topics.csv``) and with 9
   complaint reasons (``bench/data/twcs_airline_reasons.csv``, ``airline_complaint_reasons.yaml``): accuracy
   (bootstrap 95% interval) of the lexical and the semantic tagger, uncalibrated and calibrated (no labels) on
   the file's other inbound tweets, or on the labelled texts themselves, beside a supervised ceiling (a
   logistic regression on the set's own labels, 5-fold CV); and on parts 3-4 of the 593 alone, on which no
   tagger setting was chosen, without and with 30, 100 or all labelled examples from parts 1-2 (mean of 3 draws).
5. **Throughput** on 2,000 inbound tweets (emotions included): texts/s of wall time, and texts per CPU-second
   of this process (steadier when other processes share the cores), with the load average. Best of 3 runs.
   Last row: the default semantic tagger (calibrated on the other inbound tweets) tagging the same 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
os.environ.setdefault("KM_CACHE_DIR", str(ROOT / ".cache" / "models"))

import corpora  # noqa: E402
import twcs_weak_labels  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from keymoments.score.domain import DomainTextModel  # noqa: E402
from keymoments.score.heads import OrdinalHead  # noqa: E402
from keymoments.score.lexicon import LexiconScorer  # noqa: E402
from keymoments.score.semantic import DEPTHS, SemanticScorer  # noqa: E402

LABEL = {"negative": 0, "neutral": 1, "positive": 2}


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": round(accuracy_score(y, pred), 3),
        "macro_f1": round(f1_score(y, pred, average="macro"), 3),
        "n": int(len(y)),
    }


def f1_interval(y: np.ndarray, pred: np.ndarray, n_boot: int = 1000) -> list[float]:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    f1s = [f1_score(y[i], pred[i], average="macro") for i in idx]
    return [round(float(np.percentile(f1s, 2.5)), 3), round(float(np.percentile(f1s, 97.5)), 3)]


def tweet_row(name: str, y: np.ndarray, proba: np.ndarray) -> dict:
    pred = np.argmax(proba, axis=1)
    return {"model": name, **metrics(y, pred), "macro_f1_95ci": f1_interval(y, pred)}


def binary_pred(proba: np.ndarray) -> np.ndarray:
    return np.where(proba[:, 2] > proba[:, 0], 2, 0)


def lexicon_rows(sst_texts, sst_y, tw_texts, tw_y) -> tuple[dict, dict]:
    lex = LexiconScorer()
    sst = metrics(sst_y, np.where(lex.score(sst_texts).valence > 0, 2, 0))
    s = lex.score(tw_texts).sentiment
    tw = metrics(tw_y, np.array([LABEL[x] for x in s]))
    return sst, tw


def tagging_rows() -> list[dict]:
    """Section 4: zero-shot tagging accuracy (bootstrap 95% interval) per set and tagger."""
    from keymoments.events import JourneyModel  # noqa: PLC0415
    from keymoments.score.semantic_tagging import SemanticTagger  # noqa: PLC0415
    from keymoments.score.tagging import LexicalTagger  # noqa: PLC0415

    journey = JourneyModel.from_yaml(ROOT / "bench" / "data" / "support_journey.yaml")
    inbound = corpora.twcs_inbound()
    tag_rows = []
    # (name, labels, journey, the unlabelled reference: None = the rest of the inbox)
    sets = [
        ("119 benchmark tweets", pd.read_csv(ROOT / "bench" / "data" / "twcs_negative_topics.csv", dtype=str), journey, None)
    ]
    more = ROOT / "bench" / "data" / "twcs_more_negative_topics.csv"
    if more.exists():
        more_labels = pd.read_csv(more, dtype=str)
        sets.append(("593 other tweets, other labellers", more_labels, journey, None))
        held = more_labels[more_labels["batch"].isin(["part3", "part4"])]
        sets.append((f"its parts 3-4 ({len(held)}; no setting chosen on them)", held, journey, None))
    airline = ROOT / "bench" / "data" / "twcs_airline_topics.csv"
    if airline.exists():  # one domain, one brand's own journey: the brand no longer names the topic
        air_labels = pd.read_csv(airline, dtype=str, keep_default_na=False)
        air_labels = air_labels[air_labels["complaint"] == "yes"]
        air_journey = JourneyModel.from_yaml(ROOT / "src" / "keymoments" / "examples" / "airline_journey.yaml")
        sets.append((f"{len(air_labels)} airline complaints, demo airline journey", air_labels, air_journey, None))
        reasons = ROOT / "bench" / "data" / "twcs_airline_reasons.csv"
        if reasons.exists():  # the same complaints under reason codes (late flight, lost luggage …)
            sets.append((
                f"the {len(air_labels)} airline complaints, 9 complaint reasons",
                pd.read_csv(reasons, dtype=str).rename(columns={"reason": "topic"}),
                JourneyModel.from_yaml(ROOT / "bench" / "data" / "airline_complaint_reasons.yaml"),
                None,
            ))  # fmt: skip
    for source, yaml_name, what in (("yelp", "restaurant_journey.yaml", "a restaurant's touchpoints"),
                                    ("amazon", "phone_accessory_journey.yaml", "phone accessory topics")):  # fmt: skip
        path = ROOT / "bench" / "data" / f"uci_{source}_touchpoints.csv"
        if path.exists():  # review sentences, positive and negative, many of them verdicts with no subject
            sentences, _ = corpora.uci(source)
            labels = pd.read_csv(path)
            labels["text"] = [sentences[i] for i in labels["line"]]
            taken = set(labels["line"])
            rest = [t for i, t in enumerate(sentences) if i not in taken]
            sets.append((f"{len(labels)} {source} review sentences, {what}", labels, JourneyModel.from_yaml(ROOT / "bench" / "data" / yaml_name), rest))
    for set_name, labels, set_journey, unlabelled in sets:
        topics = labels
        if unlabelled is None:  # tweets of the inbox: the rest of it is the unlabelled reference
            topics = labels.merge(inbound[["tweet_id", "text"]], on="tweet_id", validate="one_to_one")
            unlabelled = inbound.loc[~inbound["tweet_id"].isin(topics["tweet_id"]), "text"].astype(str).tolist()
        texts, truth = topics["text"].astype(str).tolist(), topics["topic"].to_numpy()
        taggers = [("", LexicalTagger(set_journey))]
        for weight in (0.0, 0.15, None):  # None: the default, set from how alike the calibration texts are
            taggers += [
                ("", SemanticTagger(set_journey, lexical_weight=weight)),
                (
                    f", calibrated on the other {len(unlabelled):,} {'sentences' if 'review' in set_name else 'inbound tweets'}",
                    SemanticTagger(set_journey, lexical_weight=weight, reference=unlabelled),
                ),
                (
                    f", calibrated on the {len(texts)} texts themselves",
                    SemanticTagger(set_journey, lexical_weight=weight, reference=texts),
                ),
            ]
        taggers.append((f", calibrated on the {len(texts)} texts themselves, without the generic-text rule",
                        SemanticTagger(set_journey, generic_margin=None, reference=texts)))  # fmt: skip
        for note, tagger in taggers:
            hit = tagger.tag(texts).touchpoint == truth
            label = (
                tagger.name
                if not isinstance(tagger, SemanticTagger)
                else f"{tagger.name} (lexical weight {lexical_label(tagger)}){note}"
            )
            rng = np.random.default_rng(0)
            boot = [float(np.mean(hit[rng.integers(0, len(hit), len(hit))])) for _ in range(1000)]
            tag_rows.append({"set": set_name, "tagger": label, "accuracy": round(float(np.mean(hit)), 3),
                             "accuracy_95ci": [round(float(np.percentile(boot, 2.5)), 3), round(float(np.percentile(boot, 97.5)), 3)],
                             "n": len(hit)})  # fmt: skip
        tag_rows.append(supervised_ceiling(set_name, texts, truth))

    if more.exists():  # labelled examples: parts 1-2 of the 593 teach the tagger, parts 3-4 test it
        from keymoments.score.tagging import add_examples  # noqa: PLC0415

        labelled = more_labels.merge(inbound[["tweet_id", "text"]], on="tweet_id", validate="one_to_one")
        teach, test = (
            labelled[labelled["batch"].isin(["part1", "part2"])],
            labelled[labelled["batch"].isin(["part3", "part4"])],
        )
        unlabelled = inbound.loc[~inbound["tweet_id"].isin(labelled["tweet_id"]), "text"].astype(str).tolist()
        for n in (0, 30, 100, len(teach)):
            for calibrated in (False, True):
                hits = []
                for seed in range(3 if 0 < n < len(teach) else 1):  # the mean over 3 draws of n examples
                    ex = teach.sample(n=n, random_state=seed)
                    taught = add_examples(journey, ex["text"].astype(str).tolist(), ex["topic"].tolist())
                    tagger = SemanticTagger(taught, reference=unlabelled if calibrated else None)
                    hits.append(
                        float(
                            np.mean(
                                tagger.tag(test["text"].astype(str).tolist()).touchpoint
                                == test["topic"].to_numpy()
                            )
                        )
                    )
                tag_rows.append({"set": f"parts 3-4 ({len(test)}), {n} labelled examples from parts 1-2",
                                 "tagger": f"{tagger.name}{', calibrated' if calibrated else ''}", "accuracy": round(float(np.mean(hits)), 3),
                                 "accuracy_95ci": "", "n": len(test)})  # fmt: skip

    return tag_rows


def lexical_label(tagger) -> str:
    """``0.15``, or ``auto: 0.7 (homogeneity 0.32)`` for the default weight set by calibration."""
    if tagger.lexical_weight is not None:
        return str(tagger.lexical_weight)
    if tagger.homogeneity_ is None:
        return f"auto: {tagger.lexical_weight_}"
    return f"auto: {tagger.lexical_weight_} (homogeneity {tagger.homogeneity_:.2f})"


def supervised_ceiling(set_name: str, texts: list[str], truth: np.ndarray) -> dict:
    """Not zero-shot: a logistic regression on the tagger's own text vectors, trained on the set's labels
    (5-fold cross-validated): about what a nearest-description method could reach with this encoder."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: PLC0415

    from keymoments.score.embed import default_encoder  # noqa: PLC0415
    from keymoments.score.semantic_tagging import readable  # noqa: PLC0415

    x = default_encoder().encode([readable(t) for t in texts])
    kfold = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    with warnings.catch_warnings():  # a touchpoint with fewer than 5 texts: sklearn warns, the folds still work
        warnings.simplefilter("ignore", UserWarning)
        pred = cross_val_predict(LogisticRegression(C=10.0, max_iter=2000), x, truth, cv=kfold)
    return {"set": set_name, "tagger": f"supervised ceiling: logistic regression on its labels, {kfold.n_splits}-fold CV",
            "accuracy": round(float(np.mean(pred == truth)), 3), "accuracy_95ci": "", "n": len(truth)}  # fmt: skip


def tagging_speed(runs: int) -> dict:
    """Texts/s of the default semantic tagger, calibrated on the other inbound tweets, tagging 2,000 tweets."""
    from keymoments.events import JourneyModel  # noqa: PLC0415
    from keymoments.score.semantic_tagging import SemanticTagger  # noqa: PLC0415

    texts = corpora.twcs_inbound()["text"].astype(str).tolist()
    tagger = SemanticTagger(
        JourneyModel.from_yaml(ROOT / "bench" / "data" / "support_journey.yaml"), reference=texts[2000:]
    )
    tagger.tag(texts[:64])
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        tagger.tag(texts[:2000])
        best_wall = max(best_wall, 2000 / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, 2000 / max(time.process_time() - c0, 1e-9))
    return {
        "model": f"{tagger.name} tagger (calibrated; tagging only)",
        "texts_per_s": round(best_wall),
        "texts_per_cpu_s": round(best_cpu),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one throughput run instead of three")
    ap.add_argument(
        "--tagging",
        action="store_true",
        help="only the touchpoint tagging figures (section 4) and the tagger's throughput",
    )
    args = ap.parse_args(argv)
    if args.tagging:
        rows, speed = tagging_rows(), tagging_speed(1 if args.quick else 3)
        pd.set_option("display.width", 160)
        print("\n== zero-shot touchpoint tagging: complaint tweets, each set's touchpoints + other ==")
        print(pd.DataFrame(rows).to_string(index=False))
        print(
            f"\n== tagging throughput, 2,000 tweets, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} =="
        )
        print(pd.DataFrame([speed]).to_string(index=False))
        return 0

    sst_texts, sst_y = corpora.sst2("test")
    bench = corpora.bench_labels()
    tw_texts, tw_y = bench["text"].tolist(), bench["label"].map(LABEL).to_numpy()
    weak = twcs_weak_labels.weak_labels()
    weak_val = weak["label"].map({"negative": -1.0, "neutral": 0.0, "positive": 1.0}).to_numpy()
    print(
        f"weakly labelled tweets for domain adaptation: {len(weak)} {weak['label'].value_counts().to_dict()}"
    )

    sst_rows, tw_rows, domain_rows = [], [], []
    s, t = lexicon_rows(sst_texts, sst_y, tw_texts, tw_y)
    sst_rows.append({"model": "lexicon-vader", **s})
    tw_rows.append({"model": "lexicon-vader", **t})

    scorers = {}
    for depth in DEPTHS:
        scorer = SemanticScorer(depth, emotions=False)
        scorers[depth] = scorer
        enc = scorer.encoder_
        x_sst = corpora.cached_embeddings("sst2-test", sst_texts, enc)
        x_tw = corpora.cached_embeddings("bench-tweets", tw_texts, enc)
        x_weak = corpora.cached_embeddings("twcs-weak", weak["text"].tolist(), enc)
        for head in ("general", "support", "support-labelled", "blend"):
            sc = scorer if head == "general" else SemanticScorer(depth, head=head, emotions=False)
            label = sc.name + (" (auto)" if (depth, head) == ("fast", "blend") else "")
            sst_rows.append({"model": label, **metrics(sst_y, binary_pred(sc.head_.predict_proba(x_sst)))})
            tw_rows.append(tweet_row(label, tw_y, sc.head_.predict_proba(x_tw)))
        dm = DomainTextModel(depth)
        dm._general = scorer
        dm.fit(weak["text"].tolist(), weak_val, embeddings=x_weak)
        tw_rows.append(
            {
                "model": f"{scorer.name} + domain (twcs replies)",
                **metrics(tw_y, np.argmax(dm.head_.predict_proba(x_tw), axis=1)),
                "cv_macro_f1_weak": round(float(dm.cv_.loc["domain (cv)", "macro_f1"]), 3),
            }
        )

    # the previous default (1 int8 layer, general and reply-labelled heads only) and the default cut at 64 word pieces
    from keymoments.score.embed import MiniLMEncoder  # noqa: PLC0415
    from keymoments.score.semantic import _MeanHead  # noqa: PLC0415

    fast = scorers["fast"]
    previous = _MeanHead([fast.head_, SemanticScorer("fast", head="support", emotions=False).head_])
    x_sst, x_tw = (
        corpora.cached_embeddings("sst2-test", sst_texts, fast.encoder_),
        corpora.cached_embeddings("bench-tweets", tw_texts, fast.encoder_),
    )
    label = "semantic-minilm-blend-fast of general + reply-labelled heads (previous default)"
    sst_rows.append({"model": label, **metrics(sst_y, binary_pred(previous.predict_proba(x_sst)))})
    tw_rows.append(tweet_row(label, tw_y, previous.predict_proba(x_tw)))
    short = SemanticScorer("fast", head="blend", emotions=False)
    short.encoder_ = MiniLMEncoder(n_layers=1, quantize=True, max_length=64)
    x_sst, x_tw = (
        corpora.cached_embeddings("sst2-test", sst_texts, short.encoder_),
        corpora.cached_embeddings("bench-tweets", tw_texts, short.encoder_),
    )
    sst_rows.append(
        {
            "model": "semantic-minilm-blend-fast, 64 word pieces",
            **metrics(sst_y, binary_pred(short.head_.predict_proba(x_sst))),
        }
    )
    tw_rows.append(
        tweet_row("semantic-minilm-blend-fast, 64 word pieces", tw_y, short.head_.predict_proba(x_tw))
    )

    # 3. UCI amazon + yelp as rated reviews; general head without them (balanced depth, fp32 cache of training)
    from train_text_head import every_layer_encoder  # noqa: PLC0415

    enc_all = every_layer_encoder()
    layers = DEPTHS["balanced"][0]

    def emb(name, texts):
        return corpora.cached_embeddings(name, texts, enc_all)[:, layers - 1].astype(np.float32)

    tr_t, tr_y = corpora.sst2("train")
    im_t, im_y = corpora.uci("imdb")
    dv_t, dv_y = corpora.sst2("dev")
    head = OrdinalHead.fit(
        np.concatenate([emb("sst2-train", tr_t), emb("uci-imdb", im_t)]),
        np.concatenate([tr_y, im_y]) == 2,
        emb("sst2-dev", dv_t),
        dv_y == 2,
    )
    for source in ("amazon", "yelp"):
        texts, y = corpora.uci(source)
        x = emb(f"uci-{source}", texts)
        general = metrics(y, binary_pred(head.predict_proba(x)))
        dm = DomainTextModel("balanced")
        dm._general = scorers["balanced"]
        dm.fit(texts, np.where(y == 2, 1.0, -1.0), embeddings=x)
        domain_rows.append(
            {
                "rated text": f"UCI {source}",
                "general_macro_f1": general["macro_f1"],
                "domain_cv_macro_f1": round(float(dm.cv_.loc["domain (cv)", "macro_f1"]), 3),
                "n": len(y),
            }
        )

    tag_rows = tagging_rows()

    # 5. throughput
    tweets = corpora.twcs_inbound()["text"].astype(str).tolist()[:2000]
    load_before = os.getloadavg()[0]
    speed = []
    runs = 1 if args.quick else 3
    previous = SemanticScorer("balanced", head="support")
    previous.encoder_ = MiniLMEncoder(n_layers=3, quantize=False)
    for name, scorer in [
        ("lexicon-vader", LexiconScorer()),
        ("semantic-minilm-blend-fast (auto)", SemanticScorer("fast", head="blend")),
        *((s.name, SemanticScorer(d)) for d, s in scorers.items()),
        ("3 fp32 layers, support head (the first default)", previous),
    ]:
        scorer.score(tweets[:64])
        best_wall, best_cpu = 0.0, 0.0
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            scorer.score(tweets)
            best_wall = max(best_wall, len(tweets) / (time.perf_counter() - t0))
            best_cpu = max(best_cpu, len(tweets) / max(time.process_time() - c0, 1e-9))
        speed.append({"model": name, "texts_per_s": round(best_wall), "texts_per_cpu_s": round(best_cpu)})
    speed.append(tagging_speed(runs))
    load = os.getloadavg()[0]

    pd.set_option("display.width", 160)
    print("\n== SST-2 test (binary) ==")
    print(pd.DataFrame(sst_rows).to_string(index=False))
    print("\n== 240 hand-labelled customer tweets (3 classes) ==")
    print(pd.DataFrame(tw_rows).astype(object).fillna("").to_string(index=False))
    print("\n== domain adaptation on rated reviews (binary; general head trained without that source) ==")
    print(
        pd.DataFrame(domain_rows)[["rated text", "general_macro_f1", "domain_cv_macro_f1", "n"]].to_string(
            index=False
        )
    )
    print("\n== zero-shot touchpoint tagging: complaint tweets, each set's touchpoints + other ==")
    print(pd.DataFrame(tag_rows).to_string(index=False))
    print(
        f"\n== throughput, 2,000 tweets, {os.cpu_count()} cores, load average {load:.1f} (before {load_before:.1f}; emotions included) =="
    )
    print(pd.DataFrame(speed).to_string(index=False))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "text_eval.json").write_text(
        json.dumps(
            {
                "sst2": sst_rows,
                "tweets": tw_rows,
                "domain": domain_rows,
                "tagging": tag_rows,
                "speed": speed,
                "load": load,
                "load_before": load_before,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
