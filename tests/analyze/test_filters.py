"""Segment, channel and date-range filters on every analysis: each filter changes the result the way it must
(planted data, pandas references), the applied filters are reported, and bad filters are one clear error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keymoments.analyze.filters import check_filters, describe_filters, filter_events
from keymoments.analyze.journey import JourneyMap
from keymoments.analyze.milestones import Milestones
from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.peak_end import PeakEnd
from keymoments.analyze.recognition import Recognition
from keymoments.analyze.recovery import Recovery
from keymoments.analyze.roadmap import Roadmap
from keymoments.analyze.segments import Segments
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError

T0 = pd.Timestamp("2025-01-01", tz="UTC")

#: every filterable analysis with the parameters it needs to run on the demo store
ANALYSES = [
    (JourneyMap, {}),
    (PeakEnd, {"outcome": "nps", "n_boot": 50}),
    (Segments, {"n_boot": 50}),
    (Recovery, {"outcome": "retained"}),
    (Milestones, {}),
    (Recognition, {}),
    (MomentsOfTruth, {"outcome": "retained", "n_boot": 50}),
    (Roadmap, {"outcome": "retained", "n_boot": 50}),
]
IDS = [cls.__name__ for cls, _ in ANALYSES]


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(1000, seed=11)


@pytest.fixture(scope="module")
def demo_store(demo, tmp_path_factory):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    s = Store(tmp_path_factory.mktemp("filters") / "km.duckdb")
    ingest_events_frame(s, demo.events)
    ingest_outcomes_frame(s, demo.outcomes)
    ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]], attributes_only=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def events(demo_store) -> pd.DataFrame:
    """The stored events (valence as the store derived it), for pandas references."""
    ev = demo_store.events().execute()
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    return ev


def _quiet(fn, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    """Run ``fn`` with small-sample caveats silenced (they are warnings by design, errors under pytest)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# -- the contract, over every analysis ----------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "kw"), ANALYSES, ids=IDS)
def test_bad_filters_are_one_clear_error_naming_the_parameter(cls, kw, demo_store):
    name = cls.__name__
    cases = [
        ({"segment": "business"}, f"The 'segment' parameter of {name} must look like name=value (e.g. tier=gold). "
                                  "Got 'business' instead."),
        ({"segment": "tir=gold"}, f"The 'segment' parameter of {name} must name a customer attribute or events "
                                  "column the data has"),
        ({"segment": "tier=platinum"}, f"The 'segment' parameter of {name} must name a value of the customer "
                                       "attribute 'tier' the data has: one of ['tier=basic', 'tier=gold', 'tier=silver']"),
        ({"since": "not a date"}, f"The 'since' parameter of {name} must be an ISO-8601 date or time (e.g. 2025-07-01). "
                                  "Got 'not a date' instead."),
        ({"until": "2025-13-45"}, f"The 'until' parameter of {name} must be an ISO-8601 date or time"),
        ({"since": "2025-06-01", "until": "2025-05-01"}, f"The 'until' parameter of {name} must be later than 'since'"),
    ]  # fmt: skip
    if cls is not Recovery:
        cases.append(({"channel": "wbe"}, f"The 'channel' parameter of {name} must name a channel the data has: "
                                          "one of ['airport', 'app', 'email', 'onboard', 'phone', 'web']. Got 'wbe' "
                                          "instead. Did you mean 'web'?"))  # fmt: skip
    for filters, message in cases:
        with pytest.raises(InvalidParameterError) as err:
            _quiet(cls(**kw, **filters).fit, demo_store)
        assert str(err.value).startswith(message), (filters, str(err.value))
        assert err.value.errors[0]["loc"] == [next(iter(filters)) if "until" not in filters else "until"]
    with pytest.raises(InvalidParameterError, match="Did you mean 'tier'"):
        _quiet(cls(**kw, segment="tir=gold").fit, demo_store)


@pytest.mark.parametrize(("cls", "kw"), ANALYSES, ids=IDS)
def test_every_analysis_reports_the_filters_applied(cls, kw, demo_store):
    filters = {"segment": "tier=gold", "since": "2025-03-01", "until": "2025-11-01"}
    d = _quiet(cls(**kw, **filters).fit, demo_store).to_dict()
    assert d["filters"] == {"segment": "tier=gold", "since": "2025-03-01T00:00:00+00:00",
                            "until": "2025-11-01T00:00:00+00:00"}  # fmt: skip
    assert _quiet(cls(**kw).fit, demo_store).to_dict()["filters"] == {}


