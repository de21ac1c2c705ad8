"""Tag free text with the touchpoint it is about.

A :class:`Tagger` turns a batch of texts into a touchpoint name per text (or :data:`OTHER`) with a confidence.
v1 ships :class:`LexicalTagger`, a word-overlap model built from a :class:`~keymoments.events.JourneyModel`;
a semantic tagger can replace it behind the same interface (:func:`make_tagger` is where it plugs in).

How :class:`LexicalTagger` decides, per text:

1. Words are lower-cased, split on anything that is not a letter or digit, stripped of English stop words and
   lightly stemmed (``-ies`` → ``-y``; ``-ing``, ``-ed``, ``-s`` dropped; a final ``e`` dropped; a final
   double letter made single), so "bags"/"bag", "delayed"/"delay", "charged"/"charge" meet.
2. Each touchpoint is a document made of its name (counted twice: "check-in" is the strongest clue), its
   description and its examples. Terms are weighted by tf-idf over these documents (sublinear tf, smooth idf
   ``ln((1 + T) / (1 + df)) + 1``), so a word that names one touchpoint outweighs one that many share.
3. The text's terms that occur in some touchpoint document form its vector (other words are ignored); the
   score of touchpoint j is the cosine similarity of the two vectors, in [0, 1].
4. The best touchpoint wins (ties go to the earlier one in the journey) when its score reaches ``threshold``
   (default 0.2); otherwise the answer is :data:`OTHER`. The confidence is ``best - second / 2``: the best
   score, discounted when a second touchpoint matches almost as well; 0 for :data:`OTHER`.

Blank texts get touchpoint None and confidence 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import sparse

from keymoments.events import JourneyModel, did_you_mean
from keymoments.exceptions import ConfigError
from keymoments.score.language import ENGLISH_STOP_WORDS

__all__ = ["OTHER", "LexicalTagger", "Tagger", "TouchpointTags", "add_examples", "make_tagger", "terms"]

#: The answer when a text matches no touchpoint well enough.
OTHER = "other"

_WORD = re.compile(r"[^\W_]+")
_STOP = ENGLISH_STOP_WORDS


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The tagger's terms of a text: lower-cased words without stop words, lightly stemmed.

    >>> terms("My bags were delayed at the check-in desk!")
    ['bag', 'delay', 'check', 'desk']
    """
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


@dataclass
class TouchpointTags:
    """Tags for a batch of n texts."""

    touchpoint: np.ndarray  # object: a touchpoint name, OTHER, or None for a blank text
    confidence: np.ndarray  # float in [0, 1]
    scores: np.ndarray | None = (
        None  # (n, len(touchpoints)) similarity per touchpoint, when the tagger has them
    )
    touchpoints: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.touchpoint)


@runtime_checkable
class Tagger(Protocol):
    """What every touchpoint tagger provides."""

    #: a short stable name (e.g. "lexical-overlap")
    name: str

    def tag(self, texts: Iterable[Any]) -> TouchpointTags:
        """Tag a batch of texts; blank or missing texts get touchpoint None and confidence 0."""
        ...


