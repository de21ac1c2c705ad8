"""Long text: segmented, scored sentence by sentence, pooled; short text exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.score.semantic import LONG_TEXT_WORDS, SemanticScorer, segment_text

GOOD = "The crew were lovely and the seat was comfortable. "
# a review whose opening is warm and whose every later sentence is a complaint: the first 128 word pieces say
# positive, the whole text does not
MIXED = (
    "I was looking forward to this trip and the booking on the website was quick and easy. "
    + "Then the flight was delayed for six hours with no explanation and nobody at the gate would help us. "
    + "They lost my suitcase and the baggage desk was rude and useless. "
    + "The refund I was promised never arrived and customer service hung up on me twice. "
    + "The seat was broken, the food was cold and the toilets were filthy. "
    + "Worst airline I have ever used, never again."
)


@pytest.fixture(scope="module")
def scorer() -> SemanticScorer:
    return SemanticScorer("fast", head="blend", emotions=False)


words = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=8)
sentence = st.lists(words, min_size=1, max_size=90).map(" ".join).flatmap(
    lambda s: st.sampled_from([".", "!", "?", "", ","]).map(lambda end: s + end)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(sentence, min_size=1, max_size=6), st.integers(min_value=4, max_value=60))
def test_segments_cover_every_word_in_order_and_are_short(sentences: list[str], max_words: int) -> None:
    text = " ".join(sentences)
    segs = segment_text(text, max_words=max_words)
    assert all(1 <= len(s.split()) <= max_words for s in segs)
    # every word of the text is in a segment, in order (windows may repeat the overlap)
    flat = [w for s in segs for w in s.split()]
    it = iter(flat)
    assert all(any(w == x for x in it) for w in text.split())


def test_segments_follow_sentences() -> None:
    assert segment_text("Great staff. The room was dirty!\nWould I go back? No") == [
        "Great staff.", "The room was dirty!", "Would I go back?", "No"]


def test_short_texts_score_exactly_as_before(scorer: SemanticScorer) -> None:
    texts = ["Great flight!", GOOD * 3, "Lost my bag again", None, ""]
    assert all(len(t.split()) <= LONG_TEXT_WORDS for t in texts if t)
    old = SemanticScorer("fast", head="blend", emotions=False, long_text=False).score(texts)
    new = scorer.score(texts)
    np.testing.assert_array_equal(new.valence, old.valence)
    assert "segments" not in new.extra


def test_a_long_text_is_judged_by_all_of_it(scorer: SemanticScorer) -> None:
    truncated = SemanticScorer("fast", head="blend", emotions=False, long_text=False)
    long_review = GOOD * 10 + MIXED * 3  # 100 words of praise the encoder reads first, then 250 of complaints
    assert len(long_review.split()) > LONG_TEXT_WORDS
    before = truncated.score([long_review])
    after = scorer.score([long_review])
    segs = after.extra["segments"][0]
    assert len(segs) >= 5
    assert min(s["valence"] for s in segs) < -0.5 and max(s["valence"] for s in segs) > 0.3
    assert before.valence[0] > 0 > after.valence[0]  # cut at 128 word pieces it read as praise; whole, it is not
    # the pooled valence lies within its segments' range
    assert min(s["valence"] for s in segs) <= after.valence[0] <= max(s["valence"] for s in segs)


def test_the_pooled_valence_is_the_weighted_mean_of_the_segments(scorer: SemanticScorer) -> None:
    from keymoments.score.semantic import FIRST_SEGMENT_WEIGHT, segment_weights

    review = MIXED * 3 + GOOD * 2
    out = scorer.score([review])
    segs = out.extra["segments"][0]
    weight = segment_weights([s["text"] for s in segs])
    assert weight[0] == pytest.approx(FIRST_SEGMENT_WEIGHT * np.sqrt(len(segs[0]["text"].split())))
    # valence is linear in the probabilities, so the pooled valence is the same weighted mean of the segments'
    pooled = weight @ np.array([s["valence"] for s in segs]) / weight.sum()
    assert out.valence[0] == pytest.approx(pooled, abs=1e-9)
