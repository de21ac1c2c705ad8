"""The lexicon text scorer: VADER, offline and fast, the fallback every install has.

VADER (Hutto & Gilbert, ICWSM 2014; MIT licence) ships its lexicon inside the ``vaderSentiment`` package, so
nothing is downloaded. :class:`LexiconScorer` (name ``"lexicon-vader"``) turns a batch of texts into:

``valence``
    VADER's compound score, in [-1, 1].
``sentiment``
    VADER's rule: ``positive`` when compound ≥ 0.05, ``negative`` when compound ≤ -0.05, else ``neutral``.
``confidence``
    How much sentiment evidence the text carries, in [0, :data:`TEXT_CONFIDENCE_MAX`]::

        strength = |compound|                       0 for a text with no sentiment words
        support  = 1 - exp(-n_tokens / 3)          short texts say little: 1 token 0.28, 3 0.63, 10 0.96
        purity   = |pos - neg| / (pos + neg)        1 when the sentiment words agree, 0 when they cancel
        confidence = FLOOR + (MAX - FLOOR) * strength * support * (0.5 + 0.5 * purity)

    with ``FLOOR = 0.05`` (a non-empty text is a weak observation even when it is neutral) and
    ``MAX = 0.75``, always below the confidence of an explicit rating (``RATING_CONFIDENCE = 0.9``): a
    lexicon misses sarcasm, domain words ("delayed", "cancelled" are not in it) and negation scope.
    ``n_tokens`` counts VADER's whitespace tokens; ``pos``/``neg`` are VADER's proportions. A blank or
    missing text gets confidence 0 (and valence 0, sentiment ``neutral``, as :class:`TextScores` says).
``probabilities``
    An (n, 3) array in :data:`SENTIMENTS` order: VADER's ``(neg, neu, pos)`` proportions of the text's
    sentiment mass, renormalised to sum to 1 (``(0, 1, 0)`` for a blank text). They say how the words split,
    not how sure the model is: a long, clearly positive text still has most of its mass on neutral words, so
    their arg-max may differ from ``sentiment``, which follows the compound rule above.

Speed: the scores are VADER's to the last digit (a test checks them against
``SentimentIntensityAnalyzer.polarity_scores``), computed by a subclass that skips the per-character emoji pass
for texts without emoji and lower-cases each text's tokens once instead of once per sentiment word. One
analyzer (the lexicon, ~7.5k entries) is built per process and shared; blank texts are skipped; identical
texts in a batch are scored once.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from vaderSentiment import vaderSentiment as _vs

from keymoments.events import RATING_CONFIDENCE
from keymoments.score.base import SENTIMENTS, TextScores, sentiment_from_valence
from keymoments.score.language import warn_if_not_english

__all__ = ["TEXT_CONFIDENCE_FLOOR", "TEXT_CONFIDENCE_MAX", "LexiconScorer", "text_confidence"]

#: Confidence of a non-empty text that carries no sentiment words.
TEXT_CONFIDENCE_FLOOR = 0.05
#: The most confidence a lexicon gives a text: below an explicit rating's.
TEXT_CONFIDENCE_MAX = 0.75
assert TEXT_CONFIDENCE_MAX < RATING_CONFIDENCE

#: Tokens at which a text's support reaches 1 - 1/e.
_SUPPORT_TOKENS = 3.0

_NEGATE = frozenset(_vs.NEGATE)
_PUNCTUATION = string.punctuation
# probabilities are VADER's (neg, neu, pos) columns, in SENTIMENTS order
assert SENTIMENTS == ("negative", "neutral", "positive")


def text_confidence(
    compound: np.ndarray, neg: np.ndarray, pos: np.ndarray, n_tokens: np.ndarray
) -> np.ndarray:
    """The lexicon confidence rule (see the module docstring), vectorised; 0 where ``n_tokens == 0``."""
    compound = np.asarray(compound, dtype=float)
    neg = np.asarray(neg, dtype=float)
    pos = np.asarray(pos, dtype=float)
    n_tokens = np.asarray(n_tokens, dtype=float)
    strength = np.clip(np.abs(compound), 0.0, 1.0)
    support = 1.0 - np.exp(-n_tokens / _SUPPORT_TOKENS)
    polar = pos + neg
    purity = np.divide(np.abs(pos - neg), polar, out=np.zeros_like(polar), where=polar > 0)
    conf = TEXT_CONFIDENCE_FLOOR + (TEXT_CONFIDENCE_MAX - TEXT_CONFIDENCE_FLOOR) * strength * support * (
        0.5 + 0.5 * purity
    )
    return np.where(n_tokens > 0, np.clip(conf, 0.0, TEXT_CONFIDENCE_MAX), 0.0)


class _Words(list):
    """VADER's token list, carrying the tokens lower-cased once (``lower``)."""

    __slots__ = ("lower",)