class LexicalTagger:
    """Tag texts by word overlap with each touchpoint's name, description and examples (see the module).

    >>> from keymoments.events import JourneyModel, Touchpoint
    >>> jm = JourneyModel(touchpoints=[Touchpoint(name="check-in", description="counter or online check-in"),
    ...                                Touchpoint(name="baggage", description="bags at the belt, lost luggage")])
    >>> LexicalTagger(jm).tag(["They lost my luggage", "Nice weather"]).touchpoint.tolist()
    ['baggage', 'other']
    """

    name = "lexical-overlap"

    def __init__(self, journey: JourneyModel, *, threshold: float = 0.2) -> None:
        self.journey = journey
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"LexicalTagger({len(self.journey.touchpoints)} touchpoints, threshold={self.threshold})"

    def fit(self) -> LexicalTagger:
        """Check the parameters and build the touchpoint vectors (``tag`` calls it when needed); returns self."""
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"The 'threshold' parameter of LexicalTagger must be in [0, 1]. Got {self.threshold}."
            )
        tps = self.journey.touchpoints
        if not tps:
            raise ConfigError(
                "The journey model has no touchpoints to tag text with; add some to journey.yaml."
            )
        docs = []
        for tp in tps:
            name_terms = terms(tp.name.replace("_", " "))
            docs.append(
                Counter(name_terms * 2 + terms(tp.description) + [t for ex in tp.examples for t in terms(ex)])
            )
        vocab = sorted({t for d in docs for t in d})
        index = {t: i for i, t in enumerate(vocab)}
        df = Counter(t for d in docs for t in d)
        n_docs = len(docs)
        idf = np.array([math.log((1 + n_docs) / (1 + df[t])) + 1.0 for t in vocab])
        matrix = np.zeros((len(vocab), n_docs))
        for j, d in enumerate(docs):
            for t, tf in d.items():
                matrix[index[t], j] = (1.0 + math.log(tf)) * idf[index[t]]
        norms = np.linalg.norm(matrix, axis=0)
        matrix /= np.where(norms > 0, norms, 1.0)
        self.touchpoints_ = tuple(tp.name for tp in tps)
        self.vocabulary_ = index
        self.idf_ = idf
        self.matrix_ = matrix  # (vocabulary, touchpoints), unit columns
        return self

    def tag(self, texts: Iterable[Any]) -> TouchpointTags:
        """Tag a batch of texts (see the module docstring for the rule)."""
        if not hasattr(self, "matrix_"):
            self.fit()
        items = list(texts)
        n, k = len(items), len(self.touchpoints_)
        index, idf = self.vocabulary_, self.idf_
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        blank = np.zeros(n, dtype=bool)
        for i, text in enumerate(items):
            if not isinstance(text, str) or not text.strip():
                blank[i] = True
                continue
            for t, tf in Counter(t for t in terms(text) if t in index).items():
                rows.append(i)
                cols.append(index[t])
                vals.append((1.0 + math.log(tf)) * idf[index[t]])
        vectors = sparse.csr_matrix((vals, (rows, cols)), shape=(n, len(index)))
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        scores = np.clip(
            sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ vectors @ self.matrix_, 0.0, 1.0
        )
        scores = np.asarray(scores).reshape(n, k)
        top = np.argsort(-scores, axis=1, kind="stable")
        rows_i = np.arange(n)
        best_j = top[:, 0]
        best = scores[rows_i, best_j]
        second = scores[rows_i, top[:, 1]] if k > 1 else np.zeros(n)
        hit = (best >= self.threshold) & (best > 0) & ~blank
        touchpoint = np.where(hit, np.array(self.touchpoints_, dtype=object)[best_j], OTHER).astype(object)
        touchpoint[blank] = None
        confidence = np.where(hit, np.clip(best - second / 2.0, 0.0, 1.0), 0.0)
        return TouchpointTags(touchpoint, confidence, scores, self.touchpoints_)


def add_examples(journey: JourneyModel, texts: Iterable[Any], touchpoints: Iterable[Any]) -> JourneyModel:
    """A copy of ``journey`` with labelled texts added to its touchpoints' ``examples`` (the model is not changed).

    Pairs whose label is blank or :data:`OTHER`, or whose text is blank, are skipped; a label that names no
    touchpoint of the journey raises :class:`~keymoments.exceptions.ConfigError` saying which.

    >>> jm = JourneyModel(touchpoints=[{"name": "baggage"}, {"name": "flight"}])
    >>> add_examples(jm, ["bag lost", "why??", "late take-off"], ["baggage", "other", "flight"]).touchpoint("flight").examples
    ['late take-off']
    """
    names = [tp.name for tp in journey.touchpoints]
    added: dict[str, list[str]] = {n: [] for n in names}
    for text, label in zip(texts, touchpoints, strict=True):
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label.strip():
            continue
        label = label.strip()
        if label == OTHER:
            continue
        if label not in added:
            raise ConfigError(
                f"A labelled example names the touchpoint {label!r}, which the journey model does not have; "
                f"its touchpoints are {names}.{did_you_mean(label, names)} Fix the label or add the touchpoint."
            )
        added[label].append(text)
    return journey.model_copy(update={"touchpoints": [
        tp.model_copy(update={"examples": [*tp.examples, *added[tp.name]]}) for tp in journey.touchpoints
    ]})  # fmt: skip


def make_tagger(journey: JourneyModel, name: str = "auto", *, reference: Iterable[Any] | None = None) -> Tagger:
    """The tagger for a journey model: ``"semantic"`` (embedding similarity blended with word overlap),
    ``"lexical"`` (word overlap only), or ``"auto"``: semantic where its model is installed, else lexical.

    ``reference``: unlabelled customer texts (at least 50 non-blank; the ones to tag are fine) on which the
    semantic tagger calibrates its touchpoint scores (see :mod:`keymoments.score.semantic_tagging`); fewer
    are ignored, and the lexical tagger ignores them."""
    key = str(name).strip().lower()
    if key in ("lexical", LexicalTagger.name):
        return LexicalTagger(journey).fit()
    if key in ("auto", "semantic", "semantic-minilm"):
        try:
            from keymoments.score.semantic_tagging import MIN_REFERENCE, SemanticTagger

            texts = [t for t in (reference or ()) if isinstance(t, str) and t.strip()]
            return SemanticTagger(journey, reference=texts if len(texts) >= MIN_REFERENCE else None)
        except (ImportError, OSError, ConfigError):
            if key != "auto":
                raise
            return LexicalTagger(journey).fit()
    choices = ["auto", "lexical", "semantic"]
    raise ConfigError(
        f"The tagger must be one of {choices}. Got {name!r} instead.{did_you_mean(name, choices)}"
    )
