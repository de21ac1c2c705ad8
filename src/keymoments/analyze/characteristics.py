"""Characteristics of a moment, as the CX literature names them.

=================== ====================================================================================
name                where it comes from
=================== ====================================================================================
``first_impression`` the journey model's flag; otherwise inferred: at least half of the touchpoint's events
                    open their journey (``step == 1``); without event order, the first touchpoint of the
                    journey order.
``leap_of_faith``   the flag; otherwise inferred: high stakes, at least half of its events carry money
                    (``value > 0``: a purchase, a booking, a commitment).
``crisis``          at least 5 % of its events have a crisis outcome (the journey model's
                    ``crisis_outcomes``: failed, cancelled, delayed, lost…).
``delight``         room for positive surprise: its valence spreads upward more than the median touchpoint's
                    (upper semi-deviation at or above the median) and at least 10 % of experiences there are
                    peaks (valence >= 0.6).
``ending``          the flag; otherwise inferred: at least half of its events close their journey
                    (``is_last``); without event order, the last touchpoint of the journey order.
=================== ====================================================================================

Journeys without time order (a survey answered at once: :func:`keymoments.analyze.order.time_order`) have no
first or last moment, only the order the answers were given in: there ``first_impression`` and ``ending`` are
taken from a journey model's flags only, never inferred.

Where a journey model sets a flag on any touchpoint, that flag is taken from the model for every touchpoint
(the analyst has said where first impressions, leaps of faith and endings are); the other characteristics are
inferred. :func:`characterize` also reports, in ``how``, which rule decided each flag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from keymoments.events import JourneyModel

__all__ = ["CHARACTERISTICS", "PEAK_VALENCE", "characterize", "valence_stats"]

CHARACTERISTICS: tuple[str, ...] = ("first_impression", "leap_of_faith", "crisis", "delight", "ending")
#: A valence at or above this is a peak experience.
PEAK_VALENCE = 0.6
CRISIS_RATE = 0.05
DELIGHT_PEAK_SHARE = 0.10


def valence_stats(valence: pd.DataFrame) -> pd.DataFrame:
    """Per touchpoint (column): share of peak experiences and the upper semi-deviation of valence."""
    rows = {}
    for tp in valence.columns:
        v = pd.to_numeric(valence[tp], errors="coerce").dropna().to_numpy(float)
        if len(v) == 0:
            rows[tp] = (np.nan, np.nan)
            continue
        up = np.clip(v - v.mean(), 0, None)
        rows[tp] = (float(np.mean(v >= PEAK_VALENCE)), float(np.sqrt(np.mean(up**2))))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["peak_share", "upper_semidev"])


def characterize(
    touchpoints: list[str],
    order: list[str],
    stats: pd.DataFrame,
    journey: JourneyModel | None = None,
    *,
    time_ordered: bool = True,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The characteristics of each touchpoint, and how each flag was decided.

    ``time_ordered`` False (journeys whose events share one timestamp): first impressions and endings come
    from the journey model's flags only.

    ``stats`` is indexed by touchpoint, with any of the columns ``first_share``, ``last_share``,
    ``value_share``, ``crisis_rate``, ``peak_share``, ``upper_semidev`` (missing columns: not inferable).
    """
    s = stats.reindex(touchpoints)
    out: dict[str, list[str]] = {tp: [] for tp in touchpoints}
    how: dict[str, str] = {}
    model_tps = journey.touchpoints if journey is not None else []
    seen_order = [tp for tp in order if tp in out] or list(touchpoints)

    def flagged(flag: str) -> set[str] | None:
        if any(getattr(t, flag) for t in model_tps):
            return {t.name for t in model_tps if getattr(t, flag)}
        return None

    for flag, col, fallback in (
        ("first_impression", "first_share", seen_order[:1]),
        ("ending", "last_share", seen_order[-1:]),
        ("leap_of_faith", "value_share", []),
    ):
        chosen = flagged(flag)
        if chosen is not None:
            how[flag] = "journey model flag"
        elif not time_ordered and flag in ("first_impression", "ending"):
            chosen = set()
            how[flag] = "not inferred: the journeys have no time order (their events share one timestamp)"
        elif col in s.columns and s[col].notna().any():
            chosen = set(s.index[s[col].fillna(0) >= 0.5])
            how[flag] = (
                "inferred: "
                + {
                    "first_share": "at least half of its events open their journey",
                    "last_share": "at least half of its events close their journey",
                    "value_share": "at least half of its events carry money (value > 0)",
                }[col]
            )
        else:
            chosen = set(fallback)
            how[flag] = (
                "inferred: position in the journey order" if fallback else "not inferable from this data"
            )
        for tp in touchpoints:
            if tp in chosen:
                out[tp].append(flag)
    if "crisis_rate" in s.columns and s["crisis_rate"].notna().any():
        how["crisis"] = f"inferred: crisis outcome rate >= {CRISIS_RATE:.0%}"
        for tp in touchpoints:
            if s.at[tp, "crisis_rate"] >= CRISIS_RATE:
                out[tp].append("crisis")
    else:
        how["crisis"] = "not inferable: the data has no event outcomes"
    if {"peak_share", "upper_semidev"} <= set(s.columns) and s["upper_semidev"].notna().any():
        med = float(s["upper_semidev"].median())
        how["delight"] = f"inferred: upper semi-deviation >= median ({med:.3f}) and peak share >= 10%"
        for tp in touchpoints:
            if s.at[tp, "upper_semidev"] >= med and s.at[tp, "peak_share"] >= DELIGHT_PEAK_SHARE:
                out[tp].append("delight")
    order_of = {c: i for i, c in enumerate(CHARACTERISTICS)}
    return {tp: sorted(v, key=order_of.__getitem__) for tp, v in out.items()}, how
