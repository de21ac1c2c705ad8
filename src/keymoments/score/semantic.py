"""The semantic text scorer: all-MiniLM-L6-v2 sentence embeddings + a small shipped sentiment head.

``SemanticScorer`` implements :class:`~keymoments.score.base.TextScorer`: per text a sentiment (negative /
neutral / positive) with calibrated probabilities, a valence ``P(positive) - P(negative)`` in [-1, 1], a
confidence (the probability of the chosen label) and, in ``extra``, the emotions of
:mod:`keymoments.score.emotions` (anger, anxiety, gratitude, delight and the dominant one).

Speed settings (``depth``): the encoder can stop after its first layers; the head shipped for each depth was
trained on that layer's pooled output (``training/train_text_head.py``). ``"fast"`` = 1 layer, ``"balanced"``
= 3 layers (default), both with int8 weights; ``"full"`` = all 6 layers, fp32. On 2 busy cores (load 4):
about 1,700, 750 and 270 tweets/s. ``bench/bench_text_eval.py`` prints quality and throughput for each.

Heads (``head``): ``"general"`` (default) was trained on review corpora only (SST-2, UCI), which have no neutral
class, so its neutral is a calibrated band; ``"support"`` is a three-class head learnt from customer-support
tweets labelled by the brand's reply (see ``training/train_text_head.py``): it knows what a neutral request
looks like, but its labels are noisy (a brand's polite "please DM us" answers many calm complaints, so it calls
too many of them neutral) and it never saw reviews (SST-2 accuracy 0.65-0.72, against 0.80 for the general
head); ``"support-labelled"`` is the same kind of head learnt from 1,200 other support tweets labelled by hand
(``training/data/README.md``). ``"blend"`` averages the three heads' probabilities with equal weights: three
models learnt from disjoint sources (reviews, a brand's replies, people's reading of the customer), each
covering another's blind spot, with no weight tuned. ``bench/bench_text_eval.py`` shows what each gives.

Registered as ``"semantic"``, ``"semantic-fast"``, ``"semantic-full"``, ``"semantic-support"`` and
``"semantic-blend"`` (fast depth, blended heads), which ``auto`` prefers: the best measured trade-off for
customer text (``bench/bench_text_eval.py``).
Long text (``long_text=True``, the default): the encoder reads at most 128 word pieces, so a long review would be
judged by its opening. A text of more than ``LONG_TEXT_WORDS`` words is cut into segments (its sentences, and
windows of ``LONG_TEXT_WORDS`` words, overlapping by a quarter, where a sentence is longer: some reviews have no
full stops), each segment is scored by the 3-layer encoder with the general head, and the text's probabilities
are the mean of its segments', each weighted by the square root of its word count (a long segment says more,
but not proportionally more), the first segment twice over (a title or an opening sentence usually states the
verdict; :func:`segment_weights`). ``TextScores.extra["segments"]`` keeps each long text's segments with their
valence and sentiment, so a quote can show the sentence that carries the emotion. Chosen on design halves of two
rated review sets; ``docs/experiments.md`` has the variants and ``bench/bench_long_text.py`` the held-out figures.

The heavy dependencies are imported when a scorer is built, never when this module is imported, so the
registry can fall back to the lexicon scorer where they are missing.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from keymoments.exceptions import ConfigError
from keymoments.score.base import SENTIMENTS, TextScores
from keymoments.score.heads import OrdinalHead, SoftmaxHead, load_heads
from keymoments.score.language import warn_if_not_english
from keymoments.score.registry import register_scorer

__all__ = [
    "DEPTHS",
    "HEADS",
    "HEADS_PATH",
    "LABELLED_HEADS_PATH",
    "LONG_TEXT_WORDS",
    "SUPPORT_HEADS_PATH",
    "SemanticScorer",
    "scores_from_proba",
    "segment_text",
    "segment_weights",
]

#: The shipped general heads (a few KiB), one per encoder depth.
HEADS_PATH = Path(__file__).resolve().parent / "models" / "sentiment_heads_minilm.npz"
#: Optional heads for customer-support text (three classes learnt from reply-labelled support tweets).
SUPPORT_HEADS_PATH = HEADS_PATH.with_name("support_heads_minilm.npz")
#: The same kind of head learnt from hand-labelled support tweets.
LABELLED_HEADS_PATH = HEADS_PATH.with_name("support_labelled_heads_minilm.npz")
#: Speed settings: name -> (encoder layers, int8 weights).
DEPTHS: dict[str, tuple[int, bool]] = {"fast": (1, True), "balanced": (3, True), "full": (6, False)}
#: Heads: which shipped files each one averages (see the module).
HEADS: dict[str, tuple[Path, ...]] = {
    "general": (HEADS_PATH,),
    "support": (SUPPORT_HEADS_PATH,),
    "support-labelled": (LABELLED_HEADS_PATH,),
    "blend": (HEADS_PATH, SUPPORT_HEADS_PATH, LABELLED_HEADS_PATH),
}


#: Texts longer than this many words are scored as segments of at most this many words (see the module).
LONG_TEXT_WORDS = 40
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")


def segment_text(text: str, max_words: int = LONG_TEXT_WORDS) -> list[str]:
    """A text's sentences, with any sentence longer than ``max_words`` words cut into windows that overlap by a quarter.

    >>> segment_text("Great staff. The room was dirty!", max_words=40)
    ['Great staff.', 'The room was dirty!']
    >>> [len(s.split()) for s in segment_text(" ".join(["word"] * 70), max_words=40)]
    [40, 40]
    """
    step = max(1, max_words - max_words // 4)
    out: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text):
        words = sentence.split()
        if len(words) <= max_words:
            if words:
                out.append(sentence.strip())
            continue
        for start in range(0, len(words), step):
            out.append(" ".join(words[start : start + max_words]))
            if start + max_words >= len(words):
                break
    return out or [text]


#: how much more the first segment (a review's title or opening sentence, where people state their verdict) weighs
FIRST_SEGMENT_WEIGHT = 2.0


def segment_weights(segments: list[str]) -> np.ndarray:
    """The pooling weights of a long text's segments: the square root of each one's word count, the first one's
    times :data:`FIRST_SEGMENT_WEIGHT` (chosen on design halves of two rated review sets, ``docs/experiments.md``).

    >>> segment_weights(["Loved it.", "The room was small and the view was of a wall."]).round(2).tolist()
    [2.83, 3.32]
    """
    weight = np.sqrt([max(len(p.split()), 1) for p in segments]).astype(float)
    weight[0] *= FIRST_SEGMENT_WEIGHT
    return weight


class _MeanHead:
    """The average of several heads' (n, 3) probabilities."""

    def __init__(self, heads: list[OrdinalHead | SoftmaxHead]) -> None:
        self.heads = heads

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return sum(h.predict_proba(x) for h in self.heads) / len(self.heads)


