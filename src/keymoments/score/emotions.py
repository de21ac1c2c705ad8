"""Emotions beyond valence, enough to route a case: anger / frustration, anxiety, gratitude, delight.

An angry customer in a crisis wants the problem owned and fixed; an anxious one wants reassurance and a time;
a grateful or delighted one is a peak to amplify. Each emotion is scored in [0, 1] from two pieces of evidence:

1. **cues**: short word lists below (with their common spellings on social media, emoji, and signs of shouting:
   "!!!", words in capitals), counted per text; ``cue = 1 - exp(-0.9 * hits)`` (one cue → 0.59, two → 0.83);
2. **sentiment gating** with the text's (negative, neutral, positive) probabilities: anger needs a negative text
   (``0.25 + 0.75 * P(neg)``), anxiety a non-positive one (``0.25 + 0.75 * (1 - P(pos))``), gratitude a
   non-negative one (``1 - 0.75 * P(neg)``, so "thanks for nothing" stays low) and delight a positive one
   (``0.25 + 0.75 * P(pos)``).

The score is ``cue * gate``; the dominant emotion is the highest one when it reaches :data:`ROUTE_THRESHOLD`
(0.4), else ``"none"``. The lists are deliberately short and readable: a support lead can audit and extend
them (pass ``cues=`` to :func:`detect_emotions`).
"""

from __future__ import annotations

import re

import numpy as np

from keymoments.score.base import TextScores

__all__ = ["CUES", "EMOTIONS", "ROUTE_THRESHOLD", "detect_emotions", "emotions_of"]

EMOTIONS: tuple[str, ...] = ("anger", "anxiety", "gratitude", "delight")
ROUTE_THRESHOLD = 0.4

CUES: dict[str, tuple[str, ...]] = {
    "anger": (
        "worst", "terrible", "horrible", "awful", "ridiculous", "unacceptable", "disgust*", "disgrace*", "furious",
        "fuming", "angry", "mad", "livid", "pathetic", "useless", "incompetent*", "joke", "suck*", "hate", "sick of",
        "fed up", "enough is enough", "never again", "still not", "yet again", "again", "how hard", "wtf", "shit*",
        "fuck*", "hell", "damn", "crap", "rude", "scam*", "shady", "lie", "lying", "liars", "robbery", "rip off",
        "ripped off", "waste of", "wasted", "no one", "nobody", "3rd time", "third time", "repeatedly", "fix this",
        "sort it out", "lost a customer", "screwed", "shame", "😡", "🤬", "😠", "🙄", "😤",
    ),
    "anxiety": (
        "worried", "worry*", "anxious", "nervous", "scared", "afraid", "fear*", "panic*", "urgent*", "asap",
        "emergency", "stranded", "stuck", "desperate*", "stress*", "help!", "please help", "need help", "what if",
        "will i", "am i going to", "don't know what to do", "dont know what to do", "miss my", "deadline", "expires",
        "expiring", "concerned", "hope", "hoping", "unsure", "confused", "not sure", "😰", "😟", "😨", "😱", "😥", "😢",
    ),
    "gratitude": (
        "thank*", "thx", "thnx", "ty", "appreciate*", "grateful", "cheers", "kudos", "shout out", "shoutout",
        "props to", "🙏",
    ),
    "delight": (
        "love*", "loving", "amazing", "awesome", "fantastic", "wonderful", "best", "great", "excellent", "perfect",
        "delight*", "happy", "ecstatic", "wow", "brilliant", "superb", "smooth*", "impressed", "yay", "blessing",
        "delicious", "beautiful", "fabulous", "incredible", "stellar", "mvp", "❤", "❤️", "😍", "😊", "🎉", "🤩", "🥰",
        "😁", "😀", "👏",
    ),
}
_GATES = {
    "anger": lambda p: 0.25 + 0.75 * p[:, 0],
    "anxiety": lambda p: 0.25 + 0.75 * (1.0 - p[:, 2]),
    "gratitude": lambda p: 1.0 - 0.75 * p[:, 0],
    "delight": lambda p: 0.25 + 0.75 * p[:, 2],
}
_SARCASM = re.compile(r"\bthanks? (?:a lot )?for nothing\b|\bthanks to your\b", re.I)
_SHOUT = re.compile(r"!{3,}|\b[A-Z]{4,}\b")


