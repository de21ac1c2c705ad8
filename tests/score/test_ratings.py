"""Ratings → valence: every scale against hand-computed values, and against the scalar contract function."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.events import RATING_CONFIDENCE, RATING_SCALES, rating_to_valence
from keymoments.exceptions import InvalidEventError
from keymoments.score.ratings import ratings_to_valence

# (scale, rating, expected valence) computed by hand from valence = 2 (r - low) / (high - low) - 1
GOLDEN = [
    ("csat5", 1, -1.0), ("csat5", 2, -0.5), ("csat5", 2.5, -0.25), ("csat5", 3, 0.0), ("csat5", 4, 0.5),
    ("csat5", 5, 1.0),
    ("stars5", 1, -1.0), ("stars5", 3, 0.0), ("stars5", 4, 0.5), ("stars5", 5, 1.0),
    ("score10", 1, -1.0), ("score10", 4, -1 / 3), ("score10", 5.5, 0.0), ("score10", 7, 1 / 3), ("score10", 10, 1.0),
    ("nps", 0, -1.0), ("nps", 5, 0.0), ("nps", 6, 0.2), ("nps", 9, 0.8), ("nps", 10, 1.0),
    # ces7: lower is better, so the map is inverted
    ("ces7", 1, 1.0), ("ces7", 2, 2 / 3), ("ces7", 4, 0.0), ("ces7", 6, -2 / 3), ("ces7", 7, -1.0),
    ("valence", -1, -1.0), ("valence", -0.3, -0.3), ("valence", 0, 0.0), ("valence", 0.37, 0.37), ("valence", 1, 1.0),
]  # fmt: skip

OUT_OF_RANGE = [
    ("csat5", 0), ("csat5", 6), ("csat5", 5.01), ("stars5", 0.99), ("score10", 0), ("score10", 11),
    ("nps", -1), ("nps", 10.5), ("ces7", 0), ("ces7", 8), ("valence", 1.01), ("valence", -1.5),
]  # fmt: skip


def test_golden_values_of_every_scale():
    scales, ratings, expected = zip(*GOLDEN, strict=True)
    valence, confidence, ok = ratings_to_valence(np.array(ratings), np.array(scales))
    np.testing.assert_allclose(valence, expected, atol=1e-12)
    assert ok.all()
    assert (confidence == RATING_CONFIDENCE).all()
    assert set(scales) == set(RATING_SCALES), "every contract scale has golden values"


def test_midpoints_are_exactly_zero_and_not_negative_zero():
    v, _, _ = ratings_to_valence(
        [3, 3, 5.5, 5, 4, 0], ["csat5", "stars5", "score10", "nps", "ces7", "valence"]
    )
    assert v.tolist() == [0.0] * 6
    assert not np.signbit(v).any()


@pytest.mark.parametrize(("scale", "rating"), OUT_OF_RANGE)
def test_out_of_range_is_nan_and_not_ok(scale, rating):
    v, c, ok = ratings_to_valence([rating], [scale])
    assert math.isnan(v[0]) and c[0] == 0.0 and not ok[0]


def test_unreadable_ratings_and_unknown_scales_are_not_ok():
    ratings = [None, float("nan"), "abc", float("inf"), 4, 4, 4, "4"]
    scales = ["csat5", "csat5", "csat5", "csat5", "csat10", None, "CSAT5", "csat5"]
    v, c, ok = ratings_to_valence(ratings, scales)
    assert ok.tolist() == [False] * 7 + [True]
    assert np.isnan(v[:7]).all() and v[7] == 0.5
    assert c.tolist() == [0.0] * 7 + [RATING_CONFIDENCE]


def test_one_scale_name_is_broadcast():
    v, _, ok = ratings_to_valence(np.array([0, 10, 11]), "nps")
    assert v[:2].tolist() == [-1.0, 1.0] and ok.tolist() == [True, True, False]


def test_empty_input_and_length_mismatch():
    v, c, ok = ratings_to_valence([], [])
    assert len(v) == len(c) == len(ok) == 0
    with pytest.raises(ValueError, match="same length"):
        ratings_to_valence([1, 2], ["csat5"])


@settings(max_examples=150, deadline=None)
@given(
    scale=st.sampled_from(sorted(RATING_SCALES)),
    rating=st.floats(min_value=-20, max_value=20, allow_nan=False),
)
def test_vectorised_matches_the_scalar_contract_function(scale, rating):
    v, c, ok = ratings_to_valence([rating], [scale])
    try:
        expected = rating_to_valence(rating, scale)
    except InvalidEventError:
        assert not ok[0] and math.isnan(v[0]) and c[0] == 0.0
    else:
        assert ok[0] and v[0] == pytest.approx(expected, abs=1e-12) and -1.0 <= v[0] <= 1.0
