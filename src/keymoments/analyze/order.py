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
import numpy as np
import pandas as pd

from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from keymoments.events import JourneyModel

__all__ = ["events_table", "journey_key", "journey_order", "order_from_histogram", "step_histogram"]

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


def _inferred_order(t: ir.Table) -> list[str]:
    return order_from_histogram(step_histogram(t))


def journey_order(events: ir.Table, journey: JourneyModel | None = None) -> list[str]:
    """Touchpoints in journey order: the journey model's first, then the rest inferred by median step.

    ``events`` is an Ibis events table (a Store or DataFrame is accepted too). With a model, all of its
    touchpoints come first in the model's order, even those the data lacks (a future-state journey may name
    touchpoints not instrumented yet); the data's other touchpoints follow in inferred order.
    """
    return merge_order(_inferred_order(events_table(events)), journey)


def merge_order(inferred: list[str], journey: JourneyModel | None) -> list[str]:
    """The model's touchpoints in its order, then the inferred ones the model does not name."""
    if journey is None or not journey.touchpoints:
        return inferred
    model = journey.order
    known = set(model)
    return model + [tp for tp in inferred if tp not in known]
