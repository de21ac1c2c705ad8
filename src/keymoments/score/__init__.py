"""Score each interaction's emotion: ratings and text → valence in [-1, 1] with a confidence and its source.

- :func:`ratings_to_valence`: any contract rating scale → valence (``ratings``);
- :class:`LexiconScorer` and the :class:`TextScorer` interface: text → valence, sentiment (``lexicon``, ``base``);
- :func:`fuse`: rating and text → one valence, confidence and source (``fusion``);
- :func:`get_scorer` / :func:`register_scorer`: scorers by name, ``"auto"`` = the best available (``registry``);
- :class:`LexicalTagger` and the :class:`Tagger` interface: text → touchpoint (``tagging``);
- :func:`score_frame` / :func:`score_text_file`: all of it over a DataFrame or a file (``frame``).
"""

from keymoments.score.base import SENTIMENTS, TextScorer, TextScores, sentiment_from_valence
from keymoments.score.frame import score_frame, score_text_file
from keymoments.score.fusion import fuse
from keymoments.score.lexicon import LexiconScorer
from keymoments.score.ratings import ratings_to_valence
from keymoments.score.registry import available_scorers, get_scorer, register_scorer, resolve_scorer
from keymoments.score.tagging import OTHER, LexicalTagger, Tagger, TouchpointTags, make_tagger

__all__ = [
    "OTHER",
    "SENTIMENTS",
    "LexicalTagger",
    "LexiconScorer",
    "Tagger",
    "TextScorer",
    "TextScores",
    "TouchpointTags",
    "available_scorers",
    "fuse",
    "get_scorer",
    "make_tagger",
    "ratings_to_valence",
    "register_scorer",
    "resolve_scorer",
    "score_frame",
    "score_text_file",
    "sentiment_from_valence",
]
