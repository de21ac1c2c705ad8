"""Surprise that stays a surprise: how predictable are a playbook's delights to the customers who get them?

Randomised firing (``governance.probability``, drawn from a seeded per-customer hash), cooldowns and caps keep
delights from becoming a schedule. This module measures it: for every customer with at least ``min_events``
delights, the gaps between them (in days) have a coefficient of variation ``CV = std / mean``; a schedule
("every 5th flight", "every month") has CV near 0, random firing near 1. A customer's regularity is
``max(0, 1 - CV)`` and the playbook's **predictability** is the mean regularity over those customers: 0 means
nobody can see it coming, 1 means it is a programme customers will adapt to (and miss when it stops).
"""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keymoments.act.engine import Decision
from keymoments.exceptions import KeymomentsWarning

__all__ = ["PREDICTABLE", "Predictability", "predictability"]

#: Above this predictability a surprise playbook is warned about: it has become a routine.
PREDICTABLE = 0.5


@dataclass(frozen=True)
class Predictability:
    """How regular a playbook's delights are per customer (0 = unpredictable, 1 = a schedule)."""

    playbook: str
    predictability: float
    customers_measured: int
    customers_delighted: int
    delights: int
    mean_gap_days: float
    max_per_customer: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def predictability(
    decisions: Iterable[Decision | dict[str, Any]], playbook: str, *, min_events: int = 3, warn: bool = True
) -> Predictability:
    """Measure how predictable ``playbook``'s fired decisions are to the customers who got them."""
    times: dict[str, list[float]] = defaultdict(list)
    for d in decisions:
        get = d.get if isinstance(d, dict) else lambda k, _d=d: getattr(_d, k)
        if get("playbook") != playbook or get("kind") != "fire" or get("status") != "fired":
            continue
        ts = get("ts_us")
        if ts is None:
            ts = get("ts").timestamp() * 1_000_000
        times[get("customer_id")].append(ts / 86_400_000_000)
    regular, gaps_all = [], []
    for ts in times.values():
        if len(ts) < min_events:
            continue
        ts.sort()
        gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
        gaps_all += gaps
        mean = statistics.fmean(gaps)
        cv = statistics.stdev(gaps) / mean if mean > 0 else 0.0
        regular.append(max(0.0, 1.0 - cv))
    p = statistics.fmean(regular) if regular else 0.0
    res = Predictability(
        playbook, p, len(regular), len(times), sum(len(v) for v in times.values()),
        statistics.fmean(gaps_all) if gaps_all else float("nan"), max((len(v) for v in times.values()), default=0),
    )  # fmt: skip
    if warn and regular and p > PREDICTABLE:
        warnings.warn(
            f"Playbook {playbook!r} delights are predictable ({p:.2f} > {PREDICTABLE}): lower governance.probability "
            "or lengthen the cooldown, or customers will adapt to it.",
            KeymomentsWarning,
            stacklevel=2,
        )
    return res