def scores_from_proba(proba: np.ndarray, blank: np.ndarray) -> TextScores:
    """TextScores from (n, 3) probabilities; blank texts get valence 0, confidence 0, sentiment None."""
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
    valence = np.clip(proba[:, 2] - proba[:, 0], -1.0, 1.0)
    label = np.argmax(proba, axis=1)
    sentiment = np.array(SENTIMENTS, dtype=object)[label]
    confidence = proba[np.arange(len(proba)), label]
    valence[blank] = 0.0
    confidence[blank] = 0.0
    sentiment[blank] = None
    proba[blank] = np.nan
    return TextScores(valence, confidence, sentiment, proba)


def _blank(texts: list) -> np.ndarray:
    return np.array([not (isinstance(t, str) and t.strip()) for t in texts], dtype=bool)


class SemanticScorer:
    """Sentiment, valence and emotions from MiniLM embeddings and the shipped head (see the module).

    >>> scorer = SemanticScorer()                                  # doctest: +SKIP
    >>> scorer.score(["Lost my bag again, great job"]).sentiment   # doctest: +SKIP
    array(['negative'], dtype=object)
    """

    def __init__(
        self,
        depth: str = "balanced",
        *,
        head: str = "general",
        emotions: bool = True,
        batch_size: int = 32,
        threads: int | None = None,
        long_text: bool = True,
    ) -> None:
        if depth not in DEPTHS:
            raise ConfigError(f"The 'depth' parameter of SemanticScorer must be one of {sorted(DEPTHS)}. Got {depth!r} instead.")
        if head not in HEADS:
            raise ConfigError(f"The 'head' parameter of SemanticScorer must be one of {sorted(HEADS)}. Got {head!r} instead.")
        self.head = head
        self.depth = depth
        self.emotions = emotions
        self.batch_size = batch_size
        self.threads = threads
        self.long_text = long_text
        self._long: SemanticScorer | None = None
        layers, int8 = DEPTHS[depth]
        key = f"L{layers}"
        found, metas = [], []
        for path in HEADS[head]:
            heads, meta = load_heads(path)
            if key not in heads:
                raise ConfigError(f"{path} has no head for depth {depth!r} ({key}); rerun training/train_text_head.py.")
            found.append(heads[key])
            metas.append(meta)
        self.meta_ = metas[0] if len(metas) == 1 else {"blend": metas}
        self.head_: OrdinalHead | SoftmaxHead | _MeanHead = found[0] if len(found) == 1 else _MeanHead(found)
        from keymoments.score.embed import MiniLMEncoder  # noqa: PLC0415  (heavy: tokenizers, onnxruntime)

        self.encoder_ = MiniLMEncoder(n_layers=layers, quantize=int8, batch_size=batch_size, threads=threads)
        self.name = "semantic-minilm" + ("" if head == "general" else f"-{head}") + ("" if depth == "balanced" else f"-{depth}")
        self._lock = threading.Lock()  # one onnxruntime session; calls from threads take turns

    def __repr__(self) -> str:
        return f"SemanticScorer(depth={self.depth!r}, head={self.head!r}, encoder={self.encoder_.name!r})"

    def embed(self, texts: list[str | None]) -> np.ndarray:
        with self._lock:
            return self.encoder_.encode(texts)

    def text_vectors(self, texts: list[str | None]) -> np.ndarray:
        """(n, 384) unit vectors, one per text, for heads fitted on whole texts (a domain model): a text of more
        than ``LONG_TEXT_WORDS`` words gets the weighted mean of its segments' vectors (:func:`segment_weights`),
        made unit length again, so that all of it counts, not its first 128 word pieces; others, :meth:`embed`'s."""
        texts = list(texts)
        long = self._long_positions(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        short = np.setdiff1d(np.arange(len(texts)), long)
        if len(short):
            out[short] = self.embed([texts[i] for i in short])
        if long:
            pieces = [segment_text(str(texts[i])) for i in long]
            flat = self.embed([p for ps in pieces for p in ps])
            start = 0
            for i, ps in zip(long, pieces, strict=True):
                weight = segment_weights(ps)
                pooled = weight @ flat[start : start + len(ps)] / weight.sum()
                start += len(ps)
                out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out

    def proba(self, texts: list[str | None], *, embedded: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """(n, 3) probabilities (negative, neutral, positive) as :meth:`score` gives them, long texts pooled;
        ``embedded`` as :meth:`score` takes it."""
        return self._proba(list(texts), embedded)[0]

    def _long_positions(self, texts: list) -> list[int]:
        """The positions of the texts read as segments (more than ``LONG_TEXT_WORDS`` words, with ``long_text``)."""
        return [i for i, t in enumerate(texts) if self.long_text and isinstance(t, str) and len(t.split()) > LONG_TEXT_WORDS]

    def _long_scorer(self) -> SemanticScorer:
        """The scorer of long texts' segments: this one when it is the 3-layer general model, else one built once."""
        if self.depth == "balanced" and self.head == "general":
            return self
        if self._long is None:
            self._long = SemanticScorer("balanced", head="general", emotions=False, batch_size=self.batch_size, threads=self.threads, long_text=False)
        return self._long

    def _proba(self, texts: list[str | None], embedded: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) probabilities, long texts pooled from their segments; and each text's segments (or None).

        ``embedded``: {position: vector} of short texts whose vector this scorer's encoder gave already."""
        segments = np.full(len(texts), None, dtype=object)
        long = self._long_positions(texts)
        short = np.ones(len(texts), dtype=bool)
        short[long] = False
        proba = np.zeros((len(texts), 3))
        given = {i: v for i, v in (embedded or {}).items() if short[i]}
        todo = short.copy()
        todo[list(given)] = False
        if given:
            at = list(given)
            proba[at] = self.head_.predict_proba(np.stack([given[i] for i in at]))
        if todo.any():
            proba[todo] = self.head_.predict_proba(self.embed([t for t, s in zip(texts, todo, strict=True) if s]))
        if long:
            pieces = [segment_text(str(texts[i])) for i in long]
            flat = [p for ps in pieces for p in ps]
            scorer = self._long_scorer()
            seg_proba = scorer.head_.predict_proba(scorer.embed(flat))
            start = 0
            for i, ps in zip(long, pieces, strict=True):
                rows = seg_proba[start : start + len(ps)]
                start += len(ps)
                rows = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1e-12)
                weight = segment_weights(ps)
                proba[i] = weight @ rows / weight.sum()
                valence = rows[:, 2] - rows[:, 0]
                segments[i] = [
                    {"text": p, "valence": float(v), "sentiment": SENTIMENTS[int(np.argmax(r))]}
                    for p, v, r in zip(ps, valence, rows, strict=True)
                ]
        return proba, segments

    def score(self, texts: list[str | None], *, embedded: dict[int, np.ndarray] | None = None) -> TextScores:
        """Score texts (see the module). ``embedded``: {position: vector} of texts whose vector by this scorer's
        encoder is known already (:func:`keymoments.score.one_pass.score_and_tag`); those skip the encoder."""
        texts = list(texts)
        blank = _blank(texts)
        out = scores_from_proba(np.zeros((0, 3)), blank[:0]) if not texts else None
        if out is not None:
            return out
        warn_if_not_english(texts, self.name)
        proba, segments = self._proba(texts, embedded)
        out = scores_from_proba(proba, blank)
        if any(s is not None for s in segments):
            out.extra["segments"] = segments
        if self.emotions:
            from keymoments.score.emotions import detect_emotions  # noqa: PLC0415

            out.extra.update(detect_emotions(texts, out.probabilities))
        return out


register_scorer("semantic", SemanticScorer, priority=100, aliases=("semantic-minilm", "minilm"))
register_scorer("semantic-fast", lambda: SemanticScorer("fast"), priority=90, aliases=("semantic-minilm-fast",))
register_scorer("semantic-full", lambda: SemanticScorer("full"), priority=80, aliases=("semantic-minilm-full",))
register_scorer("semantic-support", lambda: SemanticScorer(head="support"), priority=110, aliases=("semantic-minilm-support",))
# auto's choice for customer text: the blended heads hold up on both support tweets and reviews, and one int8 layer
# scores well over 1,000 texts/s on 2 cores; deeper encoders were no better on real customer text
# (bench/bench_text_eval.py, bench/data/README.md).
register_scorer("semantic-blend", lambda: SemanticScorer("fast", head="blend"), priority=120, aliases=("semantic-minilm-blend-fast",))
