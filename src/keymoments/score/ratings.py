"""Ratings on any contract scale → valence in [-1, 1], vectorised.

The mappings come from one place, :data:`keymoments.events.RATING_SCALES`: each scale maps its range linearly
onto [-1, 1], ``valence = 2 * (rating - low) / (high - low) - 1``, negated for a scale where lower is better.

===========  =========  ==========================================  ============================
scale        range      rating → valence                            midpoint (valence 0)
===========  =========  ==========================================  ============================
``csat5``    1 – 5      1 → -1, 2 → -0.5, 3 → 0, 4 → +0.5, 5 → +1  3
``stars5``   1 – 5      1 → -1, 2 → -0.5, 3 → 0, 4 → +0.5, 5 → +1  3
``score10``  1 – 10     1 → -1, 10 → +1, step 2/9                   5.5
``nps``      0 – 10     0 → -1, 6 → +0.2, 9 → +0.8, 10 → +1         5
``ces7``     1 – 7      **inverted**: 1 → +1, 4 → 0, 7 → -1         4
``valence``  -1 – 1     identity                                    0
===========  =========  ==========================================  ============================

A valence read from a rating gets the confidence :data:`keymoments.events.RATING_CONFIDENCE` (0.9): a
direct self-report is the best evidence of how a customer felt, though not perfect (people round, and scales
are used differently). A rating that cannot be read (missing, not a number, outside its scale's range, or an
unknown or missing scale) gets valence NaN, confidence 0 and ``ok = False``; ingest is where such rows are
rejected with a reason, so here they are only marked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import RATING_CONFIDENCE, RATING_SCALES

__all__ = ["ratings_to_valence"]

_NAMES = list(RATING_SCALES)
_LOW = np.array([RATING_SCALES[n].low for n in _NAMES], dtype=float)
_HIGH = np.array([RATING_SCALES[n].high for n in _NAMES], dtype=float)
_SIGN = np.array([-1.0 if RATING_SCALES[n].inverted else 1.0 for n in _NAMES])
_INDEX = pd.Index(_NAMES, dtype=object)


def ratings_to_valence(rating: Any, scale: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map ratings on their scales to ``(valence, confidence, ok)``, three arrays of the ratings' length.

    ``rating`` is array-like (numbers; None, NaN or non-numeric values count as missing). ``scale`` is an
    array-like of scale names of the same length, or one name for all. Scale names match exactly (the
    contract's lower-case names, see the module's table).

    >>> v, c, ok = ratings_to_valence([1, 3, 7, 9], ["csat5", "csat5", "ces7", "csat5"])
    >>> v.tolist(), c.tolist(), ok.tolist()
    ([-1.0, 0.0, -1.0, nan], [0.9, 0.9, 0.9, 0.0], [True, True, True, False])
    """
    r = pd.to_numeric(pd.Series(np.asarray(rating, dtype=object).ravel()), errors="coerce").to_numpy(float)
    if isinstance(scale, str) or scale is None:
        codes = np.full(len(r), _INDEX.get_indexer([scale])[0], dtype=np.intp)
    else:
        s = np.asarray(scale, dtype=object).ravel()
        if len(s) != len(r):
            raise ValueError(f"rating and scale must have the same length; got {len(r)} and {len(s)}.")
        codes = _INDEX.get_indexer(s)
    known = codes >= 0
    idx = np.where(known, codes, 0)
    low, high, sign = _LOW[idx], _HIGH[idx], _SIGN[idx]
    with np.errstate(invalid="ignore"):
        ok = known & np.isfinite(r) & (r >= low) & (r <= high)
    valence = np.full(len(r), np.nan)
    valence[ok] = np.clip(sign[ok] * (2.0 * (r[ok] - low[ok]) / (high[ok] - low[ok]) - 1.0), -1.0, 1.0) + 0.0
    # (+ 0.0 turns the -0.0 of an inverted midpoint into 0.0)
    confidence = np.where(ok, RATING_CONFIDENCE, 0.0)
    return valence, confidence, ok
