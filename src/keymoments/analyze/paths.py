"""Journey-level numbers of the journey map: journeys and customers per touchpoint, and the most common paths.

**Method.** One group-by per journey gives the set of touchpoints it visits (a bit mask) and a fingerprint of
its path: the xor of hashes of its (touchpoint, step) pairs, which are distinct within a journey, so equal
paths have equal fingerprints and no path is built or sorted. (Each pair is hashed as one integer: DuckDB's
multi-argument ``hash(a, b)`` combines the parts by xor, so permuted paths would collide.) A second group-by
of that small table counts the journeys per fingerprint, with the set of touchpoints and the smallest journey
key, the example that breaks ties. One group-by per customer gives the set of touchpoints they visit. Journeys
and customers per touchpoint are sums over the sets; the top paths are read back from the events of their
example journeys only.

With more than 62 touchpoints (a mask is a 64-bit integer) the numbers come from ``COUNT(DISTINCT ...)`` and
ordered string aggregation instead, and ties between equally common paths are broken by the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keymoments.analyze.sql import sql_list, sql_str

if TYPE_CHECKING:
    from keymoments.analyze.sql import EventsSQL

__all__ = ["JourneyCounts", "journey_counts"]

_MAX_MASK = 62  # touchpoints a BIGINT bit mask holds (1 << 62 is the largest positive power of two used)

# journeys per path fingerprint: how many, the touchpoints on the path, and the example (smallest key)
_BY_PATH = """
SELECT fp, any_value(mask) AS mask, count(*) AS n, min(_jid) AS example
FROM (
    SELECT _jid, bit_or(1::BIGINT << idx) AS mask, bit_xor(hash(idx * 1000003 + step)) AS fp
    FROM (SELECT _jid, step, list_position({touchpoints}, touchpoint) - 1 AS idx FROM ev)
    GROUP BY _jid
) GROUP BY fp
"""
# customers per set of touchpoints visited
_BY_CUSTOMER = """
SELECT mask, count(*) AS n
FROM (
    SELECT customer_id, bit_or(1::BIGINT << (list_position({touchpoints}, touchpoint) - 1)) AS mask
    FROM ev GROUP BY customer_id
) GROUP BY mask
"""

# the events of the example journeys. The journey key is the journey, or the customer where it is missing:
# filtering the raw columns (not the key), one query each, lets DuckDB skip the row groups without examples
_PATH_EVENTS = "SELECT _jid, step, touchpoint FROM ev WHERE {where}"
_BY_JOURNEY_ID = "journey_id IN ({keys})"
_BY_CUSTOMER_ID = "journey_id IS NULL AND customer_id IN ({keys})"

_DISTINCT_PER_TOUCHPOINT = """
SELECT touchpoint, count(DISTINCT _jid) AS journeys, count(DISTINCT customer_id) AS customers
FROM ev GROUP BY touchpoint
"""

_DISTINCT_TOTAL = "SELECT count(DISTINCT _jid) AS journeys, count(DISTINCT customer_id) AS customers FROM ev"

_TOP_PATHS = """
SELECT path, count(*) AS journeys
FROM (SELECT _jid, string_agg(touchpoint, ' > ' ORDER BY step) AS path FROM ev GROUP BY _jid)
GROUP BY path ORDER BY journeys DESC, path LIMIT {limit}
"""


@dataclass
class JourneyCounts:
    """Journeys and customers in all and per touchpoint, and the most common paths."""

    journeys: int
    customers: int
    journeys_at: dict[str, int]
    customers_at: dict[str, int]
    variants: pd.DataFrame  # path, journeys, share


def _no_variants() -> pd.DataFrame:
    return pd.DataFrame(columns=["path", "journeys", "share"])


def journey_counts(q: EventsSQL, touchpoints: list[str], n_variants: int | None) -> JourneyCounts:
    """Journey-level numbers of the events ``q`` reads (``n_variants=None``: no paths)."""
    if len(touchpoints) > _MAX_MASK:
        return _journey_counts_distinct(q, n_variants)
    per_fp = q.df(_BY_PATH.format(touchpoints=sql_list(touchpoints)))
    per_cmask = q.df(_BY_CUSTOMER.format(touchpoints=sql_list(touchpoints)))

    def decode(masks: pd.Series, weights: pd.Series) -> dict[str, int]:
        m = masks.to_numpy(dtype=np.int64)
        w = weights.to_numpy(dtype=np.int64)
        return {tp: int(w[(m >> i) & 1 == 1].sum()) for i, tp in enumerate(touchpoints)}

    n_journeys = int(per_fp["n"].sum())
    variants = _no_variants()
    if n_variants is not None:
        top = per_fp.sort_values(["n", "example"], ascending=[False, True]).head(n_variants)
        variants = _paths(q, top, n_journeys)
    return JourneyCounts(
        journeys=n_journeys,
        customers=int(per_cmask["n"].sum()),
        journeys_at=decode(per_fp["mask"], per_fp["n"]),
        customers_at=decode(per_cmask["mask"], per_cmask["n"]),
        variants=variants,
    )


def _paths(q: EventsSQL, top: pd.DataFrame, n_journeys: int) -> pd.DataFrame:
    """The paths of the example journeys of the top fingerprints."""
    examples = [str(x) for x in top["example"]]
    if not examples:
        return _no_variants()
    keys = ", ".join(sql_str(e) for e in examples)
    wheres = [_BY_JOURNEY_ID, _BY_CUSTOMER_ID] if "journey_id" in q.columns else ["customer_id IN ({keys})"]
    ev = pd.concat([q.df(_PATH_EVENTS.format(where=w.format(keys=keys))) for w in wheres])
    ev = ev.assign(_jid=ev["_jid"].astype(str)).sort_values(["_jid", "step"], kind="mergesort")
    path_of = ev.groupby("_jid", sort=False)["touchpoint"].agg(" > ".join)
    out = pd.DataFrame({"path": [path_of[e] for e in examples], "journeys": top["n"].to_numpy(dtype=np.int64)})
    out["share"] = out["journeys"] / n_journeys
    return out


def _journey_counts_distinct(q: EventsSQL, n_variants: int | None) -> JourneyCounts:
    """The same numbers with COUNT(DISTINCT) and ordered string aggregation (many touchpoints)."""
    per = q.df(_DISTINCT_PER_TOUCHPOINT)
    tot = q.df(_DISTINCT_TOTAL)
    n_journeys = int(tot["journeys"].iloc[0])
    variants = _no_variants()
    if n_variants is not None:
        variants = q.df(_TOP_PATHS.format(limit=int(n_variants)))
        variants["share"] = variants["journeys"] / n_journeys
    return JourneyCounts(
        journeys=n_journeys,
        customers=int(tot["customers"].iloc[0]),
        journeys_at=dict(zip(per["touchpoint"], per["journeys"], strict=True)),
        customers_at=dict(zip(per["touchpoint"], per["customers"], strict=True)),
        variants=variants,
    )
