"""Emotion cues: the fast phrase matcher counts exactly what one alternative per phrase would."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.score.emotions import CUES, EMOTIONS, detect_emotions
from keymoments.score.emotions import _CueSet as CueSet


def _reference_phrases(cues: tuple[str, ...]) -> re.Pattern[str]:
    """The plain matcher: one alternative per phrase, each behind its own word boundary."""
    parts = []
    for c in cues:
        if c.replace("'", "").isalnum() or (c.endswith("*") and c[:-1].replace("'", "").isalnum()):
            continue
        if not c[0].isalnum():
            parts.append(re.escape(c))
            continue
        body = re.escape(c.rstrip("*")).replace(r"\ ", r"\s+")
        parts.append(rf"\b{body}" + (r"\w*" if c.endswith("*") else (r"\b" if c[-1].isalnum() else "")))
    return re.compile("|".join(parts), re.I)


_PIECES = [p for cues in CUES.values() for p in cues] + ["the", "a", "Still", "NOT", "so", ",", "!", "x", "again!"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.sampled_from([" ", "  ", "\n", "", "-"]))
def test_factored_phrases_match_the_plain_alternation(pieces, sep):
    text = sep.join(p.rstrip("*") for p in pieces)
    for emo in EMOTIONS:
        fast = CueSet(CUES[emo]).phrases
        assert fast is not None
        assert fast.findall(text) == _reference_phrases(CUES[emo]).findall(text), (emo, text)


def test_phrases_and_words_are_counted():
    out = detect_emotions(
        ["I am sick of this, fed up, never again!!!", "Please help, I will miss my flight", "Thank you so much 🙏"],
        np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.02, 0.08, 0.9]]),
    )
    assert list(out["emotion"]) == ["anger", "anxiety", "gratitude"]
    assert out["emotion_anger"][0] > 0.9
