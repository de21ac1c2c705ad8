"""Narrowing the events an analysis sees: by customer segment, channel and date range.

Every analysis that reads events takes the same four filters, with one meaning everywhere (the CLI's
``--segment/--channel/--since/--until``, the API's query parameters and the dashboard's filter bar):

* ``segment``: ``name=value``, a customer attribute (``tier=gold``, ``segment=business``) or a column of the
  events (``location_id=LHR``): only those customers' (or those) events;
* ``channel``: only the events on that channel (``web``, ``app``, ``phone``…);
* ``since`` (inclusive) and ``until`` (exclusive): only the events in that date range; ISO-8601 dates or times,
  naive ones taken as UTC.

**What is filtered.** The filters narrow the *events* an analysis reads. Outcomes and customer attributes
belong to a customer or a journey and are never filtered by date; but a customer (or journey) with no event
left after the filters drops out of a per-customer analysis, outcome and all. Derived columns that describe
the whole journey (``step``, ``is_last``) keep their meaning: the first event of a journey is its first one
even when the date range starts later.

:class:`EventFilters` gives an analysis the four parameters, validates them in one voice and reports the ones
applied (``filters`` in ``to_dict()``); :func:`filter_events` applies them to a Store, an Ibis table or a
pandas frame of events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict, Unpack

import pandas as pd

from keymoments.analyze.order import events_table
from keymoments.events import did_you_mean
from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "FILTERS", "EventFilters", "FilterParams", "check_filters", "describe_filters", "filter_events", "filter_rows",
    "filters_of", "takes_filters",
]


class FilterParams(TypedDict, total=False):
    """The event filters, as keyword arguments: one definition for every analysis (``**filters``)."""

    segment: str | None  #: name=value of a customer attribute or an events column
    channel: str | None  #: only events on this channel
    since: str | datetime | None  #: only events at or after this (ISO-8601; naive is UTC)
    until: str | datetime | None  #: only events before this (exclusive)


#: the filter parameters, in the order they are shown
FILTERS: tuple[str, ...] = tuple(FilterParams.__annotations__)
_SHOWN = 20  # known values listed in an error message at most


def invalid(param: str, message: str) -> InvalidParameterError:
    """The one-voice parameter error, naming the parameter in ``errors`` too (the API's error shape lists it)."""
    exc = InvalidParameterError(message)
    exc.errors = [{"loc": [param], "msg": message, "type": "value_error"}]  # type: ignore[attr-defined]
    return exc


def _parse_ts(value: str | datetime | None, name: str, owner: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise invalid(
            name,
            f"The {name!r} parameter of {owner} must be an ISO-8601 date or time (e.g. 2025-07-01). Got {value!r} instead.",
        )
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _split_segment(segment: Any, owner: str) -> tuple[str, str]:
    name, sep, value = str(segment).partition("=")
    name, value = name.strip(), value.strip()
    if not isinstance(segment, str) or not sep or not name or not value:
        raise invalid(
            "segment",
            f"The 'segment' parameter of {owner} must look like name=value (e.g. tier=gold). Got {segment!r} instead.",
        )
    return name, value


def check_filters(owner: str, **filters: Unpack[FilterParams]) -> dict[str, str]:
    """Validate the filters' form (no data needed) and return the ones applied, normalised for JSON:
    ``{"segment": "tier=gold", "channel": "web", "since": "2025-07-01T00:00:00+00:00"}``."""
    segment, channel = filters.get("segment"), filters.get("channel")
    since, until = filters.get("since"), filters.get("until")
    out: dict[str, str] = {}
    if segment:
        name, value = _split_segment(segment, owner)
        out["segment"] = f"{name}={value}"
    if channel:
        if not isinstance(channel, str):
            raise invalid(
                "channel", f"The 'channel' parameter of {owner} must be a string. Got {channel!r} instead.",
            )
        out["channel"] = channel
    lo, hi = _parse_ts(since, "since", owner), _parse_ts(until, "until", owner)
    if lo is not None and hi is not None and hi <= lo:
        raise invalid(
            "until",
            f"The 'until' parameter of {owner} must be later than 'since' ({lo.isoformat()}); "
            f"got {hi.isoformat()}, which leaves no events.",
        )
    if lo is not None:
        out["since"] = lo.isoformat()
    if hi is not None:
        out["until"] = hi.isoformat()
    return out


def _check_known(owner: str, param: str, value: str, known: list[str], what: str) -> None:
    if value in known:
        return
    shown = sorted(known)[:_SHOWN]
    more = f" and {len(known) - _SHOWN} more" if len(known) > _SHOWN else ""
    raise invalid(
        param,
        f"The {param!r} parameter of {owner} must name {what} the data has: one of {shown}{more}. "
        f"Got {value!r} instead.{did_you_mean(value, known)}",
    )


def _distinct(t: ir.Table, col: str, limit: int = 1000) -> list[str]:
    v = t.select(_v=t[col].cast("string")).distinct().limit(limit).execute()["_v"]
    return [str(x) for x in v.dropna()]


def _matches(t: ir.Table, cond: Any) -> bool:
    """Whether any row satisfies ``cond`` (the scan stops at the first match)."""
    return len(t.filter(cond).select("customer_id").limit(1).execute()) > 0


def filter_events(data: Any, *, owner: str = "JourneyMap", **filters: Unpack[FilterParams]) -> ir.Table:
    """The events of ``data`` (a Store, an Ibis table or a pandas frame) narrowed by segment (``name=value``
    of a customer attribute or an events column), channel and date range (``since`` inclusive, ``until``
    exclusive). A segment or channel value the data does not have is an error that lists the known ones.
    ``owner`` names the analysis in error messages."""
    from keymoments.store.store import Store

    applied = check_filters(owner, **filters)
    t = events_table(data)
    if "segment" in applied:
        name, value = _split_segment(applied["segment"], owner)
        if name in t.columns:
            cond = t[name].cast("string") == value
            if not _matches(t, cond):
                _check_known(owner, "segment", f"{name}={value}", [f"{name}={v}" for v in _distinct(t, name)],
                             f"a value of the events column {name!r}")  # fmt: skip
            t = t.filter(cond)
        elif isinstance(data, Store):
            names = [str(x) for x in data.query("SELECT DISTINCT name FROM attributes WHERE key_kind = 'customer_id'")["name"]]
            if name not in names:
                _check_known(owner, "segment", name, names + list(t.columns), "a customer attribute or events column")
            values = data.query(
                "SELECT DISTINCT value FROM attributes WHERE key_kind = 'customer_id' AND name = ?", [name]
            )["value"]
            _check_known(owner, "segment", f"{name}={value}", [f"{name}={v}" for v in values.dropna()],
                         f"a value of the customer attribute {name!r}")  # fmt: skip
            attrs = data.table("attributes")
            keys = attrs.filter((attrs.key_kind == "customer_id") & (attrs.name == name) & (attrs.value == value))
            t = t.filter(t.customer_id.isin(keys.key))
        else:
            raise invalid(
                "segment",
                f"The 'segment' parameter of {owner} names {name!r}, which is not a column of the events "
                f"{sorted(t.columns)}; customer attributes need a Store.{did_you_mean(name, list(t.columns))}",
            )
    if "channel" in applied:
        if "channel" not in t.columns:
            raise invalid("channel", f"The 'channel' parameter of {owner} needs a 'channel' column in the events.")
        channel = applied["channel"]
        if not _matches(t, t.channel == channel):
            _check_known(owner, "channel", channel, _distinct(t, "channel"), "a channel")
        t = t.filter(t.channel == channel)
    if "since" in applied:
        t = t.filter(t.ts >= pd.Timestamp(applied["since"]).to_pydatetime())
    if "until" in applied:
        t = t.filter(t.ts < pd.Timestamp(applied["until"]).to_pydatetime())
    return t


def filter_rows(df: pd.DataFrame, *, owner: str, **filters: Unpack[FilterParams]) -> pd.DataFrame:
    """The rows of a frame without events (a wide survey table, one row per respondent) in ``segment``, a
    ``name=value`` of one of its columns. Channel and dates belong to events, so they are refused here."""
    applied = check_filters(owner, **filters)
    for p in ("channel", "since", "until"):
        if p in applied:
            raise invalid(
                p,
                f"The {p!r} parameter of {owner} needs events with 'channel' and 'ts' columns; this frame has none "
                "(a wide survey table: one row per respondent). Filter it by one of its columns with "
                "segment=name=value, or pass events.",
            )
    if "segment" not in applied:
        return df
    name, value = _split_segment(applied["segment"], owner)
    cols = [str(c) for c in df.columns]
    if name not in cols:
        raise invalid(
            "segment",
            f"The 'segment' parameter of {owner} names {name!r}, which is not a column of the frame "
            f"{sorted(cols)}.{did_you_mean(name, cols)}",
        )
    col = df[name].astype(str)
    _check_known(owner, "segment", f"{name}={value}", [f"{name}={v}" for v in col.unique()], f"a value of {name!r}")
    return df[col == value]


def takes_filters(cls: type) -> bool:
    """Whether an analysis class takes the event filters (an :class:`EventFilters` one, or the JourneyMap)."""
    import inspect

    return issubclass(cls, EventFilters) or set(FILTERS) <= set(inspect.signature(cls).parameters)


def filters_of(obj: Any) -> dict[str, Any]:
    """The filter parameters an analysis (or any object with those attributes) was given, unset ones left out."""
    return {k: getattr(obj, k) for k in FILTERS if getattr(obj, k, None) not in (None, "")}


def describe_filters(filters: dict[str, Any]) -> str:
    """One line for people: ``segment tier=gold · channel web · from 2025-07-01 · until 2025-10-01`` ('' when none)."""

    def day(v: Any) -> str:
        s = str(v)
        return s[: -len("T00:00:00+00:00")] if s.endswith("T00:00:00+00:00") else s

    words = {"segment": "segment {}", "channel": "channel {}", "since": "from {}", "until": "until {}"}
    return " · ".join(
        words[k].format(day(filters[k]) if k in ("since", "until") else filters[k])
        for k in FILTERS
        if filters.get(k) not in (None, "")
    )


class EventFilters:
    """The four filters as parameters of an analysis: a mixin listed before :class:`Analysis`.

    ``__init__`` takes them as ``**filters: Unpack[FilterParams]`` and stores them with :meth:`_set_filters`
    (as attributes ``segment``, ``channel``, ``since``, ``until``, like any parameter); ``fit`` reads its events
    through :meth:`_events`; ``to_dict()`` reports :attr:`filters`. An analysis for which a channel filter
    makes no sense says why in :attr:`channel_unsupported`, and refuses one with that reason.
    """

    segment: str | None = None
    channel: str | None = None
    since: str | datetime | None = None
    until: str | datetime | None = None
    #: why this analysis refuses a channel filter (None: it takes one)
    channel_unsupported: ClassVar[str | None] = None

    #: the name errors give: the class's, or that of the analysis this one is fitted for (a Roadmap's moments)
    _owner: str | None = None

    def _set_filters(self, filters: FilterParams) -> None:
        for name in filters:
            if name not in FILTERS:  # what Python says of an unknown keyword, with a hint
                raise TypeError(
                    f"{type(self).__name__}() got an unexpected keyword argument {name!r}.{did_you_mean(name, FILTERS)}"
                )
        self.segment, self.channel, self.since, self.until = (filters.get(k) for k in FILTERS)

    @property
    def filters(self) -> dict[str, str]:
        """The filters applied, validated and normalised (ISO-8601 UTC dates), e.g. ``{"channel": "web"}``."""
        owner = self._owner or type(self).__name__
        if self.channel and self.channel_unsupported:
            raise invalid(
                "channel", f"The 'channel' parameter of {owner} is not supported: {self.channel_unsupported}",
            )
        return check_filters(owner, **filters_of(self))

    def _events(self, data: Any, **override: Any) -> ir.Table:
        """The events of ``data`` under this analysis's filters (``override``: e.g. ``since=None``)."""
        self.filters  # noqa: B018 - validates, with the channel refusal
        return filter_events(data, **{**filters_of(self), **override}, owner=self._owner or type(self).__name__)

    def _rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of a frame without events (a wide survey table) under this analysis's filters."""
        self.filters  # noqa: B018
        return filter_rows(df, **filters_of(self), owner=self._owner or type(self).__name__)

    def _repr_html_(self) -> str:
        import html

        note = describe_filters(filters_of(self))
        out = super()._repr_html_()  # type: ignore[misc]
        return out + (f"<p><em>Filtered: {html.escape(note)}</em></p>" if note else "")