def test_recovery_refuses_a_channel_filter_and_says_why(demo_store):
    with pytest.raises(InvalidParameterError) as err:
        Recovery("retained", channel="web").fit(demo_store)
    assert str(err.value).startswith(
        "The 'channel' parameter of Recovery is not supported: a crisis and its resolution usually happen on "
        "different channels"
    )
    assert Recovery.channel_unsupported and PeakEnd.channel_unsupported is None


def test_filter_helpers():
    assert check_filters("X", segment=" tier = gold ", since="2025-07-01T12:00:00+02:00") == {
        "segment": "tier=gold", "since": "2025-07-01T10:00:00+00:00"}  # fmt: skip
    assert describe_filters({"segment": "tier=gold", "channel": "web", "since": "2025-07-01T00:00:00+00:00",
                             "until": None}) == "segment tier=gold · channel web · from 2025-07-01"  # fmt: skip
    assert describe_filters({}) == ""
    ev = pd.DataFrame({"customer_id": ["a", "b"], "touchpoint": ["x", "x"], "channel": ["web", "app"],
                       "ts": pd.to_datetime(["2025-01-01", "2025-02-01"], utc=True)})  # fmt: skip
    assert filter_events(ev, until="2025-01-15").execute()["customer_id"].tolist() == ["a"]
    with pytest.raises(InvalidParameterError, match="customer attributes need a Store"):
        filter_events(ev, segment="tier=gold", owner="PeakEnd")
    with pytest.raises(TypeError, match=r"PeakEnd\(\) got an unexpected keyword argument 'chanel'. Did you mean 'channel'"):
        PeakEnd("nps", chanel="web")


# -- each analysis: the filter changes the result the way it must ------------------------------------------
def test_peak_end_on_the_web_is_the_memory_of_the_web_moments(demo_store, events):
    pe = _quiet(PeakEnd("nps", n_boot=50, channel="web").fit, demo_store)
    web = events[(events["channel"] == "web") & events["valence"].notna()].sort_values(["journey_id", "step"])
    ref = web.groupby("journey_id").agg(end=("valence", "last"), n=("valence", "size"), mean=("valence", "mean"))
    got = pe.journeys_.set_index("journey_id")
    assert len(got) == len(ref)
    pd.testing.assert_series_equal(got["end"].sort_index(), ref["end"].sort_index(), check_names=False)
    assert (got["n_rated"].sort_index() == ref["n"].sort_index()).all()
    assert pe.n_ == web["customer_id"].nunique()  # every demo customer has an nps
    everything = _quiet(PeakEnd("nps", n_boot=50).fit, demo_store)
    assert everything.n_ > pe.n_ and len(everything.journeys_) > len(got)


def test_segments_tiers_follow_how_customers_feel_on_the_filtered_channel():
    # planted: every customer hates the web and loves the app
    rng = np.random.default_rng(0)
    rows = []
    for c in range(80):
        for k in range(6):
            web = k % 2 == 0
            rows.append({"customer_id": f"c{c}", "journey_id": f"c{c}", "ts": T0 + pd.Timedelta(days=c, hours=k),
                         "touchpoint": "booking" if web else "check-in", "channel": "web" if web else "app",
                         "valence": float(np.clip((-0.6 if web else 0.6) + rng.normal(0, 0.1), -1, 1))})  # fmt: skip
    ev = pd.DataFrame(rows)
    on = {ch: _quiet(Segments(channel=ch).fit, ev).tiers_.set_index("tier")["customers"] for ch in ("web", "app")}
    assert on["web"]["unhappy"] == 80 and on["app"]["happy"] == 80
    both = _quiet(Segments().fit, ev).tiers_.set_index("tier")["customers"]
    assert both["middling"] == 80


def test_segments_segment_keeps_only_that_segments_customers(demo, demo_store):
    sg = _quiet(Segments(segment="segment=business").fit, demo_store)
    assert sg.tiers_["customers"].sum() == int((demo.customers["segment"] == "business").sum())


