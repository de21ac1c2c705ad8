"""Domain adaptation from a business's own rated text: fit, cross-validated report, scoring, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from keymoments.exceptions import ConfigError, NotEnoughDataError, SmallSampleWarning
from keymoments.score.base import TextScorer
from keymoments.score.domain import DomainTextModel, fit_domain_model, valence_to_class

# A small "store" of rated feedback in a business's own words (a bike-rental shop): stars5 ratings.
_NEG = ["the bike chain snapped after ten minutes", "the saddle was broken and nobody replaced it", "charged twice for one rental",
        "the lock code never worked, stuck outside for an hour", "flat tyre again and the helmet was filthy",
        "app refused my card and the dock was jammed", "staff ignored my complaint about the brakes",
        "the e-bike battery died halfway up the hill", "late fee for a dock that was full", "gears slipping the whole ride"]
_NEU = ["picked the bike up at the station dock", "rented a city bike for two hours", "returned it at the harbour dock",
        "used the day pass on saturday", "the dock is next to the bakery", "booked through the app for tomorrow",
        "took the blue bike this time", "went along the river path", "paid with card at the kiosk", "changed the pickup time"]
_POS = ["smooth ride and the staff were lovely", "best rental in town, the e-bike was great fun", "quick unlock and a spotless bike",
        "friendly mechanic fixed my seat in a minute", "loved the river route, bikes in perfect shape",
        "fantastic service, will rent again", "the app is so easy and the bikes are brilliant", "great value and comfy saddles",
        "super helpful team, thank you", "a perfect sunny ride, highly recommend"]
TEXTS = [f"{t}{s}" for s in ("", ".", "!") for t in _NEG + _NEU + _POS]
STARS = np.array([r for _ in range(3) for r in [1] * 5 + [2] * 5 + [3] * 10 + [5] * 5 + [4] * 5], dtype=float)


@pytest.fixture(scope="module")
def model() -> DomainTextModel:
    return fit_domain_model(TEXTS, STARS, "stars5", cv=3)


def test_fit_reports_cross_validated_quality(model):
    assert model.n_ == 90 and model.class_counts_ == {"negative": 30, "neutral": 30, "positive": 30}
    summary = model.summary
    assert list(summary.index) == ["general", "domain (cv)"]
    assert ((summary["macro_f1"] >= 0) & (summary["macro_f1"] <= 1)).all()
    assert summary.loc["domain (cv)", "folds"] == 3
    # the shop's neutral statements are learnt from its ratings; the general head has no neutral data
    assert model.gain_ > 0 and summary.loc["domain (cv)", "macro_f1"] > 0.7
    assert model.to_dict()["gain_macro_f1"] == pytest.approx(model.gain_)


def test_scores_unrated_text(model):
    assert isinstance(model, TextScorer) and model.name == "semantic-domain"
    out = model.score(["the brakes failed and the chain broke", "returned the bike at the dock by the bakery", "lovely ride, great bikes", None])
    assert out.sentiment.tolist() == ["negative", "neutral", "positive", None]
    np.testing.assert_allclose(out.probabilities[:3].sum(axis=1), 1.0)
    assert ((out.valence >= -1) & (out.valence <= 1)).all()


def test_save_and_load_round_trip(model, tmp_path):
    path = tmp_path / "shop.npz"
    model.save(path)
    again = DomainTextModel.load(path)
    texts = ["chain snapped again", "picked it up at the dock"]
    np.testing.assert_allclose(again.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    assert again.summary.loc["domain (cv)", "macro_f1"] == pytest.approx(model.summary.loc["domain (cv)", "macro_f1"], abs=1e-3)


def test_valence_to_class_band():
    assert valence_to_class(np.array([-1, -0.5, -0.25, 0, 0.25, 0.5, 1])).tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_small_samples_are_said_out_loud():
    with pytest.warns(SmallSampleWarning, match="unreliable below 20 per class"):
        small = fit_domain_model(TEXTS[:30], STARS[:30], "stars5", cv=3)
    assert small.n_ == 30


def test_refuses_what_it_cannot_learn_from():
    with pytest.raises(NotEnoughDataError, match="at least two sentiments"):
        fit_domain_model(["good", "great", "fine"], [5, 5, 4], "stars5")
    with pytest.raises(ConfigError, match="one rating per text"):
        fit_domain_model(["good", "bad"], [5], "stars5")
    with pytest.raises(ConfigError, match="not fitted"):
        DomainTextModel().score(["hello"])


def test_a_long_text_is_read_whole(model):
    from keymoments.score.semantic import LONG_TEXT_WORDS, segment_text, segment_weights

    general = model.general
    praise = "smooth ride and the staff were lovely. " * 3
    complaint = "the bike chain snapped and the brakes failed and nobody came to help us for an hour. " * 4
    long_text = praise + complaint  # the first 128 word pieces are mostly praise; most of the text is not
    assert len(long_text.split()) > LONG_TEXT_WORDS
    short = "the bike chain snapped"
    vectors = general.text_vectors([short, long_text])
    np.testing.assert_allclose(vectors[0], general.embed([short])[0], atol=1e-6)  # a short text: its own vector
    pieces = segment_text(long_text)
    weight = segment_weights(pieces)
    pooled = weight @ general.embed(pieces) / weight.sum()
    np.testing.assert_allclose(vectors[1], pooled / np.linalg.norm(pooled), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.score([long_text]).sentiment[0] == "negative"


def test_the_general_row_is_what_the_general_scorer_answers(model):
    """The comparison is with the general scorer as it scores (long texts pooled), not its head on other vectors."""
    from sklearn.metrics import f1_score

    from keymoments.events import rating_to_valence
    from keymoments.score.domain import valence_to_class

    y = valence_to_class(np.array([rating_to_valence(r, "stars5") for r in STARS]))
    general = np.argmax(model.general.score(TEXTS).probabilities, axis=1)
    assert model.summary.loc["general", "macro_f1"] == pytest.approx(f1_score(y, general, average="macro"), abs=1e-3)