_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


class _CueSet:
    """One emotion's cues, matched fast: single words by set lookup, stems (``word*``) by prefix, phrases and
    emoji by one small regex."""

    def __init__(self, cues: tuple[str, ...]) -> None:
        self.words = frozenset(c.lower() for c in cues if c.replace("'", "").isalnum())
        self.stems = tuple(c[:-1].lower() for c in cues if c.endswith("*") and c[:-1].replace("'", "").isalnum())
        anywhere: list[str] = []
        by_letter: dict[str, list[str]] = {}  # phrases by first letter, in the order given
        for c in cues:
            if c.replace("'", "").isalnum() or (c.endswith("*") and c[:-1].replace("'", "").isalnum()):
                continue
            if not c[0].isalnum():  # emoji / punctuation cue: match anywhere
                anywhere.append(re.escape(c))
                continue
            body = re.escape(c.rstrip("*")).replace(r"\ ", r"\s+")
            end = r"\w*" if c.endswith("*") else (r"\b" if c[-1].isalnum() else "")
            by_letter.setdefault(c[0].lower(), []).append(body[1:] + end)
        # One word boundary, then one branch per first letter: the same matches as one alternative per phrase
        # (two phrases with different first letters never match at one place), ~4x faster (the regex engine
        # tries every alternative at every position otherwise)
        parts = [r"\b(?:" + "|".join(f"{re.escape(k)}(?:{'|'.join(v)})" for k, v in by_letter.items()) + ")"] if by_letter else []
        parts += anywhere
        self.phrases = re.compile("|".join(parts), re.I) if parts else None

    def count(self, text: str, words: list[str]) -> int:
        n = sum(1 for w in words if w in self.words or (self.stems and w.startswith(self.stems)))
        if self.phrases is not None:
            n += len(self.phrases.findall(text))
        return n


_CUESETS = {e: _CueSet(ws) for e, ws in CUES.items()}


def detect_emotions(
    texts: list[str | None], probabilities: np.ndarray, cues: dict[str, tuple[str, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Per text: ``emotion_<name>`` scores in [0, 1] for each of :data:`EMOTIONS`, and ``emotion`` (the dominant
    one, or "none"; None for a blank text). ``probabilities`` are (n, 3) sentiment probabilities."""
    cuesets = _CUESETS if cues is None else {e: _CueSet(tuple(ws)) for e, ws in {**CUES, **cues}.items()}
    n = len(texts)
    proba = np.nan_to_num(np.asarray(probabilities, dtype=float).reshape(n, 3), nan=1.0 / 3.0)
    hits = np.zeros((n, len(EMOTIONS)))
    blank = np.zeros(n, dtype=bool)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            blank[i] = True
            continue
        words = _WORDS.findall(text.lower())
        for j, emo in enumerate(EMOTIONS):
            hits[i, j] = cuesets[emo].count(text, words)
        hits[i, 0] += 0.5 * len(_SHOUT.findall(text))  # shouting adds to anger
        if _SARCASM.search(text):
            hits[i, 0] += 1
            hits[i, 2] = 0
    cue = 1.0 - np.exp(-0.9 * hits)
    out: dict[str, np.ndarray] = {}
    scores = np.zeros((n, len(EMOTIONS)))
    for j, emo in enumerate(EMOTIONS):
        scores[:, j] = np.clip(cue[:, j] * _GATES[emo](proba), 0.0, 1.0)
        scores[blank, j] = 0.0
        out[f"emotion_{emo}"] = scores[:, j]
    best = np.argmax(scores, axis=1)
    dominant = np.where(scores[np.arange(n), best] >= ROUTE_THRESHOLD, np.array(EMOTIONS, dtype=object)[best], "none").astype(object)
    dominant[blank] = None
    out["emotion"] = dominant
    return out


def emotions_of(texts: list[str | None], scores: TextScores) -> dict[str, np.ndarray] | None:
    """The emotions that came with a scorer's scores (its ``extra``), else detected from its sentiment
    probabilities (the lexicon gives those too); None when it gave neither."""
    if "emotion" in scores.extra:
        return scores.extra
    if scores.probabilities is None:
        return None
    return detect_emotions(texts, scores.probabilities)
