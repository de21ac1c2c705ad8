"""Scoring and tagging the same texts from one encoder pass (keymoments.score.one_pass)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import keymoments.examples
from keymoments.events import JourneyModel
from keymoments.score.embed import MiniLMEncoder, default_encoder, tagging_encoder
from keymoments.score.lexicon import LexiconScorer
from keymoments.score.one_pass import score_and_tag, shares_pass
from keymoments.score.registry import get_scorer
from keymoments.score.semantic_tagging import SemanticTagger, readable

#: the demo's airline journey, as shipped with the package
JOURNEY = JourneyModel.from_yaml(Path(keymoments.examples.__file__).parent / "airline_journey.yaml")


class Counting:
    """Counts the calls of an encoder's ``encode`` and the texts they carry (patched on the instance)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, encoder: MiniLMEncoder) -> None:
        self.calls, self.texts, inner = 0, 0, encoder.encode

        def encode(texts):
            self.calls += 1
            self.texts += len(texts)
            return inner(texts)

        monkeypatch.setattr(encoder, "encode", encode)


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("auto")


@pytest.fixture(scope="module")
def short_texts(uci_sentences) -> list[str]:
    return [t for t in uci_sentences if len(t.split()) <= 30][:300]


def test_the_tagger_keeps_every_layer_and_its_last_is_the_six_layer_vector(short_texts):
    enc = tagging_encoder()
    every = enc.encode(short_texts[:40])
    assert every.shape == (40, 6, 384)
    np.testing.assert_allclose(every[:, -1], default_encoder().encode(short_texts[:40]), atol=1e-6)


def test_the_auto_scorer_and_the_default_tagger_share_a_pass(scorer):
    assert shares_pass(scorer, SemanticTagger(JOURNEY))
    assert not shares_pass(LexiconScorer(), SemanticTagger(JOURNEY))
    assert not shares_pass(scorer, SemanticTagger(JOURNEY, encoder=default_encoder()))  # one layer kept: no share


def test_one_encoder_call_scores_and_tags(scorer, short_texts, monkeypatch):
    tagger = SemanticTagger(JOURNEY)
    counted, mine = Counting(monkeypatch, tagger.encoder_), Counting(monkeypatch, scorer.encoder_)
    scores, tags = score_and_tag(scorer, tagger, short_texts)
    assert counted.calls == 1 and counted.texts == len(short_texts)
    assert mine.calls == 0  # the sentiment read its layer from the tagger's pass
    assert len(scores.valence) == len(tags.touchpoint) == len(short_texts)


def test_tags_from_the_shared_pass_equal_tags_on_their_own(scorer, short_texts):
    tagger = SemanticTagger(JOURNEY, reference=short_texts)
    _, shared = score_and_tag(scorer, tagger, short_texts)
    alone = tagger.tag(short_texts)
    assert shared.touchpoint.tolist() == alone.touchpoint.tolist()
    np.testing.assert_array_equal(shared.scores, alone.scores)
    np.testing.assert_array_equal(shared.confidence, alone.confidence)
    assert shared.labels == alone.labels


def test_sentiment_from_the_shared_pass_is_the_scorers_up_to_int8_batch_noise(scorer, short_texts):
    scores, _ = score_and_tag(scorer, SemanticTagger(JOURNEY), short_texts)
    alone = scorer.score(short_texts)
    assert np.abs(scores.valence - alone.valence).max() < 0.15
    assert np.mean(scores.sentiment == alone.sentiment) > 0.95


def test_the_shared_pass_is_deterministic(scorer, short_texts):
    tagger = SemanticTagger(JOURNEY)
    (s1, t1), (s2, t2) = score_and_tag(scorer, tagger, short_texts), score_and_tag(scorer, tagger, short_texts)
    np.testing.assert_array_equal(s1.valence, s2.valence)
    assert t1.touchpoint.tolist() == t2.touchpoint.tolist()


def test_texts_the_two_read_differently_get_the_scorers_own_pass(scorer, monkeypatch):
    texts = ["@AmericanAir lost my bag again", "The crew were lovely and the food was good", ""]
    assert readable(texts[0]) != texts[0]
    tagger = SemanticTagger(JOURNEY)
    mine = Counting(monkeypatch, scorer.encoder_)
    scores, tags = score_and_tag(scorer, tagger, texts)
    assert mine.calls == 1 and mine.texts == 1  # only the tweet with a named handle
    monkeypatch.undo()
    np.testing.assert_allclose(scores.valence[0], scorer.score(texts[:1]).valence[0], atol=1e-9)
    assert scores.sentiment[2] is None and tags.touchpoint[2] is None
