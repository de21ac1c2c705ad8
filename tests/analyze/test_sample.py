"""Fits above the customer limit are drawn on a stratified sample: sized, proportional, seeded, and said so."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.analyze.milestones import Milestones
from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.peak_end import PeakEnd
from keymoments.analyze.recovery import Recovery
from keymoments.analyze.roadmap import Roadmap
from keymoments.analyze.sample import CustomerShare, customer_share, fit_limit, stratified_sample
from keymoments.analyze.segments import Segments
from keymoments.exceptions import InvalidParameterError

WARNING = "fitted on a stratified sample of 50 of 300 customers; the intervals are the sample's"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, demo_store_at):
    from keymoments.examples.airline import generate_airline
    from keymoments.store.writer import ingest_outcomes_frame

    demo = generate_airline(300, seed=3)
    s = demo_store_at(tmp_path_factory.mktemp("sample"), demo)
    ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]])  # attributes: the controls
    yield s
    s.close()


def fitted(make, store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return json.loads(json.dumps(make().fit(store).to_dict(), default=str))


def test_strata_keep_their_proportions_within_one_and_the_draw_is_seeded():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(1000)], "y": (rng.random(1000) < 0.17) * 1.0}
    )
    frame.loc[::50, "y"] = None  # units without the outcome are not fitted, so not counted
    s = stratified_sample(frame, "customer_id", "y", 50, seed=4)
    assert (s.n, s.total) == (50, 980)
    shares = s.strata.set_index("stratum")
    assert shares["sampled"].sum() == 50
    assert (abs(shares["sampled"] - 50 * shares["total"] / 980) < 1).all()
    drawn = frame.set_index("customer_id").loc[list(s.keys), "y"]
    assert int(drawn.sum()) == shares.loc["1.0", "sampled"]  # the keys drawn are the strata's counts
    assert list(
        stratified_sample(frame.sample(frac=1, random_state=2), "customer_id", "y", 50, seed=4).keys
    ) == list(s.keys)
    assert set(stratified_sample(frame, "customer_id", "y", 50, seed=5).keys) != set(s.keys)
    assert stratified_sample(frame, "customer_id", "y", 980, seed=4) is None
    numeric = stratified_sample(frame.assign(y=rng.normal(size=1000)), "customer_id", "y", 55)
    assert len(numeric.strata) == 10 and set(numeric.strata["sampled"]) <= {5, 6}  # deciles, 5.5 each


def test_the_limit_is_a_whole_number(monkeypatch):
    assert fit_limit(None) == 2_000_000
    monkeypatch.setenv("KM_MAX_FIT_CUSTOMERS", "50")
    assert fit_limit(None) == 50
    with pytest.raises(
        InvalidParameterError, match="'max_fit_customers' parameter of PeakEnd must be a whole number"
    ):
        fit_limit(0, "PeakEnd")


@pytest.mark.slow
def test_moments_and_roadmap_fit_the_sample_and_say_so(demo_store, monkeypatch):
    whole = fitted(lambda: MomentsOfTruth("retained", n_boot=200), demo_store)
    assert fitted(lambda: MomentsOfTruth("retained", n_boot=200, max_fit_customers=300), demo_store) == whole
    assert not any("stratified sample" in w for w in whole["warnings"])
    mot = MomentsOfTruth("retained", n_boot=200, max_fit_customers=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mot.fit(demo_store)
    assert mot.n_ == 50 and mot.warnings_[0].startswith(WARNING)
    sampled = fitted(lambda: MomentsOfTruth("retained", n_boot=200, max_fit_customers=50), demo_store)
    assert sampled != whole
    monkeypatch.setenv("KM_MAX_FIT_CUSTOMERS", "50")  # the setting does what the parameter does
    assert fitted(lambda: MomentsOfTruth("retained", n_boot=200), demo_store) == sampled
    roadmap = fitted(lambda: Roadmap("retained", n_boot=200), demo_store)
    assert roadmap["warnings"][0].startswith(WARNING)


@pytest.mark.slow
def test_peak_end_fits_the_sample_and_says_so(demo_store):
    whole = fitted(lambda: PeakEnd("retained", n_boot=100), demo_store)
    assert "warnings" not in whole
    assert fitted(lambda: PeakEnd("retained", n_boot=100, max_fit_customers=1000), demo_store) == whole
    sampled = fitted(lambda: PeakEnd("retained", n_boot=100, max_fit_customers=50), demo_store)
    assert sampled["n"] == 50 and sampled["warnings"][0].startswith(WARNING)


def test_recovery_groups_the_sample_and_says_so(demo_store):
    whole = fitted(lambda: Recovery("retained"), demo_store)
    assert "warnings" not in whole
    assert fitted(lambda: Recovery("retained", max_fit_customers=300), demo_store) == whole
    sampled = fitted(lambda: Recovery("retained", max_fit_customers=50), demo_store)
    assert sum(g["n"] for g in sampled["groups"]) == 50 and sampled["warnings"][0].startswith(WARNING)
    assert sum(g["n"] for g in whole["groups"]) == 300


@pytest.mark.slow
def test_only_the_drawn_customers_outcomes_and_attributes_are_read(demo_store, monkeypatch):
    from keymoments.store.store import Store

    make = lambda: MomentsOfTruth("retained", n_boot=200, max_fit_customers=50)  # noqa: E731
    sampled = fitted(make, demo_store)
    assert sampled["controls"] and sampled["value_per_customer"] is not None  # both read, for the sample
    asked: dict[str, list] = {"attributes": [], "outcomes": []}
    attributes, outcomes = Store.attributes_wide, Store.outcomes_wide

    def every_customers_attributes(self, key_kind="customer_id", keys=None):
        asked["attributes"].append(keys)
        return attributes(self, key_kind)  # every customer's, as before there was a sample

    def spied_outcomes(self, names=None, key_kind=None, keys=None):
        asked["outcomes"].append(keys)
        return outcomes(self, names, key_kind, keys)

    monkeypatch.setattr(Store, "attributes_wide", every_customers_attributes)
    monkeypatch.setattr(Store, "outcomes_wide", spied_outcomes)
    assert fitted(make, demo_store) == sampled  # the drawn customers' attributes are all the fit uses
    assert [len(k) for k in asked["attributes"]] == [50] and [len(k) for k in asked["outcomes"]] == [50]


# -- segments and milestones: a seeded share of the customers, drawn in the engine --------------------------
SHARE = "computed on a seeded sample of "


@settings(max_examples=25, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
    seed=st.integers(0, 9),
)
def test_a_customer_share_draws_in_the_engine_what_python_draws(ids, seed):
    import ibis

    share = CustomerShare(seed, 0.4, len(ids))
    t = ibis.memtable(pd.DataFrame({"customer_id": ids}))
    in_engine = set(ibis.duckdb.connect().execute(share.restrict(t))["customer_id"])
    assert in_engine == {k for k, d in zip(ids, share.drawn(pd.Series(ids)), strict=True) if d}


def test_a_customer_share_is_none_up_to_the_limit_and_about_its_size_above():
    import ibis

    t = ibis.memtable(
        pd.DataFrame({"customer_id": [f"c{i // 3}" for i in range(30_000)]})
    )  # 10,000 customers
    assert customer_share(t, 10_000) is None
    share = customer_share(t, 2_000, seed=1)
    assert share.total == 10_000 and share.p == 0.2
    drawn = int(share.restrict(t).customer_id.nunique().execute())
    assert abs(drawn - 2_000) < 4 * (2_000 * 0.8) ** 0.5  # a Bernoulli draw: within 4 standard deviations
    assert share.scale(drawn) == 10_000 / drawn and share.warning(drawn).startswith(
        f"{SHARE}{drawn:,} of 10,000"
    )


def test_segments_above_the_limit_draw_a_share_and_scale_their_counts(demo_store):
    whole = fitted(lambda: Segments(), demo_store)
    assert "warnings" not in whole
    assert fitted(lambda: Segments(max_fit_customers=300), demo_store) == whole
    sampled = fitted(lambda: Segments(max_fit_customers=150, seed=2), demo_store)
    assert sampled["warnings"][0].startswith(SHARE) and "of 300 customers" in sampled["warnings"][0]
    assert fitted(lambda: Segments(max_fit_customers=150, seed=2), demo_store) == sampled  # seeded
    assert abs(sum(t["customers"] for t in sampled["tiers"]) - 300) <= 2  # scaled to all (each tier rounded)
    for a, b in zip(sampled["tiers"], whole["tiers"], strict=True):
        assert abs(a["share"] - b["share"]) < 0.15 and abs(a["customers"] - b["customers"]) < 45
    w, ws = whole["whatif"]["middle_up"], sampled["whatif"]["middle_up"]
    assert ws["ci_low"] <= w["gain"] <= ws["ci_high"] or w["ci_low"] <= ws["gain"] <= w["ci_high"]


def test_milestones_above_the_limit_draw_a_share_and_scale_their_counts(demo_store):
    whole = fitted(lambda: Milestones("retained"), demo_store)
    assert "warnings" not in whole
    assert fitted(lambda: Milestones("retained", max_fit_customers=300), demo_store) == whole
    sampled = fitted(lambda: Milestones("retained", max_fit_customers=150, seed=2), demo_store)
    assert sampled["warnings"][0].startswith(SHARE)
    by = {m["milestone"]: m for m in whole["milestones"]}
    common = [
        m for m in sampled["milestones"] if m["milestone"] in by
    ]  # spend thresholds: the sample's quantiles
    assert len(common) >= len(sampled["milestones"]) - 4 and len(common) >= 3
    for m in common:
        w = by[m["milestone"]]
        assert abs(m["customers"] - w["customers"]) <= max(30, 0.35 * w["customers"]), (m, w)
        # the rates compare the sample's customers (their numbers are the sample's, fewer than the whole's)
        assert (
            m["not_crossed_n"] + m["marked_n"] + m["unmarked_n"]
            < w["not_crossed_n"] + w["marked_n"] + w["unmarked_n"]
        )
    s, t = sampled["time_to_second"], whole["time_to_second"]
    assert abs(s["customers"] - t["customers"]) <= 3 and abs(s["share"] - t["share"]) < 0.15


def test_a_fit_that_fails_leaves_nothing_fitted(demo_store):
    from keymoments.exceptions import NotEnoughDataError

    m = Milestones("retained", min_customers=10**9)
    with pytest.raises(NotEnoughDataError, match="No milestones in the data"):
        m.fit(demo_store)
    with pytest.raises(NotEnoughDataError, match="not fitted yet"):
        m.summary  # noqa: B018
