"""Sentiment and touchpoint tags of the same texts from one encoder pass.

The sentiment scorer (:class:`~keymoments.score.semantic.SemanticScorer`) reads the first layers of MiniLM (one
for ``auto``); the touchpoint tagger (:class:`~keymoments.score.semantic_tagging.SemanticTagger`) reads all six,
from an encoder that keeps every layer's vector (:func:`~keymoments.score.embed.tagging_encoder`). So when both
run on the same texts, :func:`score_and_tag` encodes them once, for the tagger, and hands the scorer the vector of
its own depth from that pass. The two read a text alike unless a named handle makes them differ (the tagger reads
``@AmazonHelp`` as "Amazon Help", the scorer as "@user": :func:`~keymoments.score.semantic_tagging.readable`,
:func:`~keymoments.score.embed.normalize_text`); such texts, and long texts (scored by their sentences), still
get the scorer's own pass. The tags are exactly those of ``tagger.tag(texts)``. The sentiment is that of
``scorer.score(texts)``: the int8 encoder quantises each token on its own, so a text's first-layer vector does
not depend on which pass or batch computed it (see :mod:`keymoments.score.embed`).
"""

from __future__ import annotations

from typing import Any

from keymoments.score.base import TextScorer, TextScores
from keymoments.score.embed import MiniLMEncoder, normalize_text
from keymoments.score.semantic_tagging import SemanticTagger, readable
from keymoments.score.tagging import Tagger, TouchpointTags

__all__ = ["score_and_tag", "shares_pass"]


def shares_pass(scorer: TextScorer, tagger: Tagger | None) -> bool:
    """Whether :func:`score_and_tag` can give ``scorer`` its vectors from ``tagger``'s encoder pass."""
    try:
        from keymoments.score.semantic import SemanticScorer  # noqa: PLC0415  (an optional plugin module)
    except ImportError:
        return False
    if not isinstance(scorer, SemanticScorer) or not isinstance(tagger, SemanticTagger):
        return False
    mine, theirs = scorer.encoder_, tagger.encoder_
    return (
        isinstance(mine, MiniLMEncoder)
        and isinstance(theirs, MiniLMEncoder)
        and theirs.every_layer
        and not mine.every_layer
        and mine.n_layers <= theirs.n_layers
        and (mine.backend, mine.quantize, mine.max_length, mine.normalize)
        == (theirs.backend, theirs.quantize, theirs.max_length, theirs.normalize)
    )


def score_and_tag(scorer: TextScorer, tagger: Tagger, texts: list[Any]) -> tuple[TextScores, TouchpointTags]:
    """``(scorer.score(texts), tagger.tag(texts))``, from one encoder pass where :func:`shares_pass` (see the
    module); otherwise the two calls as they are."""
    texts = list(texts)
    if not shares_pass(scorer, tagger):
        return scorer.score(texts), tagger.tag(texts)
    every = tagger.encode_layers(texts)  # type: ignore[attr-defined]
    tags = tagger.tag_encoded(texts, every[:, -1])  # type: ignore[attr-defined]
    depth = scorer.encoder_.n_layers - 1  # type: ignore[attr-defined]
    embedded = {  # long texts are scored by their sentences: the scorer leaves their vector aside
        i: every[i, depth]
        for i, t in enumerate(texts)
        if not isinstance(t, str) or normalize_text(t) == normalize_text(readable(t))  # None: both read ""
    }
    return scorer.score(texts, embedded=embedded), tags  # type: ignore[call-arg]
