"""Narrowing the events an analysis sees: by customer segment, channel and date range.

Every analysis that reads events takes the same four filters (``segment`` as ``name=value`` of a customer
attribute or an events column, ``channel``, ``since`` inclusive and ``until`` exclusive), so the CLI, the API
and the dashboard offer them everywhere with one meaning.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from keymoments.analyze.base import check_choice
from keymoments.analyze.order import events_table
from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["filter_events"]


def _parse_ts(value: str | datetime | None, name: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidParameterError(
            f"The {name!r} parameter of JourneyMap must be an ISO-8601 date or time. Got {value!r} instead."
        ) from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def filter_events(
    data: Any,
    *,
    segment: str | None = None,
    channel: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    owner: str = "JourneyMap",
) -> ir.Table:
    """The events of ``data`` narrowed by segment (``name=value`` of a customer attribute or an events column),
    channel (events on that channel) and date range (``since`` inclusive, ``until`` exclusive)."""
    from keymoments.store.store import Store

    t = events_table(data)
    if segment:
        if "=" not in segment:
            raise InvalidParameterError(
                f"The 'segment' parameter of {owner} must look like name=value (e.g. tier=gold). Got {segment!r} instead."
            )
        name, value = (s.strip() for s in segment.split("=", 1))
        if name in t.columns:
            t = t.filter(t[name].cast("string") == value)
        elif isinstance(data, Store):
            attrs = data.table("attributes")
            known = [str(x) for x in data.query("SELECT DISTINCT name FROM attributes")["name"]]
            check_choice(owner, "segment attribute", name, known or ["(no attributes loaded)"])
            keys = attrs.filter(
                (attrs.key_kind == "customer_id") & (attrs.name == name) & (attrs.value == value)
            )
            t = t.filter(t.customer_id.isin(keys.key))
        else:
            raise InvalidParameterError(
                f"The 'segment' parameter of {owner} names {name!r}, which is not a column of the events; "
                "customer attributes need a Store."
            )
    if channel:
        if "channel" not in t.columns:
            raise InvalidParameterError(
                f"The 'channel' parameter of {owner} needs a 'channel' column in the events."
            )
        t = t.filter(t.channel == channel)
    lo, hi = _parse_ts(since, "since"), _parse_ts(until, "until")
    if lo is not None:
        t = t.filter(t.ts >= lo.to_pydatetime())
    if hi is not None:
        t = t.filter(t.ts < hi.to_pydatetime())
    return t
