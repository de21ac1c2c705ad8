"""Public test helpers: small event frames and hypothesis strategies for events.

>>> from keymoments.testing import make_events
>>> len(make_events(n_journeys=3, steps=2))
6
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import RATING_SCALES

__all__ = ["event_records", "make_events"]


def make_events(
    n_journeys: int = 10,
    steps: int = 4,
    *,
    touchpoints: tuple[str, ...] = ("reservation", "check-in", "boarding", "flight", "baggage"),
    customers: int | None = None,
    seed: int = 0,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """A small, valid frame of events: ``n_journeys`` journeys of ``steps`` events with csat5 ratings."""
    rng = np.random.default_rng(seed)
    customers = customers or max(1, n_journeys // 2)
    t0 = pd.Timestamp(start, tz="UTC")
    rows = []
    for j in range(n_journeys):
        base = t0 + pd.Timedelta(days=int(rng.integers(0, 300)))
        for k in range(steps):
            rows.append({
                "event_id": f"e{j}-{k}",
                "customer_id": f"c{j % customers}",
                "journey_id": f"j{j}",
                "ts": base + pd.Timedelta(hours=k),
                "touchpoint": touchpoints[k % len(touchpoints)],
                "rating": int(rng.integers(1, 6)),
                "rating_scale": "csat5",
            })
    return pd.DataFrame(rows)


def event_records() -> Any:
    """A hypothesis strategy for lists of event dicts that satisfy the contract (ratings on any scale)."""
    from hypothesis import strategies as st

    scales = sorted(RATING_SCALES)

    @st.composite
    def one(draw: Any) -> dict[str, Any]:
        scale = draw(st.sampled_from(scales))
        s = RATING_SCALES[scale]
        rated = draw(st.booleans())
        rating = draw(st.floats(min_value=s.low, max_value=s.high, allow_nan=False)) if rated else None
        return {
            "customer_id": draw(st.text("abcxyz0123", min_size=1, max_size=4)),
            "journey_id": draw(st.one_of(st.none(), st.text("jk12", min_size=1, max_size=3))),
            # within the window ingest accepts by default (1990 to the end of next year)
            "ts": draw(st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                                    max_value=pd.Timestamp(f"{pd.Timestamp.now().year}-12-31").to_pydatetime())).isoformat(),
            "touchpoint": draw(st.sampled_from(["check-in", "boarding", "flight", "baggage"])),
            "rating": rating,
            "rating_scale": scale if rated else None,
            "text": draw(st.one_of(st.none(), st.text(max_size=40))),
            "value": draw(st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))),
        }

    return st.lists(one(), min_size=1, max_size=25)