def _crisis_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    """40 customers: a crisis in March resolved well (20) or never resolved (20), then a quiet trip in June."""
    rows = []
    for c in range(40):
        cid, t = f"c{c:02d}", T0 + pd.Timedelta(days=60 + c % 5)
        rows += [
            {"customer_id": cid, "journey_id": f"{cid}-mar", "ts": t, "touchpoint": "flight", "outcome": "delayed",
             "valence": -0.8, "tier": "gold" if c % 2 else "basic"},
            {"customer_id": cid, "journey_id": f"{cid}-jun", "ts": t + pd.Timedelta(days=90), "touchpoint": "flight",
             "outcome": "completed", "valence": 0.4, "tier": "gold" if c % 2 else "basic"},
        ]  # fmt: skip
        if c < 20:
            rows.append({"customer_id": cid, "journey_id": f"{cid}-mar", "ts": t + pd.Timedelta(hours=5),
                         "touchpoint": "support", "outcome": "resolved", "valence": 0.7,
                         "tier": "gold" if c % 2 else "basic"})  # fmt: skip
    out = pd.DataFrame({"customer_id": [f"c{c:02d}" for c in range(40)], "retained": [c % 3 != 0 for c in range(40)]})
    return pd.DataFrame(rows), out


def test_recovery_date_range_that_excludes_the_crisis():
    ev, out = _crisis_events()
    g = _quiet(Recovery("retained").fit, ev, outcomes=out).groups_.set_index("group")["n"]
    assert (g["recovered"], g["unrecovered"], g["none"]) == (20, 20, 0)
    # the March crises are outside the range: no crisis is left, which recovery says instead of empty groups
    with pytest.raises(NotEnoughDataError, match="No crises in the data left after the filters"):
        _quiet(Recovery("retained", since="2025-05-01").fit, ev, outcomes=out)
    gold = _quiet(Recovery("retained", segment="tier=gold").fit, ev, outcomes=out).groups_.set_index("group")["n"]
    assert (gold["recovered"], gold["unrecovered"]) == (10, 10)  # a segment from an events column


def _monthly_journeys(customers: int = 6) -> pd.DataFrame:
    return pd.DataFrame([
        {"customer_id": f"c{c}", "journey_id": f"c{c}-{m}", "touchpoint": "flight", "channel": "app" if m % 2 else "web",
         "ts": T0 + pd.DateOffset(months=m) + pd.Timedelta(days=c)}
        for c in range(customers) for m in range(12)
    ])  # fmt: skip


def test_milestones_in_a_date_range_count_the_whole_history():
    ev = _monthly_journeys()
    kw = {"counts": (1, 5, 10), "years": (), "spend_thresholds": ()}
    every = set(Milestones(**kw).fit(ev).milestones_["milestone"])
    assert {"journey_1", "journey_5", "journey_10"} <= every
    late = Milestones(**kw, since="2025-10-01").fit(ev)
    # the 10th journey in October is the customers' 10th, not the 1st inside the range
    assert set(late.milestones_["milestone"]) == {"journey_10"}
    assert (late.crossings_["ts"] >= pd.Timestamp("2025-10-01", tz="UTC")).all()
    early = Milestones(**kw, until="2025-06-01").fit(ev)
    assert set(early.milestones_["milestone"]) == {"journey_1", "journey_5", "first_channel_app"}  # app in February
    assert (early.crossings_["ts"] < pd.Timestamp("2025-06-01", tz="UTC")).all()
    web = Milestones(**kw, channel="web").fit(ev)  # 6 web journeys each: the 5th web journey, no 10th
    assert set(web.milestones_["milestone"]) == {"journey_1", "journey_5"}


def test_milestones_segment_compares_only_that_segments_customers(demo_store):
    ms = _quiet(Milestones("retained", segment="tier=gold").fit, demo_store)
    gold = set(demo_store.query("SELECT key FROM attributes WHERE name = 'tier' AND value = 'gold'")["key"])
    assert set(ms.crossings_["customer_id"]) <= gold
    row = ms.milestones_.iloc[0]
    assert row["marked_n"] + row["unmarked_n"] + row["not_crossed_n"] <= len(gold)


def test_recognition_on_a_channel_judges_only_that_channels_staff(demo_store, events):
    rg = _quiet(Recognition(channel="phone", min_events=1).fit, demo_store)
    phone = events[(events["channel"] == "phone") & events["valence"].notna() & events["employee_id"].notna()
                   & (events["employee_id"] != "")]  # fmt: skip
    assert set(rg.employees_["employee_id"]) == set(phone["employee_id"])
    ref = phone.groupby("employee_id")["valence"].agg(["size", "mean"])
    got = rg.employees_.set_index("employee_id")
    assert (got["events"] == ref["size"].reindex(got.index)).all()
    assert np.allclose(got["mean_valence"], ref["mean"].reindex(got.index))
    for moments in rg.evidence_.values():
        assert {m["touchpoint"] for m in moments} <= set(phone["touchpoint"])


