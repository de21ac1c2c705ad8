"""What the store's data is like, as analyses need to know it: whether its journeys have a time order.

A wide survey becomes one event per rated touchpoint, all at the respondent's one response time: its journeys
have no time order, so nothing about them may be read from it (which touchpoint came first or last, the
ending, peak-end). The store knows this from its own rows, whatever command or API put them there.
"""

from __future__ import annotations

from dataclasses import dataclass

from keymoments.store.store import Store

__all__ = ["JourneyOrder", "journey_order", "journeys_time_ordered"]


@dataclass(frozen=True, slots=True)
class JourneyOrder:
    """How the store's journeys move in time, counted over transitions (an event and the next one of its
    journey, ``next_ts``)."""

    #: transitions: events that have a next event in their journey
    transitions: int
    #: of them, those where time moves on (the next event is later)
    timed: int

    @property
    def time_ordered(self) -> bool:
        """Time moves on in most transitions. False for a survey (every answer of a respondent shares one
        timestamp) and for a store whose journeys have one event each."""
        return self.transitions > 0 and 2 * self.timed > self.transitions


def journey_order(store: Store) -> JourneyOrder:
    """Count the store's transitions and those where time moves on (one pass over the derived columns)."""
    row = store.query(
        "SELECT count(next_ts) AS transitions, count(*) FILTER (WHERE next_ts > ts) AS timed FROM events"
    ).iloc[0]
    return JourneyOrder(int(row["transitions"]), int(row["timed"]))


def journeys_time_ordered(store: Store) -> bool:
    """Whether the store's journeys have a time order (see :attr:`JourneyOrder.time_ordered`): where they do
    not, first impressions, endings and peak-end cannot be inferred, and charts keep the order the user gave.

    >>> from keymoments.store.store import Store
    >>> journeys_time_ordered(Store(":memory:"))
    False
    """
    return journey_order(store).time_ordered
