"""Segments: tiers ordered as planted, the middle is worth more than the unhappy, shrinkage and the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keymoments.analyze.segments import Segments, customer_valence, shrink
from keymoments.exceptions import InvalidParameterError


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(2000, seed=1)


@pytest.fixture(scope="module")
def demo_store(demo, tmp_path_factory):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    s = Store(tmp_path_factory.mktemp("sg") / "km.duckdb")
    ingest_events_frame(s, demo.events)
    ingest_outcomes_frame(s, demo.outcomes)
    yield s
    s.close()


@pytest.fixture(scope="module")
def seg(demo_store):
    return Segments(share=0.1).fit(demo_store)


def test_tiers_order_spend_and_retention_as_planted(seg, demo):
    t = seg.tiers_.set_index("tier")
    assert seg.spend_column_ == "spend_next_12m"
    assert t.loc["happy", "mean_spend"] > t.loc["middling", "mean_spend"] > t.loc["unhappy", "mean_spend"]
    assert t.loc["happy", "retained_rate"] > t.loc["middling", "retained_rate"] > t.loc["unhappy", "retained_rate"]
    planted = demo.ground_truth["segments"]
    assert planted["gain_middling_to_happy"] > planted["gain_unhappy_to_middling"]
    # elevating the middle is worth more than fixing the unhappy, as planted (and as Forrester found)
    assert seg.whatif_["ratio"] > 1
    assert seg.whatif_["middle_up"]["ci_low"] > seg.whatif_["unhappy_up"]["gain"]
    assert seg.to_dict()["ratio"] == seg.whatif_["ratio"] and seg.figure() is not None


def test_tier_membership_agrees_with_planted_bands(demo, demo_store):
    cv = customer_valence(demo_store).set_index("customer_id")
    tiers = np.select([cv["valence"] < -0.05, cv["valence"] < 0.30], ["unhappy", "middling"], "happy")
    planted = demo.latent.set_index("customer_id").loc[cv.index, "band"]
    assert (tiers == planted.to_numpy()).mean() > 0.7


def test_whatif_arithmetic(seg):
    t = seg.tiers_.set_index("tier")
    w = seg.whatif_
    assert w["middle_up"]["gain"] == pytest.approx(0.1 * t.loc["middling", "customers"] * (t.loc["happy", "mean_spend"] - t.loc["middling", "mean_spend"]))
    assert w["unhappy_up"]["gain"] == pytest.approx(0.1 * t.loc["unhappy", "customers"] * (t.loc["middling", "mean_spend"] - t.loc["unhappy", "mean_spend"]))
    assert w["middle_up"]["ci_low"] <= w["middle_up"]["gain"] <= w["middle_up"]["ci_high"]


def test_shrink_moves_sparse_units_most():
    means = np.array([1.0, 1.0, -1.0, 0.0, 0.0, 0.5])
    n = np.array([1.0, 50.0, 1.0, 10.0, 10.0, 5.0])
    var = np.array([np.nan, 0.2, np.nan, 0.2, 0.2, 0.2])
    s = shrink(means, n, var)
    assert abs(s[0] - 1.0) > abs(s[1] - 1.0)
    assert np.all(np.abs(s) <= 1)


def test_parameter_errors(demo_store):
    with pytest.raises(InvalidParameterError, match="thresholds"):
        Segments(thresholds=(0.5, 0.1)).fit(demo_store)
    with pytest.raises(InvalidParameterError, match="Did you mean 'spend_next_12m'"):
        Segments(spend="spend_next12m").fit(demo_store)


@pytest.mark.filterwarnings("ignore::keymoments.exceptions.SmallSampleWarning")
def test_works_on_a_frame_without_outcomes():
    rng = np.random.default_rng(0)
    rows = [{"customer_id": f"c{i}", "touchpoint": "x", "valence": float(np.clip(rng.normal(0.1, 0.4), -1, 1)),
             "value": 100.0, "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=k)}
            for i in range(200) for k in range(3)]
    seg = Segments().fit(pd.DataFrame(rows))
    assert seg.spend_column_ == "paid" and seg.tiers_["customers"].sum() == 200
