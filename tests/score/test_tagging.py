"""Touchpoint tagging by lexical overlap with the journey model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.events import JourneyModel, Touchpoint
from keymoments.exceptions import ConfigError
from keymoments.score.tagging import OTHER, LexicalTagger, Tagger, add_examples, make_tagger, terms

JOURNEY = JourneyModel(
    touchpoints=[
        Touchpoint(name="booking", description="search and book a flight on the website or app",
                   examples=["the website crashed while I was paying"]),
        Touchpoint(name="check-in", description="online or counter check-in, seat selection, boarding pass"),
        Touchpoint(name="boarding", description="gate, boarding queue, priority boarding"),
        Touchpoint(name="flight", description="on board: crew, seat comfort, meals, delays in the air"),
        Touchpoint(name="baggage", description="bags at the belt, lost or damaged luggage",
                   examples=["my suitcase never arrived"]),
    ]
)  # fmt: skip


def test_terms_are_normalised():
    assert terms("The BAGS were delayed; charged twice, cancelled flights") == [
        "bag", "delay", "charg", "twic", "cancel", "flight"
    ]  # fmt: skip
    assert terms("charge") == terms("charged") == terms("charging") == ["charg"]


def test_tags_obvious_texts():
    tagger = LexicalTagger(JOURNEY)
    assert isinstance(tagger, Tagger)
    tags = tagger.tag(
        [
            "They lost my luggage and nobody at the belt could help",
            "My suitcase still has not arrived",
            "Could not get a boarding pass at the counter check-in",
            "The crew were lovely and the meal was great",
            "I love my dog",
            "",
            None,
        ]
    )
    assert tags.touchpoint.tolist() == ["baggage", "baggage", "check-in", "flight", OTHER, None, None]
    assert (tags.confidence[:4] > 0.2).all() and tags.confidence[4:].tolist() == [0.0, 0.0, 0.0]
    assert tags.scores.shape == (7, 5) and tags.touchpoints == tuple(JOURNEY.order)


def test_confidence_is_best_minus_half_the_second():
    tags = LexicalTagger(JOURNEY, threshold=0.0).tag(["boarding pass at the gate"])
    best, second = np.sort(tags.scores[0])[::-1][:2]
    assert tags.touchpoint[0] in ("boarding", "check-in")
    assert tags.confidence[0] == pytest.approx(best - second / 2)


def test_threshold_sends_weak_matches_to_other():
    text = ["the seat was fine"]
    assert LexicalTagger(JOURNEY, threshold=0.0).tag(text).touchpoint[0] != OTHER
    assert LexicalTagger(JOURNEY, threshold=0.99).tag(text).touchpoint[0] == OTHER


def test_bad_configuration():
    with pytest.raises(ConfigError, match="no touchpoints"):
        make_tagger(JourneyModel())
    with pytest.raises(ConfigError, match="must be in \\[0, 1\\]"):
        LexicalTagger(JOURNEY, threshold=2).tag(["hello"])
    with pytest.raises(ConfigError, match="Did you mean 'lexical'"):
        make_tagger(JOURNEY, "lexicla")
    assert isinstance(make_tagger(JOURNEY, "lexical"), LexicalTagger)
    from keymoments.score.semantic_tagging import SemanticTagger

    assert isinstance(make_tagger(JOURNEY), SemanticTagger)  # auto: the semantic tagger where it is installed


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), max_size=5))
def test_any_text_gets_a_known_label_and_a_bounded_confidence(texts):
    tags = LexicalTagger(JOURNEY).tag(texts)
    assert len(tags) == len(texts)
    assert set(tags.touchpoint.tolist()) <= {*JOURNEY.order, OTHER, None}
    assert ((tags.confidence >= 0) & (tags.confidence <= 1)).all()


def test_add_examples_appends_labelled_texts_and_names_unknown_touchpoints():
    journey = JourneyModel(touchpoints=[Touchpoint(name="baggage", examples=["bag lost"]), Touchpoint(name="flight")])
    out = add_examples(journey, ["bag torn", "", "why??", None, "late take-off", "no label"], ["baggage", "flight", "other", "flight", "flight", ""])
    assert [tp.examples for tp in out.touchpoints] == [["bag lost", "bag torn"], ["late take-off"]]
    assert journey.touchpoint("baggage").examples == ["bag lost"]  # the given model is not changed
    with pytest.raises(ConfigError, match=r"names the touchpoint 'bagage', which the journey model does not have.*Did you mean 'baggage'"):
        add_examples(journey, ["bag lost"], ["bagage"])
    with pytest.raises(ValueError):
        add_examples(journey, ["a", "b"], ["baggage"])  # texts and labels must pair up
