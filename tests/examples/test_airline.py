"""The airline demo generator: contract, determinism, and that the planted ground truth is really in the data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from keymoments.events import EVENT_FIELDS, RATING_SCALES, JourneyModel, rating_to_valence
from keymoments.examples import AirlineDemo, generate_airline
from keymoments.examples.airline import JOURNEY_YAML, TOUCHPOINTS
from keymoments.examples.airline_texts import TOUCHPOINT_TEXTS
from keymoments.exceptions import InvalidParameterError


@pytest.fixture(scope="module")
def demo() -> AirlineDemo:
    return generate_airline(5000, seed=0)


@pytest.fixture(scope="module")
def rated(demo: AirlineDemo) -> pd.DataFrame:
    """Rated events with the rating mapped to valence."""
    ev = demo.events[demo.events["rating"].notna()].copy()
    first = ev.drop_duplicates("rating_scale")  # the contract's own mapping, checked against a vectorised one
    for r, s in zip(first["rating"], first["rating_scale"], strict=True):
        assert rating_to_valence(r, s) == pytest.approx(_valence(pd.Series([r]), pd.Series([s]))[0])
    ev["v"] = _valence(ev["rating"], ev["rating_scale"])
    return ev


def _valence(rating: pd.Series, scale: pd.Series) -> np.ndarray:
    lo = scale.map(lambda s: RATING_SCALES[s].low).to_numpy(float)
    hi = scale.map(lambda s: RATING_SCALES[s].high).to_numpy(float)
    inverted = scale.map(lambda s: RATING_SCALES[s].inverted).to_numpy(bool)
    v = 2 * (rating.to_numpy(float) - lo) / (hi - lo) - 1
    return np.where(inverted, -v, v)


def _logistic(x: pd.DataFrame, y: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """Logistic regression by Newton's method: coefficients and standard errors (with an intercept)."""
    X = np.column_stack([np.ones(len(x)), x.to_numpy(float)])
    beta = np.zeros(X.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-X @ beta))
        hess = X.T @ (X * (p * (1 - p))[:, None])
        step = np.linalg.solve(hess, X.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    names = ["const", *x.columns]
    return pd.Series(beta, index=names), pd.Series(se, index=names)


def _journey_counts(demo: AirlineDemo) -> pd.Series:
    return demo.events.groupby("customer_id")["journey_id"].nunique()


# --- contract ------------------------------------------------------------------------------------------------


def test_generates_5000_customers(demo: AirlineDemo) -> None:
    assert len(demo.customers) == len(demo.outcomes) == 5000
    assert demo.events["customer_id"].nunique() == 5000
    assert len(demo.events) > 100_000
    assert demo.ground_truth["generator"]["n_events"] == len(demo.events)
    assert demo.ground_truth["generator"]["n_journeys"] == demo.events["journey_id"].nunique()


def test_events_have_exactly_the_contract_columns(demo: AirlineDemo) -> None:
    ev = demo.events
    assert list(ev.columns) == list(EVENT_FIELDS)
    assert isinstance(ev["ts"].dtype, pd.DatetimeTZDtype) and str(ev["ts"].dt.tz) == "UTC"
    assert ev["event_id"].is_unique
    assert ev["event_id"].str.fullmatch(r"e\d{8}").all()
    assert ev["event_id"].tolist() == sorted(ev["event_id"])
    for col in ("customer_id", "journey_id", "touchpoint", "stage", "channel", "outcome"):
        assert ev[col].notna().all(), col
    assert set(ev["touchpoint"]) == set(TOUCHPOINTS)
    assert set(ev["channel"]) <= {"web", "app", "phone", "airport", "email", "onboard"}
    assert all(a is None or isinstance(a, dict) for a in ev["attrs"])
    assert ev["attrs"].map(lambda a: a is not None).any()


def test_outcomes_and_customers_frames(demo: AirlineDemo) -> None:
    out, cust = demo.outcomes, demo.customers
    assert list(out.columns) == ["customer_id", "retained", "repurchased_90d", "spend_next_12m", "nps"]
    assert out["customer_id"].is_unique and out["customer_id"].tolist() == cust["customer_id"].tolist()
    assert out["retained"].dtype == bool and out["repurchased_90d"].dtype == bool
    assert not (out["repurchased_90d"] & ~out["retained"]).any()
    assert out["nps"].between(0, 10).all() and pd.api.types.is_integer_dtype(out["nps"])
    assert (out["spend_next_12m"] >= 0).all()
    assert (out.loc[~out["retained"], "spend_next_12m"] == 0).all()
    assert 0.7 < out["retained"].mean() < 0.9
    assert set(cust["segment"]) == {"business", "leisure"}
    assert set(cust["tier"]) == {"basic", "silver", "gold"}
    assert (cust["tenure_days"] > 0).all()
    assert str(cust["signup_date"].dt.tz) == "UTC"


def test_ratings_are_within_their_scales(demo: AirlineDemo) -> None:
    ev = demo.events
    assert (ev["rating"].isna() == ev["rating_scale"].isna()).all()
    rated = ev[ev["rating"].notna()]
    assert set(rated["rating_scale"]) == {"csat5", "stars5", "nps", "ces7"}
    for scale, group in rated.groupby("rating_scale"):
        s = RATING_SCALES[scale]
        assert group["rating"].between(s.low, s.high).all(), scale
        assert (group["rating"] == group["rating"].round()).all(), scale
    shares = rated["rating_scale"].value_counts(normalize=True)
    assert shares["csat5"] > 0.6
    assert set(rated.loc[rated["rating_scale"] == "ces7", "touchpoint"]) == {"check-in", "support"}


def test_timestamps_are_ordered_within_journeys_and_in_the_window(demo: AirlineDemo) -> None:
    ev = demo.events.sort_values(["journey_id", "ts"])
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert ev["ts"].min() >= start and ev["ts"].max() < start + pd.Timedelta(days=365)
    rank = ev["touchpoint"].map({tp: i for i, tp in enumerate(TOUCHPOINTS)})
    assert (rank.groupby(ev["journey_id"]).diff().dropna() > 0).all()
    assert (ev["ts"].groupby(ev["journey_id"]).diff().dropna() > pd.Timedelta(0)).all()
    # Journeys spread over the year, and airport moments are minutes to hours apart.
    months = demo.events.loc[demo.events["touchpoint"] == "flight", "ts"].dt.month
    assert months.nunique() == 12
    by_tp = ev.pivot_table(index="journey_id", columns="touchpoint", values="ts", aggfunc="first")
    gap = (by_tp["boarding"] - by_tp["security"]).dropna()
    assert gap.between(pd.Timedelta(minutes=5), pd.Timedelta(hours=1)).all()


def test_reach_is_realistic(demo: AirlineDemo) -> None:
    ev = demo.events
    reach = ev.groupby("touchpoint")["journey_id"].nunique() / ev["journey_id"].nunique()
    assert reach["reservation"] == reach["flight"] == 1.0
    assert 0.3 < reach["information"] < 0.6
    assert 0.2 < reach["baggage"] < 0.5
    assert reach["support"] < 0.2
    assert reach.drop(["reservation", "flight"]).lt(1.0).all()


def test_value_convention(demo: AirlineDemo) -> None:
    ev = demo.events
    money = ev[ev["value"].notna()]
    assert set(money["touchpoint"]) == {"reservation", "support"}
    assert (money.loc[money["touchpoint"] == "reservation", "value"] > 0).all()
    comp = money[money["touchpoint"] == "support"]
    assert (comp["value"] < 0).all() and set(comp["outcome"]) == {"resolved"}


def test_staff_and_locations(demo: AirlineDemo) -> None:
    ev = demo.events
    staffed = set(ev.loc[ev["employee_id"].notna(), "touchpoint"])
    assert staffed == {"check-in", "boarding", "flight", "baggage", "support"}
    assert ev.loc[ev["touchpoint"].isin(["boarding", "flight", "baggage", "support"]), "employee_id"].notna().all()
    web_checkin = ev[(ev["touchpoint"] == "check-in") & (ev["channel"] != "airport")]
    assert len(web_checkin) and web_checkin["employee_id"].isna().all()
    airport = ev[ev["channel"].isin(["airport", "onboard"])]
    assert airport["location_id"].str.fullmatch(r"[A-Z]{3}").all()


def test_texts_are_a_fraction_and_match_the_experience(demo: AirlineDemo, rated: pd.DataFrame) -> None:
    assert 0.15 <= demo.events["text"].notna().mean() <= 0.25
    polarity = {text: pol for tp in TOUCHPOINT_TEXTS.values() for pol, texts in tp.items() for text in texts}
    with_text = rated[rated["text"].notna()]
    means = with_text.groupby(with_text["text"].map(polarity))["v"].mean()
    assert means["negative"] < -0.2 < means["neutral"] < 0.3 < means["positive"]
    crisis = demo.events[demo.events["text"].str.contains("my bag never arrived|cancelled with no explanation", case=False, na=False)]
    assert len(crisis) and set(crisis["outcome"]) <= {"lost", "cancelled"}


def test_determinism() -> None:
    a, b = generate_airline(400, seed=7), generate_airline(400, seed=7)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    assert a.ground_truth == b.ground_truth
    c = generate_airline(400, seed=8)
    assert not a.events["ts"].equals(c.events["ts"])


def test_memory_model_changes_only_the_outcomes() -> None:
    pe, mean = generate_airline(400, seed=3), generate_airline(400, seed=3, memory="mean")
    pd.testing.assert_frame_equal(pe.events, mean.events)
    assert pe.ground_truth["memory"]["model"] == "peak_end" and mean.ground_truth["memory"]["model"] == "mean"
    assert pe.ground_truth["memory"]["weights"] == {"worst": 0.5, "end": 0.5}
    assert not np.allclose(pe.latent["memory"], mean.latent["memory"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_customers": 0}, "'n_customers' parameter"),
        ({"memory": "peak-end"}, "Did you mean 'peak_end'"),
        ({"days": 10}, "'days' parameter"),
        ({"start": "not a date"}, "'start' parameter"),
        ({"seed": -1}, "'seed' parameter"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        generate_airline(**{"n_customers": 10, **kwargs})


# --- planted ground truth ------------------------------------------------------------------------------------


def test_ground_truth_is_json(demo: AirlineDemo) -> None:
    gt = demo.ground_truth
    assert json.loads(json.dumps(gt)) == gt
    expected = {"drivers", "memory", "pits", "peaks", "recovery", "segments", "milestones", "star_employees"}
    assert expected <= set(gt)


def test_null_drivers_have_exactly_zero_effect(demo: AirlineDemo) -> None:
    gt = demo.ground_truth
    drivers = gt["drivers"]
    assert len(drivers["strong"]) >= 3 and len(drivers["null"]) >= 3
    for tp in drivers["null"]:
        assert drivers["retained"][tp] == 0 and drivers["spend_next_12m"][tp] == 0
        assert tp not in gt["memory"]["over"]
    # The planted logit is exactly the recorded formula: null touchpoints do not appear in it.
    lat = demo.latent
    dev = sum(
        coef * (lat[f"x_{tp}"] - drivers["centre"][tp]).fillna(0.0) for tp, coef in drivers["retained"].items()
    )
    terms = gt["retained"]["terms"]
    cust = demo.customers
    logit = (
        gt["retained"]["intercept"]
        + dev
        + terms["memory"] * lat["memory"]
        + terms["recovered"] * (lat["crisis_group"] == "recovered")
        + terms["unrecovered"] * (lat["crisis_group"] == "unrecovered")
        + terms["business"] * (cust["segment"] == "business")
        + terms["log1p_journeys"] * np.log1p(_journey_counts(demo).loc[cust["customer_id"]].to_numpy())
        + terms["tenth_flight_marked"] * lat["tenth_flight_marked"]
        + terms["one_year"] * lat["one_year"]
    )
    np.testing.assert_allclose(logit.to_numpy(), lat["logit_retained"].to_numpy(), atol=1e-5)


def test_touchpoint_experiences_are_correlated_but_only_drivers_predict_retention(demo: AirlineDemo) -> None:
    lat, drivers = demo.latent, demo.ground_truth["drivers"]
    x = pd.DataFrame({tp: (lat[f"x_{tp}"] - drivers["centre"][tp]).fillna(0.0) for tp in TOUCHPOINTS})
    corr = lat[["x_information", "x_security", "x_check-in", "x_flight"]].corr().to_numpy()
    assert corr[np.triu_indices(4, 1)].min() > 0.1
    coef, se = _logistic(x, demo.outcomes["retained"].to_numpy(float))
    z = coef / se
    assert min(coef[drivers["strong"]]) > max(coef[drivers["null"]])
    assert (z[drivers["strong"]] > 5).all()
    assert (z[drivers["null"]].abs() < 3).all()


def test_pits_and_peaks(demo: AirlineDemo, rated: pd.DataFrame) -> None:
    gt = demo.ground_truth
    means = rated.groupby("touchpoint")["v"].mean().sort_values()
    assert set(means.index[:2]) == set(gt["pits"])
    assert set(means.index[-2:]) == set(gt["peaks"])
    assert means[gt["pits"]].max() < -0.2 and means[gt["peaks"]].min() > 0.3
    assert set(gt["pits"]) & set(gt["drivers"]["null"])  # a pit that does not matter: fill the other first


def test_recovery_paradox(demo: AirlineDemo) -> None:
    ev, gt = demo.events, demo.ground_truth["recovery"]
    crisis_j = ev.loc[ev["outcome"].isin(["cancelled", "delayed", "lost"]), "journey_id"].unique()
    journeys = ev["journey_id"].nunique()
    assert 0.10 <= len(crisis_j) / journeys <= 0.15
    support = ev[(ev["touchpoint"] == "support") & ev["journey_id"].isin(crisis_j)]
    assert len(support) == len(crisis_j) and set(support["outcome"]) == {"resolved", "failed"}
    failed = support.groupby("customer_id")["outcome"].apply(lambda s: (s == "failed").any())
    group = pd.Series("none", index=demo.outcomes["customer_id"])
    group[failed.index] = np.where(failed, "unrecovered", "recovered")
    assert (group.to_numpy() == demo.latent["crisis_group"].to_numpy()).all()
    rate = demo.outcomes.set_index("customer_id")["retained"].groupby(group).mean()
    assert rate["recovered"] > rate["none"] + 0.05
    assert rate["unrecovered"] < rate["none"] - 0.15
    for g in ("none", "recovered", "unrecovered"):
        assert gt["groups"][g]["retention_rate"] == pytest.approx(rate[g], abs=1e-6)
    # Recovery texts and valence: resolved support contacts are good moments, failed ones bad.
    sup = ev[ev["touchpoint"] == "support"].dropna(subset=["rating"])
    by = pd.Series(_valence(sup["rating"], sup["rating_scale"]), index=sup.index).groupby(sup["outcome"]).mean()
    assert by["resolved"] > 0.3 and by["failed"] < -0.3


def test_milestones(demo: AirlineDemo) -> None:
    ms = demo.ground_truth["milestones"]
    assert {"tenth_flight", "one_year"} <= set(ms)
    counts = _journey_counts(demo)
    tenth = ms["tenth_flight"]
    assert tenth["n_customers"] == len(tenth["customer_ids"]) > 50
    assert (counts.loc[tenth["customer_ids"]] >= 10).all()
    assert set(counts[counts >= 10].index) == set(tenth["customer_ids"])
    assert set(tenth["journey_ids"]) <= set(demo.events["journey_id"])
    flights = demo.events[demo.events["touchpoint"] == "flight"]
    marked = flights[flights["attrs"].map(lambda a: bool(a and a.get("milestone") == "tenth_flight"))]
    assert sorted(marked["customer_id"]) == sorted(tenth["marked_customer_ids"])
    assert set(marked["journey_id"]) <= set(tenth["journey_ids"]) and 0 < tenth["n_marked"] < tenth["n_customers"]
    one = ms["one_year"]
    cust = demo.customers.set_index("customer_id")
    anniversary = cust["signup_date"] + pd.Timedelta(days=365)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    in_window = anniversary[(anniversary >= start) & (anniversary < start + pd.Timedelta(days=365))]
    assert set(one["customer_ids"]) == set(in_window.index) and one["n_customers"] > 50


def test_star_employees_create_peaks(demo: AirlineDemo, rated: pd.DataFrame) -> None:
    stars = demo.ground_truth["star_employees"]
    assert len(stars) >= 3
    for emp, info in stars.items():
        at_tp = rated[rated["touchpoint"] == info["touchpoint"]]
        mine = at_tp.loc[at_tp["employee_id"] == emp, "v"]
        others = at_tp.loc[at_tp["employee_id"] != emp, "v"]
        assert len(mine) >= 30, emp
        assert mine.mean() > others.mean() + 0.15, emp
        assert info["n_events"] == int((demo.events["employee_id"] == emp).sum())


def test_segments_happy_customers_spend_most(demo: AirlineDemo) -> None:
    seg = demo.ground_truth["segments"]
    bands = seg["happiness_bands"]
    assert bands["unhappy"]["mean_spend"] < bands["middling"]["mean_spend"] < bands["happy"]["mean_spend"]
    assert bands["middling"]["n_customers"] > max(bands["unhappy"]["n_customers"], bands["happy"]["n_customers"])
    spend = demo.outcomes["spend_next_12m"].groupby(demo.latent["band"]).mean()
    assert spend["happy"] == pytest.approx(bands["happy"]["mean_spend"], rel=1e-6)
    assert seg["gain_middling_to_happy"] > seg["gain_unhappy_to_middling"] > 0


# --- files ---------------------------------------------------------------------------------------------------


def test_journey_yaml_validates_and_matches_the_data(demo: AirlineDemo) -> None:
    model = JourneyModel.from_yaml(JOURNEY_YAML)
    assert model == demo.journey
    assert model.order == list(TOUCHPOINTS)
    flags = {t.name: t for t in model.touchpoints}
    assert flags["information"].first_impression and flags["reservation"].leap_of_faith
    assert flags["baggage"].ending
    assert all(t.description and t.stage and t.target_valence is not None for t in model.touchpoints)
    stages = demo.events.groupby("touchpoint")["stage"].agg(set)
    assert all(stages[t.name] == {t.stage} for t in model.touchpoints)
    outcomes = set(demo.events["outcome"])
    assert {"cancelled", "delayed", "lost", "failed"} <= set(model.crisis_outcomes)
    assert outcomes - {"completed"} <= set(model.crisis_outcomes + model.good_news_outcomes + model.resolved_outcomes)


def test_write_creates_all_files(tmp_path) -> None:
    small = generate_airline(300, seed=5)
    paths = small.write(tmp_path / "demo")
    expected = {"events.parquet", "events.csv", "outcomes.csv", "customers.csv", "ground_truth.json", "journey.yaml"}
    assert set(paths) == expected and all(p.is_file() for p in paths.values())
    assert JourneyModel.from_yaml(paths["journey.yaml"]) == small.journey
    assert json.loads(paths["ground_truth.json"].read_text()) == small.ground_truth
    parquet = pd.read_parquet(paths["events.parquet"])
    assert list(parquet.columns) == list(EVENT_FIELDS) and len(parquet) == len(small.events)
    assert (parquet["ts"] == small.events["ts"]).all()
    csv = pd.read_csv(paths["events.csv"])
    assert len(csv) == len(small.events) and csv["ts"].str.endswith("Z").all()
    attrs = csv["attrs"].dropna().map(json.loads)
    assert len(attrs) and all(isinstance(a, dict) for a in attrs)
    assert len(pd.read_csv(paths["outcomes.csv"])) == len(pd.read_csv(paths["customers.csv"])) == 300
