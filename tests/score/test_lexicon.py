"""The VADER lexicon scorer: VADER's numbers exactly, sane labels, and the documented confidence rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment import vaderSentiment as vs
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from keymoments.events import RATING_CONFIDENCE
from keymoments.score.base import SENTIMENTS, TextScorer, sentiment_from_valence
from keymoments.score.lexicon import (
    TEXT_CONFIDENCE_FLOOR,
    TEXT_CONFIDENCE_MAX,
    LexiconScorer,
    _analyzer,
    text_confidence,
)

REFERENCE = SentimentIntensityAnalyzer()

# sentences that exercise each of VADER's rules (negation, boosters, caps, "but", idioms, "least", emoji, ...)
TRICKY = [
    "The staff were not helpful at all.",
    "The food was great but the service was TERRIBLE!!!",
    "I am kind of happy with it.",
    "Honestly the new app is the shit",
    "Never so happy to land, without doubt the best crew",
    "This was the least pleasant stay.",
    "At least the bags arrived.",
    "no problem, no worries, no good",
    "I don't think it's bad, it isn't great either",
    "Check-in was sort of slow?? Really???",
    "Loved it 😍😍 thanks ❤️",
    "😡😡😡",
    "VERY GOOD",
    "Very GOOD service, very BAD food",
    ":) :( :D <3",
    "   padded text with spaces   ",
    "yeah right, what a 'great' experience",
    "kiss of death for this airline",
    "The gate agent was extremely rude and the flight was delayed 4 hours",
    "Thank you so much, the refund arrived quickly!",
    "!!!",
    "a",
]

OBVIOUS = {
    "I love this airline, the crew was wonderful and so kind!": "positive",
    "Thank you so much, you made my day!": "positive",
    "This is the worst service ever, I hate it.": "negative",
    "Terrible experience, rude staff and a filthy room.": "negative",
    "The flight leaves at 9 from gate B12.": "neutral",
    "My booking reference is ABC123.": "neutral",
}


def _reference(text: str) -> tuple[float, float, float, float]:
    d = REFERENCE.polarity_scores(text)
    return d["neg"], d["neu"], d["pos"], d["compound"]


def _assert_matches_vader(texts: list[str]) -> None:
    scores = LexiconScorer().score(texts)
    fast = _analyzer()
    for i, text in enumerate(texts):
        neg, neu, pos, compound = _reference(text)
        assert fast.scores(text)[:4] == (neg, neu, pos, compound), text
        if text.strip():
            assert scores.valence[i] == compound, text
            total = neg + neu + pos
            if total > 0:
                np.testing.assert_allclose(scores.probabilities[i], np.array([neg, neu, pos]) / total)


def test_is_a_text_scorer():
    scorer = LexiconScorer()
    assert isinstance(scorer, TextScorer) and scorer.name == "lexicon-vader"


@pytest.mark.parametrize(("text", "label"), OBVIOUS.items())
def test_obvious_sentences(text, label):
    s = LexiconScorer().score([text])
    assert s.sentiment[0] == label
    if label == "positive":
        assert s.valence[0] > 0.3
    elif label == "negative":
        assert s.valence[0] < -0.3
    else:
        assert s.valence[0] == 0.0 and s.confidence[0] == TEXT_CONFIDENCE_FLOOR


def test_golden_against_vader_on_tricky_sentences():
    _assert_matches_vader(TRICKY)


def test_golden_against_vader_on_real_text(twcs_texts, uci_sentences):
    _assert_matches_vader(twcs_texts[:1500] + uci_sentences)


def test_sentiment_follows_vaders_inclusive_005_rule():
    # compound rounds to exactly +-0.05 for no text we know, so check the rule through the shared function
    got = sentiment_from_valence(np.array([-0.05, -0.0499, 0.0499, 0.05]))
    assert got.tolist() == ["negative", "neutral", "neutral", "positive"]


def test_blank_and_missing_texts():
    s = LexiconScorer().score([None, "", "   ", float("nan"), "fine"])
    assert s.valence[:4].tolist() == [0.0] * 4
    assert s.confidence[:4].tolist() == [0.0] * 4
    assert s.sentiment[:4].tolist() == ["neutral"] * 4
    assert s.probabilities[:4].tolist() == [[0.0, 1.0, 0.0]] * 4
    assert s.confidence[4] > 0
    assert len(LexiconScorer().score([])) == 0


def test_confidence_golden_value():
    # strength 0.5, support 1 - e^-1, purity 1: 0.05 + 0.70 * 0.5 * 0.632121 * 1
    got = text_confidence(np.array([0.5]), np.array([0.0]), np.array([0.4]), np.array([3]))
    assert got[0] == pytest.approx(0.05 + 0.7 * 0.5 * (1 - math.exp(-1)), abs=1e-12)
    # mixed words (pos = neg) halve the evidence term
    got = text_confidence(np.array([0.5]), np.array([0.2]), np.array([0.2]), np.array([3]))
    assert got[0] == pytest.approx(0.05 + 0.7 * 0.5 * (1 - math.exp(-1)) * 0.5, abs=1e-12)


def test_confidence_is_low_for_short_or_neutral_text_and_below_ratings():
    s = LexiconScorer().score(
        ["great", "The crew was great, friendly and helpful all the way.", "The gate is B12."]
    )
    short, long_, neutral = s.confidence
    assert short < 0.2 and long_ > 0.4 and short < long_ / 2
    assert neutral == TEXT_CONFIDENCE_FLOOR
    assert TEXT_CONFIDENCE_MAX < RATING_CONFIDENCE
    mixed = LexiconScorer().score(
        ["The crew was great, friendly and helpful but the food was awful and cold."]
    )
    assert mixed.confidence[0] < long_


def test_dedupe_changes_nothing_but_speed(twcs_texts):
    texts = twcs_texts[:300] * 2 + [None, ""]
    a, b = LexiconScorer(dedupe=True).score(texts), LexiconScorer(dedupe=False).score(texts)
    for field in ("valence", "confidence", "probabilities"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.sentiment.tolist() == b.sentiment.tolist()


def test_accepts_any_iterable_and_non_string_values():
    s = LexiconScorer().score(iter(["good", 42]))
    assert len(s) == 2 and s.valence[1] == 0.0 and s.confidence[1] == TEXT_CONFIDENCE_FLOOR


@pytest.mark.filterwarnings("ignore::keymoments.exceptions.NotEnglishWarning")  # random text is not English
@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_matches_vader_and_stays_in_range(text):
    assert _analyzer().scores(text)[:4] == _reference(text)
    s = LexiconScorer().score([text])
    assert -1.0 <= s.valence[0] <= 1.0
    assert 0.0 <= s.confidence[0] <= TEXT_CONFIDENCE_MAX
    assert s.sentiment[0] in SENTIMENTS
    assert s.probabilities[0].sum() == pytest.approx(1.0) and (s.probabilities[0] >= 0).all()


WORDS = [
    "good", "bad", "not", "never", "so", "this", "very", "kind", "of", "but", "no", "least", "at", "without",
    "doubt", "GREAT", "HORRIBLE", "the", "shit", "bomb", "sort", "happy", "isn't", "delayed", "!", "?", "love",
    "hate", "😀", "😡", ":)", "yeah", "right", "or", "nor", "extremely", "barely", "FLIGHT", "'good'", "....",
]  # fmt: skip


@settings(max_examples=250, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join))
def test_rule_dense_text_matches_vader(text):
    assert _analyzer().scores(text)[:4] == _reference(text)


def test_vader_module_constants_still_exist():
    # the fast path reads these; a vaderSentiment upgrade that renames them must fail here, not at run time
    for name in (
        "NEGATE",
        "BOOSTER_DICT",
        "SPECIAL_CASES",
        "N_SCALAR",
        "SentiText",
        "SentimentIntensityAnalyzer",
    ):
        assert hasattr(vs, name), name