class _SentiText:
    """What ``vaderSentiment.SentiText`` computes (tokens, the all-caps differential), in one pass."""

    __slots__ = ("is_cap_diff", "text", "words_and_emoticons")

    def __init__(self, text: str) -> None:
        self.text = text
        words = _Words()
        n_upper = 0
        for token in text.split():
            stripped = token.strip(_PUNCTUATION)
            word = stripped if len(stripped) > 2 else token  # short leftovers were emoticons: keep them
            words.append(word)
            n_upper += word.isupper()
        words.lower = [w.lower() for w in words]
        self.words_and_emoticons = words
        self.is_cap_diff = 0 < len(words) - n_upper < len(words)


class _FastVader(_vs.SentimentIntensityAnalyzer):
    """``SentimentIntensityAnalyzer`` with the same results and less repeated work per text.

    :meth:`scores` follows ``polarity_scores`` step by step, but leaves words outside the lexicon at 0 without
    a method call (which is what ``sentiment_valence`` does with them), and the static checks that lower-case
    the whole token list for every sentiment word read the list lower-cased once instead.
    """

    def scores(self, text: str) -> tuple[float, float, float, float, int]:
        """``(neg, neu, pos, compound, n_tokens)`` for one text, as ``polarity_scores`` computes them."""
        if text.isascii():  # every emoji in VADER's emoji lexicon is non-ASCII
            text = text.strip()
        else:
            text = self._replace_emoji(text)
        sentitext = _SentiText(text)
        words = sentitext.words_and_emoticons
        lower = words.lower
        sentiments: list[float] = []
        last = len(words) - 1
        lexicon = self.lexicon
        for i, item in enumerate(words):
            w = lower[i]
            if w not in lexicon:  # sentiment_valence leaves such a word at 0
                sentiments.append(0)
            elif w in _vs.BOOSTER_DICT or (i < last and w == "kind" and lower[i + 1] == "of"):
                sentiments.append(0)
            else:
                sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
        sentiments = self._but_check(words, sentiments)
        d = self.score_valence(sentiments, text)
        return d["neg"], d["neu"], d["pos"], d["compound"], len(words)

    def _replace_emoji(self, text: str) -> str:
        emojis = self.emojis
        if not any(ch in emojis for ch in text):
            return text.strip()
        out = []
        prev_space = True
        for ch in text:
            if ch in emojis:
                if not prev_space:
                    out.append(" ")
                out.append(emojis[ch])
                prev_space = False
            else:
                out.append(ch)
                prev_space = ch == " "
        return "".join(out).strip()

    @staticmethod
    def _but_check(words_and_emoticons: list[str], sentiments: list[float]) -> list[float]:
        # VADER's rule as written (including its list.index lookup, which finds the first equal score)
        low = getattr(words_and_emoticons, "lower", None)
        if low is None:
            low = [str(w).lower() for w in words_and_emoticons]
        if "but" in low:
            bi = low.index("but")
            for sentiment in sentiments:
                si = sentiments.index(sentiment)
                if si < bi:
                    sentiments.pop(si)
                    sentiments.insert(si, sentiment * 0.5)
                elif si > bi:
                    sentiments.pop(si)
                    sentiments.insert(si, sentiment * 1.5)
        return sentiments

    @staticmethod
    def _negation_check(valence: float, words_and_emoticons: list[str], start_i: int, i: int) -> float:
        low = getattr(words_and_emoticons, "lower", None)
        if low is None:
            low = [str(w).lower() for w in words_and_emoticons]
        prev = low[i - (start_i + 1)]
        negated = prev in _NEGATE or "n't" in prev
        if start_i == 0:
            if negated:
                valence = valence * _vs.N_SCALAR
        elif start_i == 1:
            if low[i - 2] == "never" and (low[i - 1] == "so" or low[i - 1] == "this"):
                valence = valence * 1.25
            elif low[i - 2] == "without" and low[i - 1] == "doubt":
                pass
            elif negated:
                valence = valence * _vs.N_SCALAR
        elif start_i == 2:
            if (
                low[i - 3] == "never"
                and (low[i - 2] == "so" or low[i - 2] == "this")
                or (low[i - 1] == "so" or low[i - 1] == "this")
            ):
                valence = valence * 1.25
            elif low[i - 3] == "without" and (low[i - 2] == "doubt" or low[i - 1] == "doubt"):
                pass
            elif negated:
                valence = valence * _vs.N_SCALAR
        return valence

    @staticmethod
    def _special_idioms_check(valence: float, words_and_emoticons: list[str], i: int) -> float:
        low = getattr(words_and_emoticons, "lower", None)
        if low is None:
            low = [str(w).lower() for w in words_and_emoticons]
        w3, w2, w1, w0 = low[i - 3], low[i - 2], low[i - 1], low[i]
        onezero = f"{w1} {w0}"
        twoonezero = f"{w2} {w1} {w0}"
        twoone = f"{w2} {w1}"
        threetwoone = f"{w3} {w2} {w1}"
        threetwo = f"{w3} {w2}"
        special = _vs.SPECIAL_CASES
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in special:
                valence = special[seq]
                break
        if len(low) - 1 > i:
            zeroone = f"{w0} {low[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if len(low) - 1 > i + 1:
            zeroonetwo = f"{w0} {low[i + 1]} {low[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in _vs.BOOSTER_DICT:
                valence = valence + _vs.BOOSTER_DICT[n_gram]
        return valence


