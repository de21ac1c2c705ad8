"""XES (the IEEE process-mining standard) event logs → Arrow, streamed with lxml's ``iterparse``.

Mapping: each ``<trace>`` is a journey (its ``concept:name`` → ``journey_id``, also the ``customer_id``
unless the trace has a ``customer_id`` / ``customer`` attribute); each ``<event>``'s ``concept:name`` →
``touchpoint``, ``time:timestamp`` → ``ts``, ``org:resource`` → ``employee_id``. Every other event attribute,
and the trace's attributes prefixed with ``case:``, go into ``attrs``. ``.xes.gz`` is read compressed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO

import pyarrow as pa
from lxml import etree

from keymoments.exceptions import IngestError

__all__ = ["read_xes"]

_VALUE_TAGS = {"string", "date", "int", "float", "boolean", "id"}
_EVENT_MAP = {"concept:name": "touchpoint", "time:timestamp": "ts", "org:resource": "employee_id"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _value(el: etree._Element) -> object:
    tag = _local(el.tag)
    raw = el.get("value")
    if raw is None:
        return None
    if tag == "int":
        try:
            return int(raw)
        except ValueError:
            return raw
    if tag == "float":
        try:
            return float(raw)
        except ValueError:
            return raw
    if tag == "boolean":
        return raw.lower() == "true"
    return raw


def read_xes(path: str | Path) -> pa.Table:
    """Read an XES log into an Arrow table with contract columns (``attrs`` as a JSON string)."""
    path = Path(path)
    cols: dict[str, list[object]] = {
        k: [] for k in ("customer_id", "journey_id", "touchpoint", "ts", "employee_id", "outcome", "attrs")
    }
    trace_attrs: dict[str, object] = {}
    in_event = False
    event: dict[str, object] = {}
    n_traces = 0
    try:
        with _open(path) as fh:
            for action, el in etree.iterparse(fh, events=("start", "end"), huge_tree=True, recover=False):
                tag = _local(el.tag)
                if action == "start":
                    if tag == "trace":
                        trace_attrs = {}
                        n_traces += 1
                    elif tag == "event":
                        in_event = True
                        event = {}
                    continue
                # end of an element
                if tag in _VALUE_TAGS:
                    parent = el.getparent()
                    ptag = _local(parent.tag) if parent is not None else ""
                    key = el.get("key")
                    if key is not None and ptag == "event" and in_event:
                        event[key] = _value(el)
                    elif key is not None and ptag == "trace":
                        trace_attrs[key] = _value(el)
                elif tag == "event":
                    in_event = False
                    journey = trace_attrs.get("concept:name")
                    journey = None if journey is None else str(journey)
                    customer = trace_attrs.get("customer_id", trace_attrs.get("customer", journey))
                    cols["journey_id"].append(journey)
                    cols["customer_id"].append(None if customer is None else str(customer))
                    cols["touchpoint"].append(_str(event.get("concept:name")))
                    cols["ts"].append(_str(event.get("time:timestamp")))
                    cols["employee_id"].append(_str(event.get("org:resource")))
                    cols["outcome"].append(_str(event.get("outcome")))
                    extra = {k: v for k, v in event.items() if k not in _EVENT_MAP and k != "outcome"}
                    extra.update(
                        {f"case:{k}": v for k, v in trace_attrs.items() if k not in ("concept:name", "customer_id")}
                    )
                    cols["attrs"].append(json.dumps(extra, ensure_ascii=False) if extra else None)
                    el.clear()
                elif tag == "trace":
                    el.clear()
                    while el.getprevious() is not None:
                        del el.getparent()[0]
    except (etree.XMLSyntaxError, OSError, EOFError) as exc:
        raise IngestError(f"{path}: not a readable XES log ({exc}). Check the file is complete XML.") from None
    if n_traces == 0:
        raise IngestError(f"{path}: no <trace> elements found; is this an XES event log?")
    return pa.table({k: pa.array(v, type=pa.string()) for k, v in cols.items()})


def _str(v: object) -> str | None:
    return None if v is None else str(v)
