"""Service recovery paradox: planted groups and sign recovered, the group rule on hand-made journeys."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.analyze.recovery import Recovery, recovery_groups


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(2000, seed=1)


@pytest.fixture(scope="module")
def demo_store(demo, tmp_path_factory, demo_store_at):
    s = demo_store_at(tmp_path_factory.mktemp("rc"), demo)
    yield s
    s.close()


def test_recovery_paradox_sign_and_groups(demo, demo_store):
    rc = Recovery("retained", journey=demo.journey).fit(demo_store)
    gt = demo.ground_truth["recovery"]["groups"]
    g = rc.groups_.set_index("group")
    assert g.loc["none", "n"] == gt["none"]["n_customers"]
    assert g.loc["recovered", "n"] + g.loc["unrecovered", "n"] == gt["recovered"]["n_customers"] + gt["unrecovered"]["n_customers"]
    assert g.loc["recovered", "rate"] > g.loc["none", "rate"] > g.loc["unrecovered", "rate"]
    assert rc.verdict_ == "paradox"
    d = rc.to_dict()
    assert {"groups", "differences", "verdict", "cost"} <= set(d)
    assert d["cost"]["per_retained_recovered"] > 0
    assert rc.figure() is not None


def test_recovered_customers_mostly_match_the_planted_ones(demo, demo_store):
    groups = recovery_groups(demo_store, demo.journey).set_index("customer_id")["group"]
    # latent crisis groups are planted per customer
    latent = demo.latent.set_index("customer_id")["crisis_group"]
    planted_rec = latent[latent == "recovered"].index
    share = (groups.loc[planted_rec] == "recovered").mean()
    assert share > 0.75
    planted_unrec = latent[latent == "unrecovered"].index
    assert (groups.loc[planted_unrec] == "unrecovered").all()


def test_rates_match_pandas(demo, demo_store):
    rc = Recovery("retained").fit(demo_store)
    groups = recovery_groups(demo_store)
    df = groups.merge(demo.outcomes.assign(customer_id=demo.outcomes["customer_id"].astype(str)), on="customer_id")
    ref = df.groupby("group")["retained"].mean()
    got = rc.groups_.set_index("group")["rate"]
    for grp in ref.index:
        assert got[grp] == pytest.approx(ref[grp], abs=1e-12)


def test_group_rule_on_hand_made_journeys():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [
        # j1: crisis, then resolution with a positive rating -> recovered
        ("a", "j1", 0, "flight", "cancelled", -0.8), ("a", "j1", 1, "support", "resolved", 0.7),
        # j2: crisis, resolution but unhappy after -> unrecovered
        ("b", "j2", 0, "flight", "delayed", -0.5), ("b", "j2", 1, "support", "resolved", -0.4),
        # j3: no crisis
        ("c", "j3", 0, "flight", "completed", 0.5),
        # j4: crisis, resolution, then another crisis -> unrecovered
        ("d", "j4", 0, "flight", "lost", -0.8), ("d", "j4", 1, "support", "resolved", 0.5),
        ("d", "j4", 2, "baggage", "lost", -0.9),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "journey_id", "h", "touchpoint", "outcome", "valence"])
    df["ts"] = t0 + pd.to_timedelta(df["h"], unit="h")
    g = recovery_groups(df.drop(columns="h")).set_index("customer_id")["group"].to_dict()
    assert g == {"a": "recovered", "b": "unrecovered", "c": "none", "d": "unrecovered"}
