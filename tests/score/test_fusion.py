"""Fusion of rating and text: golden values, source rules, and invariants for any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keymoments.score.fusion import FUSED_CONFIDENCE_MAX, MIN_CONFIDENCE, SOURCES, fuse

nan = float("nan")


def test_golden_both_agreeing_and_disagreeing():
    # agree: valence 0.5; confidence 1 - (1 - 0.9)(1 - 0.5) = 0.95
    v, c, s = fuse([0.5], [0.9], [0.5], [0.5])
    assert v[0] == pytest.approx(0.5) and c[0] == pytest.approx(0.95) and s[0] == "both"
    # rating +1 (0.9), text 0 (0.5): valence 0.9 / 1.4; confidence 0.95 * (1 - 1/4)
    v, c, s = fuse([1.0], [0.9], [0.0], [0.5])
    assert v[0] == pytest.approx(0.9 / 1.4) and c[0] == pytest.approx(0.95 * 0.75)
    # full disagreement halves the confidence
    v, c, _ = fuse([1.0], [0.9], [-1.0], [0.9])
    assert v[0] == pytest.approx(0.0) and c[0] == pytest.approx(0.99 * 0.5)


def test_confidence_is_capped():
    _, c, _ = fuse([0.2], [0.9], [0.2], [0.95])  # noisy-or 0.995 -> 0.99
    assert c[0] == FUSED_CONFIDENCE_MAX


def test_source_rules():
    rv = [0.5, 0.5, nan, nan, 0.5, nan, 0.5]
    rc = [0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9]
    tv = [0.1, nan, -0.4, nan, 0.3, 0.3, 0.3]
    tc = [0.5, 0.0, 0.3, 0.0, 0.4, 0.4, 0.0]
    v, c, s = fuse(rv, rc, tv, tc)
    assert s.tolist() == ["both", "rating", "text", "none", "text", "text", "rating"]
    assert v[1] == 0.5 and c[1] == 0.9  # rating alone passes through
    assert v[2] == -0.4 and c[2] == 0.3  # text alone passes through
    assert np.isnan(v[3]) and c[3] == 0.0  # none: NaN valence, confidence 0
    # a valence with confidence 0, or a NaN valence with confidence > 0, does not count
    assert v[4] == 0.3 and v[5] == 0.3 and v[6] == 0.5


def test_inputs_are_cleaned():
    v, c, s = fuse([3.0, -np.inf], [2.0, 0.9], [nan, 0.2], [nan, -1.0])
    assert v[0] == 1.0 and c[0] == 1.0 and s[0] == "rating"  # clipped valence and confidence
    assert np.isnan(v[1]) and s[1] == "none"  # infinite valence and negative confidence are absent


def test_scalars_broadcast_and_lengths_must_match():
    v, _, s = fuse(0.5, 0.9, [0.1, nan], [0.5, 0.0])
    assert s.tolist() == ["both", "rating"] and v[1] == 0.5
    with pytest.raises(ValueError, match="one length"):
        fuse([0.1, 0.2], [0.9, 0.9], [0.1, 0.2, 0.3], [0.5, 0.5, 0.5])


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
arrays = hnp.arrays(np.float64, 8, elements=floats)


@settings(max_examples=120, deadline=None)
@given(rv=arrays, rc=arrays, tv=arrays, tc=arrays)
def test_invariants_for_any_input(rv, rc, tv, tc):
    v, c, s = fuse(rv, rc, tv, tc)
    assert set(s) <= set(SOURCES)
    assert ((c >= 0) & (c <= 1)).all()
    finite = ~np.isnan(v)
    assert ((v[finite] >= -1) & (v[finite] <= 1)).all()
    assert (np.isnan(v) == (s == "none")).all()
    assert ((c == 0) == (s == "none")).all()
    has_r = np.isfinite(rv) & (np.nan_to_num(rc, nan=0.0) >= MIN_CONFIDENCE)
    has_t = np.isfinite(tv) & (np.nan_to_num(tc, nan=0.0) >= MIN_CONFIDENCE)
    assert ((s == "both") == (has_r & has_t)).all()
    assert ((s == "rating") == (has_r & ~has_t)).all()
    assert ((s == "text") == (~has_r & has_t)).all()


unit = st.floats(-1, 1)
conf = st.floats(0.01, 1)


@settings(max_examples=150, deadline=None)
@given(rv=unit, rc=conf, tv=unit, tc=conf)
def test_both_lies_between_and_agreement_raises_confidence(rv, rc, tv, tc):
    v, c, _ = fuse([rv], [rc], [tv], [tc])
    assert min(rv, tv) - 1e-12 <= v[0] <= max(rv, tv) + 1e-12
    _, c_same, _ = fuse([rv], [rc], [rv], [tc])
    assert c_same[0] >= min(max(rc, tc), FUSED_CONFIDENCE_MAX) - 1e-12
    assert c[0] <= c_same[0] + 1e-12