@cache
def _analyzer() -> _FastVader:
    """The process's one analyzer (reading the lexicon takes ~10 ms; the object is read-only after)."""
    return _FastVader()


def _as_text(value: Any) -> str | None:
    """The text to score, or None for a missing or blank value (None, NaN, pd.NA, '', whitespace)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # not a scalar: score its str()
        pass
    text = str(value)
    return text if text.strip() else None


class LexiconScorer:
    """Score texts with VADER; see the module docstring for every rule.

    Parameters: ``dedupe`` scores identical texts of a batch once (default True).

    >>> s = LexiconScorer().score(["I love this airline!", "", "The flight was late and the crew was rude."])
    >>> s.sentiment.tolist()
    ['positive', 'neutral', 'negative']
    """

    name = "lexicon-vader"

    def __init__(self, *, dedupe: bool = True) -> None:
        self.dedupe = dedupe

    def __repr__(self) -> str:
        return f"LexiconScorer(dedupe={self.dedupe})"

    def score(self, texts: Iterable[Any]) -> TextScores:
        """Score a batch; None, NaN or blank texts get valence 0, confidence 0, sentiment ``neutral``."""
        texts = texts if isinstance(texts, list) else list(texts)
        warn_if_not_english(texts, self.name)
        scores = _analyzer().scores
        rows: list[tuple[float, float, float, float, int]] = [(0.0, 0.0, 0.0, 0.0, 0)]  # row 0: blank text
        where: list[int] = []  # the row of rows each text reads
        seen: dict[str, int] = {}
        dedupe = self.dedupe
        for value in texts:
            if type(value) is str and value and not value.isspace():
                text: str | None = value
            else:
                text = _as_text(value)
            if text is None:
                where.append(0)
            elif dedupe and text in seen:
                where.append(seen[text])
            else:
                if dedupe:
                    seen[text] = len(rows)
                where.append(len(rows))
                rows.append(scores(text))
        raw = np.array(rows, dtype=float)[np.array(where, dtype=np.intp)].reshape(-1, 5)
        neg, neu, pos, compound, n_tokens = raw.T
        valence = np.clip(compound, -1.0, 1.0)
        confidence = text_confidence(compound, neg, pos, n_tokens)
        probabilities = raw[:, [0, 1, 2]].copy()
        total = probabilities.sum(axis=1)
        blank = total <= 0
        probabilities[blank] = (0.0, 1.0, 0.0)
        probabilities[~blank] /= total[~blank, None]
        return TextScores(
            valence=valence,
            confidence=confidence,
            sentiment=sentiment_from_valence(valence),
            probabilities=probabilities,
            extra={"n_tokens": n_tokens.astype(np.int64)},
        )
