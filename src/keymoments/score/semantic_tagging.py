"""Zero-shot touchpoint tagging by meaning: texts go to the touchpoints whose descriptions they are closest to.

:class:`SemanticTagger` implements the :class:`~keymoments.score.tagging.Tagger` interface with the full
6-layer all-MiniLM-L6-v2 (trained for semantic similarity; int8, :func:`~keymoments.score.embed.tagging_encoder`,
which keeps every layer's vector so that a sentiment head of fewer layers can read the same pass:
:func:`keymoments.score.one_pass.score_and_tag`). Fewer layers tag faster but worse (``docs/experiments.md``).
How it decides:

0. Texts are made :func:`readable` first: links and anonymised handles (``@115911``) go, a named handle is read
   as its words (``@AmazonHelp`` → "Amazon Help"), so the brand counts as evidence and the noise does not.
1. Each touchpoint gets several prototypes (:func:`prototypes`): ``"<name>: <description>"``, the name alone,
   each phrase of the description (split at commas, semicolons, colons, " - ", " and ", " or "), so a short
   customer text ("where is my parcel") can match one phrase ("late, missing or lost deliveries").
2. The semantic score of a touchpoint is the best cosine similarity of the text with its prototypes.
3. It is blended with the word-overlap score of :class:`~keymoments.score.tagging.LexicalTagger`, weight
   ``lexical_weight``: an exact shared word ("check-in") is strong evidence that embeddings blur. With
   ``lexical_weight=None`` (the default) the weight follows how alike the calibration texts are: their mean
   pairwise cosine similarity ``h`` (:func:`homogeneity`) gives weight 0.15 up to ``h`` = 0.2, rising linearly
   to 0.7 at ``h`` = 0.3 and above (:func:`lexical_weight_for`; :attr:`SemanticTagger.homogeneity_` and
   :attr:`SemanticTagger.lexical_weight_` say what it found and used). When every text is about one business
   (all to an airline) a sentence vector mostly says "airline", and the words that differ (bag, refund,
   delayed) are what tells the touchpoints apart. The scale is the 6-layer encoder's: with fewer layers any two
   texts look alike, so an encoder of fewer layers keeps 0.15.

   *Calibration* (``reference`` texts, or :meth:`SemanticTagger.calibrate`): on the business's own unlabelled
   texts (at least :data:`MIN_REFERENCE`) the tagger measures each touchpoint's mean and spread of semantic score
   and from then on standardises it, ``m + sd * (s_j - mean_j) / sd_j`` (``m`` and ``sd`` the averages over
   touchpoints, so scores stay on the cosine scale and the threshold keeps its meaning). It evens out
   touchpoints whose prototypes are close to almost any text. No labels are used.

   *Refinement* (with the same reference texts, weight ``refine``, 0.7): each reference text is tagged as above;
   per touchpoint, the more confident half of the texts tagged with it (at least 5) are averaged into a
   centroid, and a text's final score blends its prototype score with its (calibrated, lexically blended)
   similarity to each centroid: the customers' own phrasing of each touchpoint, still without labels.

   *Labelled examples* (``examples`` in ``journey.yaml``, or :func:`~keymoments.score.tagging.add_examples`)
   are averaged into one centroid per touchpoint, whose (lexically blended) cosine similarity is blended in with
   weight ``n / (n + examples_at_half)`` for a touchpoint with ``n`` examples (10: ten examples weigh as much as
   the description). A centroid rather than each example as a prototype, so that one mislabelled example cannot
   capture every text near it.
4. The best touchpoint wins when its blended score reaches ``threshold`` (0.2), unless the text is *vague*:
   at most ``vague_words`` (1) word that says something (stop words, handles and links aside) and a best score
   under ``vague_score`` (0.35; 0 turns the rule off), such as "@sprintcare Why??"; otherwise the answer is
   :data:`~keymoments.score.tagging.OTHER`. It is also ``other`` when the text is *generic*: closer (by more
   than ``generic_margin``, 0.05; ``None`` turns the rule off) to one of :data:`GENERIC_TEXTS`, statements with
   no subject, than to any prototype or example centroid of any touchpoint (the refinement centroids do not
   count as specific here). Review sentences are often verdicts that name no touchpoint, yet calibrated scores
   always have a best one. Every touchpoint within ``margin`` (0.04) of the best and above the threshold is also
   listed in ``labels`` (multi-label: "lost my bag *and* missed the connection").
5. Confidence: the softmax weight of the best touchpoint over all touchpoints and "other" (whose score is the
   threshold) at temperature 0.05; 0 for "other" and blank texts.

How well it tags, on held-out hand-labelled sets: the README's measured figures (``bench/bench_text_eval.py
--heldout``). Why each step and setting is as it is, and what the alternatives scored: ``docs/experiments.md``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keymoments.events import JourneyModel
from keymoments.exceptions import ConfigError, NotEnoughDataError
from keymoments.score.embed import _URL
from keymoments.score.tagging import OTHER, TouchpointTags, terms

__all__ = [
    "GENERIC_TEXTS",
    "MIN_REFERENCE",
    "SemanticTagger",
    "SemanticTouchpointTags",
    "content_words",
    "homogeneity",
    "lexical_weight_for",
    "prototypes",
    "readable",
]

#: The fewest non-blank texts :meth:`SemanticTagger.calibrate` accepts (a mean and spread per touchpoint).
MIN_REFERENCE = 50
#: The lexical weight across domains (texts to many brands) and within one, and the homogeneity of the
#: calibration texts (mean pairwise cosine) at which each applies; linear in between (see the module, step 3).
LEXICAL_WEIGHTS = (0.15, 0.7)
HOMOGENEITY_RANGE = (0.2, 0.3)
#: Statements with no subject: verdicts, recommendations, thanks, bare feelings and bare questions. A text
#: nearer to one of these than to every touchpoint is ``other`` (see the module, step 4). Written on 2026-12-06
#: from general knowledge of how reviews and customer messages sum up an experience, with no benchmark row in
#: view and not tried against any before it was fixed (docs/experiments.md).
GENERIC_TEXTS = (
    "Excellent, five stars.", "Absolutely loved it!", "Would definitely recommend.", "Best experience ever.",
    "We will be back.", "Thank you so much!", "Pretty good overall.", "It's fine, nothing special.",
    "Average at best.", "Not impressed.", "Total letdown.", "Avoid at all costs.", "Horrible experience.",
    "I'm so disappointed.", "Completely unacceptable.", "I will never come back.", "I'm done with you.",
    "Ugh, so frustrating.", "Seriously?", "Hello? Anyone there?", "Can someone help me?", "Any update?",
)  # fmt: skip

_SPLIT = re.compile(r"[,;:]|\s+-\s+|\s+and\s+|\s+or\s+")
_LINK = _URL.pattern  # links, as the encoder's own normalize_text finds them
_NOISE = re.compile(rf"@\d+\b|{_LINK}")  # anonymised handles (@115911) and links: no meaning to match
_HANDLE = re.compile(r"@(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_MENTION = re.compile(rf"@\w+|{_LINK}")


def readable(text: str) -> str:
    """A social-media text as words the encoder can match: links and numeric handles dropped, a named
    handle read as its words (the brand is evidence of the topic: ``@British_Airways`` → "British Airways").

    >>> readable("@AskPlayStation @115911 still not working https://t.co/x")
    'Ask Play Station still not working'
    """
    out = _HANDLE.sub(lambda m: _CAMEL.sub(" ", m.group(1).replace("_", " ")), _NOISE.sub(" ", text))
    out = " ".join(out.split())
    return out or text


def homogeneity(emb: np.ndarray) -> float:
    """Mean cosine similarity between two different rows of ``emb`` (unit vectors); 0.0 for fewer than two."""
    n = len(emb)
    if n < 2:
        return 0.0
    total = emb.astype(np.float64).sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", emb, emb, dtype=np.float64)) / (n * (n - 1)))


def lexical_weight_for(h: float) -> float:
    """The lexical weight for calibration texts of homogeneity ``h`` (see the module, step 3).

    >>> lexical_weight_for(0.17), lexical_weight_for(0.25), lexical_weight_for(0.32)
    (0.15, 0.425, 0.7)
    """
    lo, hi = HOMOGENEITY_RANGE
    share = min(max((h - lo) / (hi - lo), 0.0), 1.0)
    return round(LEXICAL_WEIGHTS[0] + share * (LEXICAL_WEIGHTS[1] - LEXICAL_WEIGHTS[0]), 3)


def content_words(text: str) -> int:
    """How many words of a text say something (stop words, handles and links left out)."""
    return len(terms(_MENTION.sub(" ", text)))


def prototypes(name: str, description: str) -> list[str]:
    """The texts a touchpoint is recognised by (see the module).

    >>> prototypes("baggage", "Collecting luggage at the carousel, damaged or lost bags")
    ['baggage: Collecting luggage at the carousel, damaged or lost bags', 'baggage', 'Collecting luggage at the carousel', 'damaged', 'lost bags']
    """
    label = name.replace("_", " ").replace("-", " ").strip()
    out = [f"{label}: {description}".strip(" :") if description else label, label]
    out += [p.strip(" .") for p in _SPLIT.split(description or "") if len(p.strip(" .")) > 2]
    return list(dict.fromkeys(out))


@dataclass
class SemanticTouchpointTags(TouchpointTags):
    """TouchpointTags plus, per text, every touchpoint that fits (multi-label; empty for other/blank)."""

    labels: list[tuple[str, ...]] = field(default_factory=list)


class SemanticTagger:
    """Tag texts with the journey's touchpoints by embedding similarity (see the module)."""

    name = "semantic-minilm"

    def __init__(
        self,
        journey: JourneyModel,
        *,
        threshold: float = 0.2,
        margin: float = 0.04,
        temperature: float = 0.05,
        lexical_weight: float | None = None,
        refine: float = 0.7,
        vague_words: int = 1,
        vague_score: float = 0.35,
        generic_margin: float | None = 0.05,
        examples_at_half: float = 10.0,
        encoder=None,
        reference: Iterable[Any] | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"The 'threshold' parameter of SemanticTagger must be in [0, 1]. Got {threshold!r} instead.")
        if not journey.touchpoints:
            raise ConfigError("The journey model has no touchpoints to tag text with; add some to journey.yaml.")
        if lexical_weight is not None and not 0.0 <= lexical_weight <= 1.0:
            raise ConfigError(
                f"The 'lexical_weight' parameter of SemanticTagger must be in [0, 1], or None to set it from "
                f"how alike the calibration texts are. Got {lexical_weight!r} instead."
            )
        if not 0.0 <= refine <= 1.0:
            raise ConfigError(f"The 'refine' parameter of SemanticTagger must be in [0, 1]. Got {refine!r} instead.")
        if vague_words < 0:
            raise ConfigError(f"The 'vague_words' parameter of SemanticTagger must be >= 0 (0 turns the vague-text rule off). Got {vague_words!r} instead.")
        self.journey = journey
        self.lexical_weight = lexical_weight
        #: the weight in use: ``lexical_weight``, or when that is None, set by :meth:`calibrate` (0.15 before)
        self.lexical_weight_ = LEXICAL_WEIGHTS[0] if lexical_weight is None else lexical_weight
        #: how alike the calibration texts are (mean pairwise cosine), None before :meth:`calibrate`
        self.homogeneity_: float | None = None
        self.refine = refine
        self.vague_words = vague_words
        self.vague_score = vague_score
        if generic_margin is not None and not -1.0 <= generic_margin <= 1.0:
            raise ConfigError(
                f"The 'generic_margin' parameter of SemanticTagger must be in [-1, 1], or None to turn the "
                f"generic-text rule off. Got {generic_margin!r} instead."
            )
        self.generic_margin = generic_margin
        if examples_at_half <= 0:
            raise ConfigError(f"The 'examples_at_half' parameter of SemanticTagger must be > 0. Got {examples_at_half!r} instead.")
        self.examples_at_half = examples_at_half
        self.threshold = threshold
        self.margin = margin
        self.temperature = temperature
        if encoder is None:
            from keymoments.score.embed import tagging_encoder  # noqa: PLC0415

            encoder = tagging_encoder()
        self.encoder_ = encoder
        self._lock = threading.Lock()
        self.reference_mean_: np.ndarray | None = None
        self.reference_std_: np.ndarray | None = None
        self.centroids_: np.ndarray | None = None  # (k, d) from the reference texts, when refining
        self._reference_texts: list[str] = []
        self._reference_emb = np.zeros((0, 0), dtype=np.float32)
        self._fit()
        if reference is not None:
            self.calibrate(reference)

    def calibrate(self, texts: Iterable[Any]) -> SemanticTagger:
        """Standardise each touchpoint's semantic score on these unlabelled texts (see the module); returns self.

        Use the business's own customer texts (the ones to tag are fine): at least :data:`MIN_REFERENCE`.
        """
        items = [readable(t) for t in texts if isinstance(t, str) and t.strip()]
        if len(items) < MIN_REFERENCE:
            raise NotEnoughDataError(
                f"Calibrating the SemanticTagger needs at least {MIN_REFERENCE} non-blank texts; got {len(items)}. "
                "Pass more of your customer texts, or tag without calibration."
            )
        with self._lock:
            every = self.encoder_.encode(items)
        emb = _last(every)
        raw = self.semantic_scores(emb)
        self.homogeneity_ = homogeneity(emb)
        if self.lexical_weight is None and getattr(self.encoder_, "n_layers", 6) == 6:
            # the corners were measured with the whole encoder: fewer layers make every text alike (0.6-0.7)
            self.lexical_weight_ = lexical_weight_for(self.homogeneity_)
        self.reference_mean_ = raw.mean(axis=0)
        self.reference_std_ = np.maximum(raw.std(axis=0), 1e-6)
        self.n_reference_ = len(items)
        self._reference_texts, self._reference_emb = items, every  # tagging the same texts next reuses them
        self.centroids_ = None
        if self.refine > 0:
            self._fit_centroids(emb, self._blend(self._calibrated(raw), self._lexical(items)))
        return self

    def _fit_centroids(self, emb: np.ndarray, scores: np.ndarray) -> None:
        """Per touchpoint, the mean of the more confident half of the reference texts tagged with it."""
        best = np.argmax(scores, axis=1)
        value = scores[np.arange(len(scores)), best]
        centroids = np.zeros((len(self.touchpoints_), emb.shape[1]), dtype=np.float32)
        for j in range(len(self.touchpoints_)):
            mine = np.where(best == j)[0]
            if len(mine) == 0:  # no reference text: the touchpoint keeps its prototype score alone
                continue
            top = mine[np.argsort(-value[mine], kind="stable")[: max(5, len(mine) // 2)]]
            c = emb[top].mean(axis=0)
            centroids[j] = c / max(float(np.linalg.norm(c)), 1e-9)
        sims = emb @ centroids.T
        self.centroids_ = centroids
        self.centroid_mean_ = sims.mean(axis=0)
        self.centroid_std_ = np.maximum(sims.std(axis=0), 1e-6)

    def __repr__(self) -> str:
        cal = (
            f", calibrated on {self.n_reference_} texts (homogeneity {self.homogeneity_:.2f}, lexical weight "
            f"{self.lexical_weight_})"
            if self.reference_mean_ is not None
            else ""
        )
        cal += f", refined {self.refine}" if self.centroids_ is not None else ""
        return f"SemanticTagger({len(self.touchpoints_)} touchpoints, threshold={self.threshold}{cal})"

    def _fit(self) -> None:
        from keymoments.score.tagging import LexicalTagger  # noqa: PLC0415

        texts: list[str] = []
        owner: list[int] = []
        for j, tp in enumerate(self.journey.touchpoints):
            for proto in prototypes(tp.name, tp.description):
                texts.append(proto)
                owner.append(j)
        examples = [(j, readable(e)) for j, tp in enumerate(self.journey.touchpoints) for e in tp.examples
                    if isinstance(e, str) and e.strip()]  # fmt: skip
        with self._lock:
            self.prototypes_ = _last(self.encoder_.encode(texts)).astype(np.float32)
            self.generic_ = _last(self.encoder_.encode(list(GENERIC_TEXTS))).astype(np.float32)
            example_emb = _last(self.encoder_.encode([e for _, e in examples])) if examples else None
        k = len(self.journey.touchpoints)
        self.example_counts_ = np.bincount([j for j, _ in examples], minlength=k).astype(float)
        self.example_centroids_ = np.zeros((k, self.prototypes_.shape[1]), dtype=np.float32)
        if example_emb is not None:
            of = np.array([j for j, _ in examples])
            for j in np.flatnonzero(self.example_counts_).tolist():
                c = example_emb[of == j].mean(axis=0)
                self.example_centroids_[j] = c / max(float(np.linalg.norm(c)), 1e-9)
        self.prototype_texts_ = tuple(texts)
        self.owner_ = np.asarray(owner)
        self.touchpoints_ = tuple(tp.name for tp in self.journey.touchpoints)
        self.lexical_ = LexicalTagger(self.journey) if self.lexical_weight != 0 else None

    def semantic_scores(self, emb: np.ndarray) -> np.ndarray:
        """(n, k): per touchpoint, the best cosine similarity with its prototypes (uncalibrated)."""
        sims = emb @ self.prototypes_.T
        out = np.full((len(emb), len(self.touchpoints_)), -1.0)
        for j in range(len(self.touchpoints_)):
            out[:, j] = sims[:, self.owner_ == j].max(axis=1)
        return out

    def _lexical(self, items: list[Any]) -> np.ndarray | None:
        """The lexical tagger's scores of the texts, or None when it is not blended in."""
        return self.lexical_.tag(items).scores if self.lexical_ is not None and len(items) else None

    def _blend(self, semantic: np.ndarray, lexical: np.ndarray | None) -> np.ndarray:
        """Semantic scores (clipped to [-1, 1]) blended with the lexical ones, weight ``lexical_weight``."""
        scores = np.clip(semantic, -1.0, 1.0)
        w = self.lexical_weight_
        return scores if lexical is None else (1.0 - w) * scores + w * lexical

    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        if self.reference_mean_ is None or self.reference_std_ is None:
            return scores
        return _standardise(scores, self.reference_mean_, self.reference_std_)

    def _generic(self, emb: np.ndarray, raw: np.ndarray, example_sims: np.ndarray | None) -> np.ndarray:
        """(n,) bool: the texts nearer to a statement with no subject than to any touchpoint (module, step 4).

        ``raw``: the prototype scores; ``example_sims``: the cosines with the example centroids, or None.
        """
        if self.generic_margin is None or not len(emb):
            return np.zeros(len(emb), dtype=bool)
        specific = raw.max(axis=1)
        if example_sims is not None:  # the business's own examples say what a specific text looks like too
            specific = np.maximum(specific, example_sims[:, self.example_counts_ > 0].max(axis=1))
        return (emb @ self.generic_.T).max(axis=1) > specific + self.generic_margin

    def tag(self, texts: Iterable[Any]) -> SemanticTouchpointTags:
        """Tag a batch of texts; blank or missing texts get touchpoint None and confidence 0.

        ``confidence`` of a tagged text is ``softmax([s_1..s_k, threshold] / temperature)`` at the best
        touchpoint: high when one touchpoint clearly beats both the others and "other".
        """
        given = list(texts)
        return self.tag_encoded(given, self.encode(given))

    def encode(self, texts: Iterable[Any]) -> np.ndarray:
        """(n, d) the unit vectors :meth:`tag` compares (of the :func:`readable` texts; blank: the empty text's)."""
        return _last(self.encode_layers(texts))

    def encode_layers(self, texts: Iterable[Any]) -> np.ndarray:
        """What the encoder gives for the :func:`readable` texts: (n, layers, d) from an encoder that keeps every
        layer (the default), whose last layer is :meth:`encode`'s; (n, d) from one that does not."""
        items = [readable(t) if isinstance(t, str) else "" for t in texts]
        with self._lock:
            if items and items == self._reference_texts:  # the texts it was calibrated on: encoded already
                return self._reference_emb
            if items:
                return self.encoder_.encode(items)
        return np.zeros((0, self.prototypes_.shape[1]), dtype=np.float32)

    def tag_encoded(self, texts: list[Any], emb: np.ndarray) -> SemanticTouchpointTags:
        """:meth:`tag` of texts whose vectors :meth:`encode` gave already (``emb``)."""
        given = texts
        n, k = len(given), len(self.touchpoints_)
        blank = np.array([not (isinstance(t, str) and t.strip()) for t in given], dtype=bool)
        items = [readable(t) if isinstance(t, str) else "" for t in given]
        lexical = self._lexical(items)
        raw = self.semantic_scores(emb).reshape(n, k)
        scores = self._blend(self._calibrated(raw), lexical)
        if self.centroids_ is not None and n:
            near = self._blend(_standardise(emb @ self.centroids_.T, self.centroid_mean_, self.centroid_std_), lexical)
            has = np.linalg.norm(self.centroids_, axis=1) > 0  # touchpoints no reference text went to
            scores = np.where(has, (1.0 - self.refine) * scores + self.refine * near, scores)
        example_sims = None
        if self.example_counts_.any() and n:
            example_sims = emb @ self.example_centroids_.T  # raw cosine: standardising it on the reference did worse
            weight = self.example_counts_ / (self.example_counts_ + self.examples_at_half)
            scores = (1.0 - weight) * scores + weight * self._blend(example_sims, lexical)
        best_j = np.argmax(scores, axis=1) if n else np.zeros(0, dtype=int)
        best = scores[np.arange(n), best_j] if n else np.zeros(0)
        vague = np.array([content_words(t) <= self.vague_words if isinstance(t, str) else True for t in given], dtype=bool) & (best < self.vague_score)
        hit = (best >= self.threshold) & ~blank & ~vague & ~self._generic(emb, raw, example_sims)
        z = np.concatenate([scores, np.full((n, 1), self.threshold)], axis=1) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        confidence = np.where(hit, soft[np.arange(n), best_j] if n else 0.0, 0.0)
        names = np.array(self.touchpoints_, dtype=object)
        touchpoint = np.where(hit, names[best_j] if n else names[:0], OTHER).astype(object)
        touchpoint[blank] = None
        labels: list[tuple[str, ...]] = []
        for i in range(n):
            if not hit[i]:
                labels.append(())
                continue
            close = np.where((scores[i] >= self.threshold) & (scores[i] >= best[i] - self.margin))[0]
            labels.append(tuple(names[j] for j in close[np.argsort(-scores[i, close], kind="stable")]))
        return SemanticTouchpointTags(touchpoint, confidence, scores, self.touchpoints_, labels)


def _last(emb: np.ndarray) -> np.ndarray:
    """The last layer's vectors of an every-layer encoder's (n, layers, d) output; (n, d) as it is."""
    return emb[:, -1] if emb.ndim == 3 else emb


def _standardise(scores: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-column standardisation kept on the scale of the inputs: ``m + sd * (s_j - mean_j) / std_j``."""
    return mean.mean() + std.mean() * (scores - mean) / std
