"""The journey order: touchpoints in the order customers usually meet them.

With a journey model (``journey.yaml``) the order is the model's; touchpoints seen in the data but missing
from the model follow, in their inferred order. Without one, the order is inferred from the data: touchpoints
sorted by the median of their position (``step``) within the journey, ties broken by the mean position, then
by how many events they have (more first), then by name, so the order is deterministic.

Also here: :func:`events_table`, which turns what an analysis is given (a store, an Ibis table, a pandas
frame) into an Ibis table with the derived columns every analysis relies on (``step``, ``next_touchpoint``,
``next_ts``, ``is_last``). The store materialises them at ingest; for other inputs they are computed once,
with equal timestamps kept in source order (``seq``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd

from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from keymoments.events import JourneyModel

__all__ = ["events_table", "journey_key", "journey_order"]

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


def _inferred_order(t: ir.Table) -> list[str]:
    t = t.filter(t.touchpoint.notnull() & (t.touchpoint != ""))
    agg = t.group_by("touchpoint").aggregate(
        med=t.step.median(),
        avg=t.step.mean(),
        n=t.count(),
    )
    df = agg.execute()
    if df.empty:
        return []
    df = df.sort_values(["med", "avg", "n", "touchpoint"], ascending=[True, True, False, True], kind="mergesort")
    return [str(x) for x in df["touchpoint"]]


def journey_order(events: ir.Table, journey: JourneyModel | None = None) -> list[str]:
    """Touchpoints in journey order: the journey model's first, then the rest inferred by median step.

    ``events`` is an Ibis events table (a Store or DataFrame is accepted too). With a model, all of its
    touchpoints come first in the model's order, even those the data lacks (a future-state journey may name
    touchpoints not instrumented yet); the data's other touchpoints follow in inferred order.
    """
    t = events_table(events)
    inferred = _inferred_order(t)
    if journey is None or not journey.touchpoints:
        return inferred
    model = journey.order
    known = set(model)
    return model + [tp for tp in inferred if tp not in known]
