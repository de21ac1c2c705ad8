"""Fuse the valence read from a rating with the valence read from text, vectorised.

An event can carry a rating, a text, both or neither. Per event, with ``v`` a valence and ``c`` its confidence:

``both``
    valence: the confidence-weighted mean ``(c_r v_r + c_t v_t) / (c_r + c_t)``;
    confidence: ``min(0.99, 1 - (1 - c_r)(1 - c_t)) × (1 - |v_r - v_t| / 4)``.
``rating``
    the rating's valence and confidence.
``text``
    the text's valence and confidence.
``none``
    valence NaN (analyses skip it: there is nothing to say), confidence 0.

A side counts as present when its valence is finite and its confidence is at least :data:`MIN_CONFIDENCE`
(1e-9; a blank text has confidence 0, so it does not count). Two agreeing sources make the reading surer than
either alone (the "noisy or" ``1 - (1-c_r)(1-c_t)``, capped at :data:`FUSED_CONFIDENCE_MAX` since no reading
is certain); two disagreeing ones make it less sure, down to half at full disagreement (``|v_r - v_t| = 2``: a
5-star rating with a furious comment is sarcasm, a slip or a mixed experience). Inputs are cleaned first:
valences clipped to [-1, 1], confidences to [0, 1], NaN confidences read as 0; the output valence is always in
[-1, 1] or NaN (exactly when the source is ``none``), the confidence always in [0, 1] (0 exactly for ``none``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FUSED_CONFIDENCE_MAX", "MIN_CONFIDENCE", "SOURCES", "fuse"]

#: Values of ``valence_source``.
SOURCES: tuple[str, str, str, str] = ("rating", "text", "both", "none")
#: A reading with less confidence than this counts as absent (it would only add rounding noise).
MIN_CONFIDENCE = 1e-9
#: The most confidence fused evidence can reach.
FUSED_CONFIDENCE_MAX = 0.99


def _clean(valence: Any, confidence: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    v = np.atleast_1d(np.asarray(valence, dtype=float))
    c = np.atleast_1d(np.asarray(confidence, dtype=float))
    if n is not None:
        v = np.broadcast_to(v, (n,))
        c = np.broadcast_to(c, (n,))
    if v.shape != c.shape:
        raise ValueError(
            f"valence and confidence must have the same length; got {v.shape[0]} and {c.shape[0]}."
        )
    c = np.clip(np.nan_to_num(c, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    present = np.isfinite(v) & (c >= MIN_CONFIDENCE)
    v = np.where(present, np.clip(np.where(np.isfinite(v), v, 0.0), -1.0, 1.0), np.nan)
    return v, np.where(present, c, 0.0)


def fuse(
    rating_valence: Any, rating_conf: Any, text_valence: Any, text_conf: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse per-event rating and text readings into ``(valence, confidence, source)``.

    All four inputs are array-likes of one length n (a scalar is broadcast). ``source`` is an object array
    of ``"rating"``, ``"text"``, ``"both"`` or ``"none"``. The rules are in the module docstring.

    >>> v, c, s = fuse([0.5, 0.5, np.nan, np.nan], [0.9, 0.9, 0, 0], [0.5, np.nan, -0.4, np.nan], [0.5, 0, 0.3, 0])
    >>> v.round(3).tolist(), c.round(3).tolist(), s.tolist()
    ([0.5, 0.5, -0.4, nan], [0.95, 0.9, 0.3, 0.0], ['both', 'rating', 'text', 'none'])
    """
    lengths = {np.size(x) for x in (rating_valence, rating_conf, text_valence, text_conf)} - {1}
    if len(lengths) > 1:
        raise ValueError(f"fuse() needs inputs of one length; got lengths {sorted(lengths)}.")
    n = lengths.pop() if lengths else None
    rv, rc = _clean(rating_valence, rating_conf, n)
    tv, tc = _clean(text_valence, text_conf, n)
    has_r, has_t = rc > 0, tc > 0
    both = has_r & has_t

    valence = np.full(rv.shape, np.nan)
    confidence = np.zeros(rv.shape)
    only_r, only_t = has_r & ~has_t, has_t & ~has_r
    valence[only_r], confidence[only_r] = rv[only_r], rc[only_r]
    valence[only_t], confidence[only_t] = tv[only_t], tc[only_t]

    r_v, r_c, t_v, t_c = rv[both], rc[both], tv[both], tc[both]
    valence[both] = (r_c * r_v + t_c * t_v) / (r_c + t_c)
    agreement = 1.0 - np.abs(r_v - t_v) / 4.0
    noisy_or = r_c + t_c - r_c * t_c  # = 1 - (1 - r_c)(1 - t_c), without cancelling small confidences away
    confidence[both] = np.minimum(FUSED_CONFIDENCE_MAX, noisy_or) * agreement

    source = np.full(rv.shape, "none", dtype=object)
    source[only_r] = "rating"
    source[only_t] = "text"
    source[both] = "both"
    return np.clip(valence, -1.0, 1.0), np.clip(confidence, 0.0, 1.0), source
