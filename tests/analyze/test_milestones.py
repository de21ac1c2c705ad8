"""Invisible milestones: the planted tenth flights, their markings and first anniversaries are found."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.analyze.milestones import Milestones, milestone_crossings


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(2000, seed=1)


@pytest.fixture(scope="module")
def demo_store(demo, tmp_path_factory):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    s = Store(tmp_path_factory.mktemp("ms") / "km.duckdb")
    ingest_events_frame(s, demo.events)
    ingest_outcomes_frame(s, demo.outcomes)
    c = demo.customers[["customer_id", "signup_date"]].copy()
    c["signup_date"] = c["signup_date"].astype(str)
    ingest_outcomes_frame(s, c)
    yield s
    s.close()


@pytest.fixture(scope="module")
def ms(demo_store):
    return Milestones("retained").fit(demo_store)


def test_planted_tenth_flights_are_found(ms, demo):
    gt = demo.ground_truth["milestones"]["tenth_flight"]
    cr = ms.crossings_
    tenth = cr[cr["milestone"] == "journey_10"]
    assert set(tenth["customer_id"]) == set(gt["customer_ids"])
    marked = set(tenth.loc[tenth["marked"], "customer_id"])
    planted = set(gt["marked_customer_ids"])
    assert len(marked & planted) >= 0.9 * len(planted)
    assert len(marked - planted) <= 0.05 * len(planted)


def test_first_anniversaries_are_found(ms, demo):
    planted = set(demo.ground_truth["milestones"]["one_year"]["customer_ids"])
    found = set(ms.crossings_.loc[ms.crossings_["milestone"] == "anniversary_1y", "customer_id"])
    # calendar anniversaries vs the generator's 365 days differ only at leap days and the window's edge
    assert len(found ^ planted) <= 0.02 * len(planted)


def test_marked_tenth_flight_goes_with_better_retention(ms):
    row = ms.milestones_.set_index("milestone").loc["journey_10"]
    assert row["marked_rate"] > row["unmarked_rate"]
    one = ms.milestones_.set_index("milestone").loc["anniversary_1y"]
    assert one["unmarked_rate"] < one["not_crossed_rate"]  # planted: the first anniversary is a risk
    assert row["per_week"] == pytest.approx(row["customers"] / ms.weeks_)


def test_firsts_exclude_what_every_first_journey_has(ms):
    names = set(ms.milestones_["milestone"])
    assert "first_reservation" not in names and "first_flight" not in names
    assert "first_support" in names and "first_baggage" in names
    d = ms.to_dict()
    assert {"milestones", "weekly", "outcome"} <= set(d) and d["weekly"]["journey_10"]
    assert ms.figure() is not None


def test_spend_thresholds_on_hand_made_events():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [{"customer_id": "a", "journey_id": f"a{k}", "touchpoint": "buy", "value": 400.0,
             "ts": t0 + pd.Timedelta(days=k)} for k in range(5)]
    cr = milestone_crossings(pd.DataFrame(rows), counts=(1, 3), years=(), spend_thresholds=(1000,))
    spend = cr[cr["milestone"] == "spend_1000"]
    assert len(spend) == 1 and spend["ts"].iloc[0] == t0 + pd.Timedelta(days=2)
    assert cr.loc[cr["milestone"] == "journey_3", "ts"].iloc[0] == t0 + pd.Timedelta(days=2)