def test_moments_on_the_web_measure_only_web_experiences(demo_store, events):
    mot = _quiet(MomentsOfTruth("retained", n_boot=50, channel="web").fit, demo_store)
    web = events[(events["channel"] == "web") & events["valence"].notna()]
    assert set(mot.summary_["touchpoint"]) == set(web["touchpoint"])
    per = web[web["touchpoint"] == "check-in"].groupby("customer_id")["valence"].mean()
    row = mot.summary_.set_index("touchpoint").loc["check-in"]
    assert row["n"] == len(per) and row["mean_valence"] == pytest.approx(per.mean())
    assert mot.n_ == web["customer_id"].nunique()


def _channel_pits(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Planted: check-in decides retention; on the web it is a pit (-0.3), in the app it is good (+0.45)."""
    rng = np.random.default_rng(seed)
    rows, out = [], []
    for c in range(n):
        cid, ch, t = f"c{c:04d}", ("web" if c % 2 else "app"), T0 + pd.Timedelta(days=int(rng.integers(0, 300)))
        v = {"booking": rng.normal(0.2, 0.35), "check-in": rng.normal(-0.3 if ch == "web" else 0.45, 0.35),
             "flight": rng.normal(0.3, 0.35)}  # fmt: skip
        for k, tp in enumerate(v):
            rows.append({"customer_id": cid, "journey_id": cid, "ts": t + pd.Timedelta(hours=k), "touchpoint": tp,
                         "channel": ch if tp != "flight" else "onboard", "valence": float(np.clip(v[tp], -1, 1))})  # fmt: skip
        p = 1 / (1 + np.exp(-(0.3 + 3.0 * v["check-in"] + 0.2 * v["flight"])))
        out.append({"customer_id": cid, "retained": bool(rng.random() < p)})
    return pd.DataFrame(rows), pd.DataFrame(out)


def test_roadmap_fills_the_web_pit_but_not_the_app_one():
    ev, out = _channel_pits()
    web = _quiet(Roadmap("retained", n_boot=200, channel="web").fit, ev, outcomes=out)
    app = _quiet(Roadmap("retained", n_boot=200, channel="app").fit, ev, outcomes=out)
    phase = {name: rm.items_.set_index("touchpoint")["phase"] for name, rm in (("web", web), ("app", app))}
    assert phase["web"]["check-in"] == 1  # a pit where it matters: fill it first
    assert phase["app"]["check-in"] != 1  # the same touchpoint is fine in the app
    assert "flight" not in phase["web"] or phase["web"]["flight"] != 1  # flights are onboard, not on the web
    assert web.to_dict()["filters"] == {"channel": "web"}
    mot = web.moments_
    assert Roadmap.from_moments(mot).to_dict()["filters"] == {"channel": "web"}
    assert mot.summary_.set_index("touchpoint").loc["check-in", "mean_valence"] < 0 < (
        app.moments_.summary_.set_index("touchpoint").loc["check-in", "mean_valence"])


def test_moments_on_a_wide_frame_take_a_segment_column_only():
    rng = np.random.default_rng(1)
    wide = pd.DataFrame({"respondent_id": [f"r{i}" for i in range(200)], "plan": ["pro", "free"] * 100,
                         "booking": rng.uniform(-1, 1, 200), "support": rng.uniform(-1, 1, 200)})  # fmt: skip
    wide["nps"] = 5 + 3 * wide["support"] + rng.normal(0, 1, 200)
    mot = _quiet(MomentsOfTruth("nps", n_boot=50, segment="plan=pro").fit, wide)
    assert mot.n_ == 100 and mot.to_dict()["filters"] == {"segment": "plan=pro"}
    with pytest.raises(InvalidParameterError) as err:
        MomentsOfTruth("nps", channel="web").fit(wide)
    assert str(err.value).startswith("The 'channel' parameter of MomentsOfTruth needs events with 'channel' and 'ts'")
    with pytest.raises(InvalidParameterError, match="Did you mean 'plan'"):
        MomentsOfTruth("nps", segment="pln=pro").fit(wide)
