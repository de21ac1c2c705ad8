"""Journey-level numbers (journeys and customers per touchpoint, most common paths) against plain pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keymoments.analyze.order import events_table
from keymoments.analyze.paths import journey_counts
from keymoments.analyze.sql import EventsSQL


def random_events(n_journeys: int, n_touchpoints: int, seed: int) -> pd.DataFrame:
    """Journeys of 1-8 events with repeats, two or three journeys per customer, some without a journey id."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_journeys):
        start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=j)
        for k in range(int(rng.integers(1, 9))):
            rows.append({
                "customer_id": f"c{j // 3 if j % 7 else j}",
                "journey_id": None if j % 7 == 0 else f"j{j}",
                "touchpoint": f"t{int(rng.integers(0, n_touchpoints))}",
                "ts": start + pd.Timedelta(hours=k),
            })  # fmt: skip
    return pd.DataFrame(rows)


def reference(ev: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Journeys and customers per touchpoint, and path counts (ties by smallest journey key), with pandas."""
    ev = ev.assign(jid=ev["journey_id"].fillna(ev["customer_id"])).sort_values(["jid", "ts"], kind="mergesort")
    journeys = ev.groupby("touchpoint")["jid"].nunique()
    customers = ev.groupby("touchpoint")["customer_id"].nunique()
    paths = ev.groupby("jid")["touchpoint"].agg(" > ".join)
    by_path = paths.reset_index().groupby("touchpoint").agg(n=("jid", "size"), example=("jid", "min"))
    by_path = by_path.sort_values(["n", "example"], ascending=[False, True])
    return journeys, customers, by_path["n"]


def counts(ev: pd.DataFrame, n_variants: int | None = 10):
    q = EventsSQL(events_table(ev), columns={"_jid": "coalesce(journey_id, customer_id)"})
    touchpoints = sorted(ev["touchpoint"].unique())
    return journey_counts(q, touchpoints, n_variants)


@pytest.mark.parametrize("n_touchpoints", [5, 70])  # a bit mask per journey, and COUNT(DISTINCT) past 62
def test_counts_match_pandas(n_touchpoints):
    ev = random_events(400, n_touchpoints, seed=n_touchpoints)
    journeys, customers, _ = reference(ev)
    jc = counts(ev)
    assert jc.journeys == ev["journey_id"].fillna(ev["customer_id"]).nunique()
    assert jc.customers == ev["customer_id"].nunique()
    assert jc.journeys_at == journeys.to_dict()
    assert jc.customers_at == customers.to_dict()


def test_variants_are_the_most_common_paths_ties_by_smallest_journey():
    ev = random_events(600, 3, seed=1)
    _, _, paths = reference(ev)
    jc = counts(ev, n_variants=8)
    assert jc.variants["path"].tolist() == paths.index[:8].tolist()
    assert jc.variants["journeys"].tolist() == paths.iloc[:8].tolist()
    np.testing.assert_allclose(jc.variants["share"], paths.iloc[:8] / jc.journeys)


def test_permuted_paths_are_different_variants():
    # the path fingerprint must not be symmetric in (touchpoint, step): a > b and b > a are two paths
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    ev = pd.DataFrame({
        "customer_id": ["c1", "c1", "c2", "c2", "c3", "c3"],
        "touchpoint": ["a", "b", "b", "a", "a", "b"],
        "ts": [ts, ts + pd.Timedelta(hours=1)] * 3,
    })  # fmt: skip
    jc = counts(ev)
    assert dict(zip(jc.variants["path"], jc.variants["journeys"], strict=True)) == {"a > b": 2, "b > a": 1}


def test_no_variants_asked():
    jc = counts(random_events(50, 4, seed=2), n_variants=None)
    assert jc.variants.empty and list(jc.variants.columns) == ["path", "journeys", "share"]
