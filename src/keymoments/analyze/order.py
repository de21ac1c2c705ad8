"""The journey order: touchpoints in the order customers usually meet them.

With a journey model (``journey.yaml``) the order is the model's; touchpoints seen in the data but missing
from the model follow, in their inferred order. Without one, the order is inferred from the data: touchpoints
sorted by the median of their position (``step``) within the journey, ties broken by the mean position, then
by how many events they have (more first), then by name, so the order is deterministic.

**Journeys without time order.** A survey answered at once gives every answer of a respondent one timestamp;
the order of its events is then only the order the columns were given in. :func:`time_order` tells such data
apart (computed from the events, so it holds for any ingest path; cached per store state), and there the
journey order is the order the events were given in: touchpoints ranked by how often each one comes before each
other one within a journey (:func:`precedence_order`), which recovers the column order of ``ingest-survey
--touchpoints`` even when respondents skip columns. Order-based facts (first impression, ending, peak-end) are
not inferred from such data.

Also here: :func:`events_table`, which turns what an analysis is given (a store, an Ibis table, a pandas
frame) into an Ibis table with the derived columns every analysis relies on (``step``, ``next_touchpoint``,
``next_ts``, ``is_last``). The store materialises them at ingest; for other inputs they are computed once,
with equal timestamps kept in source order (``seq``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd

from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from keymoments.events import JourneyModel

__all__ = [
    "TimeOrder", "events_table", "journey_key", "journey_order", "journeys_time_ordered", "no_touchpoints",
    "order_from_histogram", "precedence_order", "step_histogram", "time_order",
]  # fmt: skip

_DERIVED = ("step", "next_touchpoint", "next_ts", "is_last")


def journey_key(t: ir.Table) -> ir.StringValue:
    """The journey a row belongs to: ``journey_id``, or the customer when it is missing."""
    if "journey_id" in t.columns:
        return t.journey_id.fill_null(t.customer_id)
    return t.customer_id


def events_table(data: Any) -> ir.Table:
    """An Ibis events table from a Store, an Ibis table or a pandas DataFrame, with derived columns.

    Derived columns are added (by one window pass) only where the input lacks them.
    """
    from keymoments.store.store import Store

    if isinstance(data, Store):
        t = data.events()
    elif isinstance(data, pd.DataFrame):
        t = ibis.memtable(data)
    elif isinstance(data, ibis.expr.types.Table):
        t = data
    else:
        raise InvalidParameterError(
            f"Analyses take a Store, an Ibis table or a pandas DataFrame of events. Got {type(data).__name__!r} instead."
        )
    missing = [c for c in ("customer_id", "ts", "touchpoint") if c not in t.columns]
    if missing:
        raise InvalidParameterError(f"The events are missing the column(s) {missing}; they are required.")
    if all(c in t.columns for c in _DERIVED):
        return t
    jid = journey_key(t)
    if "seq" not in t.columns:
        t = t.mutate(seq=ibis.row_number())
    if "journey_id" not in t.columns:
        t = t.mutate(journey_id=t.customer_id)
    t = t.mutate(_jid=jid)
    w = ibis.window(group_by=t._jid, order_by=[t.ts, t.seq])
    t = t.mutate(
        step=(ibis.row_number().over(w) + 1).cast("int32"),
        next_touchpoint=t.touchpoint.lead().over(w),
        next_ts=t.ts.lead().over(w),
    )
    t = t.mutate(is_last=t.next_ts.isnull())
    return t.drop("_jid")


def no_touchpoints(data: Any, what: str, *, filtered: bool = False) -> Exception:
    """The error when an analysis finds no event with a touchpoint, saying what the data lacks and what to add:
    no events at all, none left after the filters, or events that came without a touchpoint."""
    from keymoments.exceptions import NotEnoughDataError

    total = int(events_table(data).count().execute())
    if total == 0:
        return NotEnoughDataError(f"No events in the store to {what}; ingest events first (`keymoments ingest FILE`).")
    if filtered:
        return NotEnoughDataError(f"No events with a touchpoint left after the filters to {what}; loosen the filters.")
    return NotEnoughDataError(
        f"The {total:,} events have no touchpoint to {what}: tag them from their text with "
        "`keymoments score --journey journey.yaml` (a journey model naming the touchpoints), or load a touchpoint "
        "column with the events (`--map COLUMN=touchpoint`)."
    )


def step_histogram(t: ir.Table) -> pd.DataFrame:
    """Events per (touchpoint, step): a small table from which exact step medians and means follow."""
    t = t.filter(t.touchpoint.notnull() & (t.touchpoint != ""))
    return t.group_by(["touchpoint", "step"]).aggregate(n=t.count()).execute()


def order_from_histogram(hist: pd.DataFrame) -> list[str]:
    """Journey order from a (touchpoint, step, n) histogram: by median step, mean step, volume, name."""
    if hist.empty:
        return []
    rows = []
    for tp, g in hist.groupby("touchpoint", sort=False):
        g = g.sort_values("step")
        steps = g["step"].to_numpy(dtype=float)
        n = g["n"].to_numpy(dtype=np.int64)
        total = int(n.sum())
        cum = np.cumsum(n)
        # exact median of the expanded steps (mean of the two middle values when the count is even)
        lo = steps[np.searchsorted(cum, (total - 1) // 2 + 1)]
        hi = steps[np.searchsorted(cum, total // 2 + 1)]
        rows.append((str(tp), (lo + hi) / 2, float((steps * n).sum() / total), total))
    df = pd.DataFrame(rows, columns=["touchpoint", "med", "avg", "n"])
    df = df.sort_values(["med", "avg", "n", "touchpoint"], ascending=[True, True, False, True], kind="mergesort")
    return df["touchpoint"].tolist()


def journey_order(events: Any, journey: JourneyModel | None = None, *, time_ordered: bool | None = None) -> list[str]:
    """Touchpoints in journey order: the journey model's first, then the rest inferred by median step.

    ``events`` is an Ibis events table (a Store or DataFrame is accepted too). With a model, all of its
    touchpoints come first in the model's order, even those the data lacks (a future-state journey may name
    touchpoints not instrumented yet); the data's other touchpoints follow in inferred order. Journeys without
    time order (``time_ordered`` False; by default asked of ``events``) keep the order the events were given
    in (:func:`precedence_order`).
    """
    t = events_table(events)
    if time_ordered is None:
        time_ordered = time_order(events).ordered
    hist = step_histogram(t)
    inferred = order_from_histogram(hist) if time_ordered else precedence_order(t, hist)
    return merge_order(inferred, journey)


# -- time order ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TimeOrder:
    """Whether the journeys have a time order: of the journeys with two events or more (``journeys``), how many
    span more than one timestamp (``timed``). They are time-ordered when at least half of them do (or when
    no journey has two events)."""

    journeys: int
    timed: int

    @property
    def ordered(self) -> bool:
        return self.journeys == 0 or 2 * self.timed >= self.journeys

    @property
    def reason(self) -> str:
        """What the data is like when it has no time order (empty when it has)."""
        if self.ordered:
            return ""
        if self.timed == 0:
            return "every journey's events share one timestamp (a survey answered at once)"
        return f"{1 - self.timed / self.journeys:.0%} of the journeys have all their events at one timestamp (a survey answered at once)"

    @property
    def why_not(self) -> str:
        """Why order-based facts do not apply (empty when the journeys are time-ordered)."""
        if self.ordered:
            return ""
        return f"{self.reason}, so the journeys have no time order: the order shown is the order the events were given in"


#: per store: (its state when computed, the answer); the answer changes only when a batch is written
_TIME_ORDER: weakref.WeakKeyDictionary[Any, tuple[tuple, TimeOrder]] = weakref.WeakKeyDictionary()


def time_order(data: Any) -> TimeOrder:
    """Whether the journeys of ``data`` (a Store, an Ibis events table or a DataFrame) are time-ordered: see
    :class:`TimeOrder`. For a Store it is computed once per store state (the ingest batches written; for a
    Spark store, the view its events are read through)."""
    state = _events_state(data)
    if state is not None:
        hit = _TIME_ORDER.get(data)
        if hit is not None and hit[0] == state:
            return hit[1]
        answer = _time_order(events_table(data))
        _TIME_ORDER[data] = (state, answer)
        return answer
    return _time_order(events_table(data))


def _events_state(data: Any) -> tuple | None:
    """What identifies the events a store's analyses read, or None where it cannot be known cheaply: a DuckDB
    store's events change only with a batch; a Spark store's own Parquet dataset is read through one view,
    whose file listing Spark fixes until the store is refreshed (a table another writer may change is None)."""
    from keymoments.store.store import Store

    if type(data) is Store:
        return ("batches", *(int(x) for x in data.query(
            "SELECT coalesce(max(batch_id), 0), count(*) FROM batches").iloc[0]))  # fmt: skip
    state = getattr(data, "events_state", None)
    return state() if isinstance(data, Store) and callable(state) else None


def _time_order(t: ir.Table) -> TimeOrder:
    per = t.group_by(_j=journey_key(t)).aggregate(n=t.count(), lo=t.ts.min(), hi=t.ts.max())
    multi = per.filter(per.n > 1)
    row = multi.aggregate(journeys=multi.count(), timed=(multi.lo < multi.hi).cast("int64").sum()).execute()
    journeys = int(row["journeys"].iloc[0]) if len(row) else 0
    timed = row["timed"].iloc[0] if len(row) else 0
    return TimeOrder(journeys, int(timed) if pd.notna(timed) else 0)


def journeys_time_ordered(data: Any) -> bool:
    """Whether the journeys of ``data`` have a time order (see :class:`TimeOrder`)."""
    return time_order(data).ordered


def precedence_order(t: ir.Table, hist: pd.DataFrame | None = None) -> list[str]:
    """The order the events were given in, for journeys without time order: each touchpoint scores the number
    of touchpoints it comes before (within a journey, by ``step``) more often than after, minus those it comes
    after more often; touchpoints are sorted by that score, ties by median step as :func:`order_from_histogram`
    does. A survey's column order comes back exactly, whichever columns each respondent skipped."""
    hist = step_histogram(t) if hist is None else hist
    base = order_from_histogram(hist)
    if len(base) < 2:
        return base
    e = t.filter(t.touchpoint.notnull() & (t.touchpoint != ""))
    e = e.select(_j=journey_key(e), tp=e.touchpoint, step=e.step)
    b = e.view().rename(_j2="_j", tp2="tp", step2="step")
    j = e.join(b, [e._j == b._j2, e.step < b.step2, e.tp != b.tp2])
    pairs = j.group_by(first=j.tp, then=j.tp2).aggregate(n=j.count()).execute()
    before = {(str(r.first), str(r.then)): int(r.n) for r in pairs.itertuples()}
    score = {tp: 0 for tp in base}
    for x in base:
        for y in base:
            if x != y:
                xy, yx = before.get((x, y), 0), before.get((y, x), 0)
                score[x] += (xy > yx) - (xy < yx)
    rank = {tp: i for i, tp in enumerate(base)}
    return sorted(base, key=lambda tp: (-score[tp], rank[tp]))


def merge_order(inferred: list[str], journey: JourneyModel | None) -> list[str]:
    """The model's touchpoints in its order, then the inferred ones the model does not name."""
    if journey is None or not journey.touchpoints:
        return inferred
    model = journey.order
    known = set(model)
    return model + [tp for tp in inferred if tp not in known]
