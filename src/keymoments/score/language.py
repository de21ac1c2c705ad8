"""Does a text look English? The text models read English only (MiniLM's vocabulary and training, VADER's lexicon),
so a store of Spanish survey comments would get confident-looking sentiment that means little. This is a fast check
(a regular expression and two word lists, no model) used to *warn*, never to change a score:

- a text with fewer than :data:`MIN_LETTERS` letters, or fewer than :data:`MIN_WORDS` words in the Latin alphabet, is
  *unknown* ("ok", "Thanks!", an emoji): too short to tell;
- a text whose letters are mostly outside a-z (Japanese, Arabic, Cyrillic, Greek …) is *not English*;
- otherwise it is *not English* when it holds at least two function words of the other common Latin-alphabet
  languages ("de", "que", "und", "est", "het", "não" …) and more of them than English ones ("the", "and", "my",
  "is" …); *English* when it holds an English one; *unknown* when it holds none (keyword lists, stop-word-stripped
  text, "Delish! Well played.").

:func:`english_flags` gives the flags; :func:`warn_if_not_english` warns once per call with how many texts do not
look English and one example. Measured against langid.py on real text in ``docs/experiments.md``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from keymoments.exceptions import NotEnglishWarning

__all__ = ["ENGLISH_STOP_WORDS", "MIN_LETTERS", "MIN_WORDS", "english_flags", "warn_if_not_english"]

#: English function words and chat fillers (also the lexical tagger's stop words)
ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    im ive id dont didnt cant wont isnt its thats theres also get got us please thanks thank hi hello hey
    still even yet really one two today yesterday""".split()
)
#: frequent function words of Spanish, French, German, Portuguese, Italian and Dutch that are not English words
_FOREIGN = frozenset(
    """de la que el y en los del las por un una es con para lo se su al como pero mas más muy ya esta está este
    le les des et est une pas du je il elle nous vous ils sur avec pour dans ce qui ne au aux mais ou où très
    der die das und nicht ich ist zu mit den sie es ein eine auf für von dem des sich auch wir ihr bei noch nur
    meine mein dein wie aber denn schon hier doch ja nein bitte danke kann habe sind wird bin
    não um uma com para os ao mais muito você eu já seu sua pelo pela
    che di il della per non sono ho gli le una questo anche mi ti
    het een van ik je niet dat wat zijn op te voor met maar ook bij""".split()
) - ENGLISH_STOP_WORDS
#: English function words that are also common words of those languages ("no", "me", "he", "a", "in" …): not
#: counted as evidence either way
_SHARED = frozenset("a i in no me he so also an am on do us one hey hi hello die".split())
_ENGLISH_ONLY = ENGLISH_STOP_WORDS - _SHARED
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_ASCII_LETTERS = re.compile(r"[A-Za-z]")
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_HANDLES_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+|#\w+")
#: fewer letters than this (after handles, links and hashtags are dropped): unknown
MIN_LETTERS = 8
#: fewer Latin-alphabet words than this: unknown
MIN_WORDS = 4
#: at most this many texts are checked per call (evenly spaced), so the check costs the same on any input
SAMPLE = 500


def _flag(text: object) -> float:
    """1.0 English, 0.0 not English, nan unknown."""
    if not isinstance(text, str):
        return np.nan
    text = _HANDLES_LINKS.sub(" ", text)
    letters = len(_LETTERS.findall(text))
    if letters < MIN_LETTERS:
        return np.nan
    if len(_ASCII_LETTERS.findall(text)) < 0.5 * letters:
        return 0.0
    words = [w.lower().replace("'", "") for w in _WORDS.findall(text)]
    if len(words) < MIN_WORDS:
        return np.nan
    english = sum(w in _ENGLISH_ONLY for w in words)
    foreign = sum(w in _FOREIGN for w in words) + ("¿" in text) + ("¡" in text)
    if foreign >= 2 and foreign > english:
        return 0.0
    return 1.0 if english >= 1 else np.nan  # no function word of any of these languages: cannot tell


def english_flags(texts: list) -> np.ndarray:
    """Per text: 1.0 when it looks English, 0.0 when it does not, nan when it is too short to tell (see the module)."""
    return np.array([_flag(t) for t in texts], dtype=float)


def warn_if_not_english(texts: list, model: str, *, min_share: float = 0.05, stacklevel: int = 3) -> float:
    """Warn (:class:`~keymoments.exceptions.NotEnglishWarning`) when more than ``min_share`` of the texts that can be
    judged do not look English; returns that share (0.0 when none can be judged). Checks at most :data:`SAMPLE`
    texts, evenly spaced."""
    texts = list(texts)
    if len(texts) > SAMPLE:
        texts = [texts[i] for i in np.linspace(0, len(texts) - 1, SAMPLE).astype(int)]
    flags = english_flags(texts)
    judged = ~np.isnan(flags)
    if not judged.any():
        return 0.0
    share = float(np.mean(flags[judged] == 0.0))
    if share > min_share:
        example = next(t for t, f in zip(texts, flags, strict=True) if f == 0.0)
        shown = example if len(example) <= 60 else example[:57] + "..."
        sampled = " (in an even sample of the texts)" if judged.size == SAMPLE else ""
        warnings.warn(
            f"{share:.0%} of the texts that are long enough to tell{sampled} do not look English (e.g. {shown!r}); "
            f"the text model {model!r} reads English only, so their sentiment, emotions and tags are unreliable. "
            "Translate them first, or score only the English ones.",
            NotEnglishWarning,
            stacklevel=stacklevel,
        )
    return share
