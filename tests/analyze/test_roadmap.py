"""Roadmap phases, expected values, the future-state curve, and the moments / roadmap commands."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.roadmap import Roadmap
from keymoments.exceptions import SmallSampleWarning

TPS = ["welcome", "booking", "security", "flight", "bags", "goodbye"]


def journey_survey(n=3000, seed=0):
    """welcome = first impression (weak driver); security = a pit that matters; flight = a driver already
    fine; bags = a null pit; goodbye = the ending (a driver)."""
    rng = np.random.default_rng(seed)
    means = {"welcome": 0.2, "booking": 0.3, "security": -0.4, "flight": 0.4, "bags": -0.3, "goodbye": 0.1}
    df = pd.DataFrame({tp: np.clip(m + rng.normal(0, 0.4, n), -1, 1) for tp, m in means.items()})
    eta = 1.2 + 1.0 * df["welcome"] + 2.0 * df["security"] + 1.5 * df["flight"] + 1.2 * df["goodbye"]
    df["retained"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


def test_phases_follow_pits_then_ending_then_peaks():
    df = journey_survey()
    rm = Roadmap("retained", touchpoints=TPS, n_boot=300).fit(df)
    items = rm.summary.set_index("touchpoint")
    assert items.at["security", "phase"] == 1  # a pit that decides the outcome comes first
    assert items.at["goodbye", "phase"] == 2 and items.at["welcome", "phase"] == 2
    assert items.at["flight", "phase"] == 3 and items.at["flight", "future_valence"] == pytest.approx(0.8)
    assert "bags" in {h["touchpoint"] for h in rm.hold_}  # a pit that does not matter is not on the roadmap
    # expected value = impact x reach x (future - current); phases add up
    r = items.loc["security"]
    assert r["expected_gain"] == pytest.approx(
        r["impact"] * r["reach"] * (r["future_valence"] - r["current_valence"])
    )
    assert r["expected_gain_ci_low"] <= r["expected_gain"] <= r["expected_gain_ci_high"]
    assert r["expected_customers"] == pytest.approx(r["expected_gain"] * len(df))
    phases = rm.phases()
    assert [p["phase"] for p in phases] == [1, 2, 3]
    assert phases[-1]["cumulative_gain"] == pytest.approx(items["expected_gain"].sum())
    curve = rm.curve_
    assert list(curve["touchpoint"]) == TPS and (curve["future"] >= curve["current"] - 1e-12).all()
    fig = rm.figure()
    assert [t.name for t in fig.data] == ["current state", "future state"]
    assert list(fig.data[1].y) == pytest.approx(list(curve["future"]))


def test_from_moments_reuses_the_fit():
    df = journey_survey(800, seed=1)
    mot = MomentsOfTruth("retained", touchpoints=TPS, n_boot=100).fit(df)
    rm = Roadmap.from_moments(mot, peak_target=0.9)
    doc = json.loads(rm.to_json())
    assert doc["outcome"] == "retained" and doc["n"] == 800 and "auc_cv" in doc["model_fit"]
    assert {p["name"] for p in doc["phases"]} == {
        "Fill the pits",
        "Sign off well and open well",
        "Build peaks",
    }
    assert all(i["future_valence"] <= 0.9 + 1e-12 for p in doc["phases"] for i in p["items"])


@pytest.fixture
def survey_store(store):
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    df = journey_survey(500, seed=3)
    df.insert(0, "customer_id", [f"c{i}" for i in range(len(df))])
    long = df.melt(id_vars=["customer_id"], value_vars=TPS, var_name="touchpoint", value_name="rating")
    long["rating_scale"] = "valence"
    long["ts"] = pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(
        long["touchpoint"].map(TPS.index), unit="h"
    )
    ingest_events_frame(store, long)
    ingest_outcomes_frame(store, df[["customer_id", "retained"]])
    path = store.path
    store.close()
    return path


def test_cli_moments_and_roadmap_json(survey_store):
    from keymoments.cli import app

    runner = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = runner.invoke(
            app, ["moments", "--outcome", "retained", "--db", survey_store, "--json", "--n-boot", "200"]
        )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["outcome"] == "retained" and doc["n"] == 500
    assert {r["touchpoint"] for r in doc["touchpoints"]} == set(TPS)
    assert (
        "first_impression"
        in next(r for r in doc["touchpoints"] if r["touchpoint"] == "welcome")["characteristics"]
    )
    res = runner.invoke(
        app, ["roadmap", "--outcome", "retained", "--db", survey_store, "--json", "--n-boot", "200"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["phase"] for p in doc["phases"]] == [1, 2, 3] and len(doc["curve"]) == len(TPS)
    res = runner.invoke(app, ["moments", "--outcome", "retaind", "--db", survey_store])
    assert res.exit_code != 0 and "Did you mean 'retained'" in str(res.exception)
