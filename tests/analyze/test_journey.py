"""Journey map: golden numbers against a plain pandas reference, planted pits and peaks, the rule, filters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from keymoments.analyze.journey import JourneyMap, multinomial_bootstrap_ci
from keymoments.analyze.order import journey_order
from keymoments.events import CRISIS_OUTCOMES
from keymoments.exceptions import InvalidParameterError, SmallSampleWarning


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(1500, seed=3)


@pytest.fixture(scope="module")
def demo_store(demo, tmp_path_factory):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    s = Store(tmp_path_factory.mktemp("jm") / "km.duckdb")
    ingest_events_frame(s, demo.events)
    ingest_outcomes_frame(s, demo.outcomes)
    ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]])
    yield s
    s.close()


@pytest.fixture(scope="module")
def jm(demo, demo_store):
    return JourneyMap(demo.journey).fit(demo_store)


def pandas_reference(ev: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-touchpoint numbers and directly-follows counts with plain pandas, ignoring the stored derived
    columns: journeys sorted by (ts, source order)."""
    ev = ev.sort_values(["journey_id", "ts", "seq"], kind="mergesort").copy()
    g = ev.groupby("journey_id", sort=False)
    ev["nxt"] = g["touchpoint"].shift(-1)
    ev["gap"] = (g["ts"].shift(-1) - ev["ts"]).dt.total_seconds()
    n_j = ev["journey_id"].nunique()
    tp = ev.groupby("touchpoint").agg(
        events=("event_id", "size"),
        customers=("customer_id", "nunique"),
        journeys=("journey_id", "nunique"),
        mean_valence=("valence", "mean"),
        median_gap_s=("gap", "median"),
    )
    tp["reach"] = tp["journeys"] / n_j
    tp["failure_rate"] = ev.assign(f=ev["outcome"].isin(CRISIS_OUTCOMES)).groupby("touchpoint")["f"].mean()
    tr = ev.dropna(subset=["nxt"]).groupby(["touchpoint", "nxt"]).agg(count=("gap", "size"), median_gap_s=("gap", "median"))
    return tp, tr


def test_golden_touchpoints_match_pandas(jm, demo_store):
    ref, _ = pandas_reference(demo_store.query("SELECT * FROM events"))
    got = jm.touchpoints_.set_index("touchpoint").loc[ref.index]
    for col in ("events", "customers", "journeys"):
        assert got[col].astype(int).tolist() == ref[col].astype(int).tolist(), col
    for col in ("mean_valence", "reach", "failure_rate", "median_gap_s"):
        # median gaps come from a log-scale histogram: within 0.025% (+1 ms) of the exact median
        rtol = 3e-4 if col == "median_gap_s" else 1e-9
        np.testing.assert_allclose(got[col].astype(float), ref[col].astype(float), rtol=rtol, atol=1e-3, err_msg=col)


def test_golden_transitions_match_pandas(jm, demo_store):
    _, ref = pandas_reference(demo_store.query("SELECT * FROM events"))
    got = jm.transitions_.set_index(["from", "to"]).sort_index()
    ref = ref.sort_index()
    assert list(got.index) == list(ref.index)
    assert got["count"].tolist() == ref["count"].astype(int).tolist()
    np.testing.assert_allclose(got["median_gap_s"], ref["median_gap_s"], rtol=3e-4, atol=1e-3)
    # directly-follows counts sum to events minus journeys
    assert int(got["count"].sum()) == jm.n_events_ - jm.n_journeys_


def test_planted_pits_and_peaks_are_found(jm, demo):
    kinds = jm.touchpoints_.set_index("touchpoint")["kind"]
    assert sorted(kinds[kinds == "pit"].index) == sorted(demo.ground_truth["pits"])
    assert sorted(kinds[kinds == "peak"].index) == sorted(demo.ground_truth["peaks"])


def test_order_follows_the_journey_model_and_inference_agrees(jm, demo, demo_store):
    assert jm.order_ == [t for t in demo.journey.order if t in set(jm.touchpoints_["touchpoint"])]
    inferred = journey_order(demo_store.events())
    # the inferred order puts the airport touchpoints in the planted sequence
    core = ["reservation", "check-in", "security", "boarding", "flight"]
    assert [t for t in inferred if t in core] == core


def test_ci_brackets_mean_and_is_close_to_t_interval(jm):
    tp = jm.touchpoints_
    assert (tp["ci_low"] <= tp["mean_valence"]).all() and (tp["mean_valence"] <= tp["ci_high"]).all()
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 0.3, 4000).clip(-1, 1)
    vals, counts = np.unique(np.round(x * 200) / 200, return_counts=True)
    lo, hi = multinomial_bootstrap_ci(vals, counts, n_boot=2000)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert abs((hi - lo) - 2 * 1.96 * se) < 0.15 * (2 * 1.96 * se)


def test_pit_peak_rule_on_hand_made_data():
    rows = []
    for j in range(60):
        for k, (tp, v) in enumerate([("a", 0.2), ("b", -0.5 if j % 10 else 0.0), ("c", 0.2), ("d", 0.9)]):
            rows.append({"customer_id": f"c{j}", "journey_id": f"j{j}", "touchpoint": tp,
                         "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=k, days=j),
                         "valence": v + (0.01 * (j % 3)), "outcome": "completed"})
    jm = JourneyMap().fit(pd.DataFrame(rows))
    kinds = jm.touchpoints_.set_index("touchpoint")["kind"].to_dict()
    assert kinds == {"a": "neutral", "b": "pit", "c": "neutral", "d": "peak"}
    # a wide margin turns them all neutral: the rule needs both significance and size
    jm2 = JourneyMap(margin=1.5).fit(pd.DataFrame(rows))
    assert set(jm2.touchpoints_["kind"]) == {"neutral"}


def test_to_dict_has_the_contract_keys(jm):
    d = jm.to_dict()
    assert {"touchpoints", "transitions"} <= set(d)
    assert {"touchpoint", "events", "customers", "reach", "mean_valence", "ci_low", "ci_high", "failure_rate",
            "kind"} <= set(d["touchpoints"][0])
    assert {"from", "to", "count", "median_gap_s"} <= set(d["transitions"][0])
    assert d["variants"] and d["variants"][0]["journeys"] >= d["variants"][-1]["journeys"]
    assert "<h4>" in jm._repr_html_()
    fig = jm.figure()
    assert len(fig.data) == 2


def test_variants_are_real_paths(jm, demo_store):
    ev = demo_store.query("SELECT journey_id, touchpoint FROM events ORDER BY journey_id, ts, seq")
    paths = ev.groupby("journey_id", sort=False)["touchpoint"].agg(" > ".join).value_counts()
    top = jm.variants_.iloc[0]
    assert top["path"] == paths.index[0] and int(top["journeys"]) == int(paths.iloc[0])


def test_filters(demo, demo_store, jm):
    app = JourneyMap(demo.journey, channel="app").fit(demo_store)
    assert app.n_events_ == int((demo.events["channel"] == "app").sum())
    biz = JourneyMap(demo.journey, segment="segment=business").fit(demo_store)
    assert biz.n_customers_ == int((demo.customers["segment"] == "business").sum())
    since = JourneyMap(demo.journey, since="2025-07-01", until="2025-10-01").fit(demo_store)
    ts = demo.events["ts"]
    assert since.n_events_ == int(((ts >= "2025-07-01") & (ts < "2025-10-01")).sum())
    with pytest.raises(InvalidParameterError, match="segment"):
        JourneyMap(segment="business").fit(demo_store)
    with pytest.raises(InvalidParameterError, match="Did you mean 'segment'"):
        JourneyMap(segment="segmnt=business").fit(demo_store)
    with pytest.raises(InvalidParameterError, match="since"):
        JourneyMap(since="not a date").fit(demo_store)


def test_small_data_warns_not_fails():
    df = pd.DataFrame({"customer_id": ["a", "a", "b"], "touchpoint": ["x", "y", "x"], "valence": [0.1, 0.2, 0.3],
                       "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"], utc=True)})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        jm = JourneyMap().fit(df)
    assert any(issubclass(x.category, SmallSampleWarning) for x in w)
    assert jm.transitions_["count"].tolist() == [1]


def test_cli_commands_print_json(demo, tmp_path):
    import json

    from typer.testing import CliRunner

    from keymoments.cli import app
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    db = tmp_path / "cli.duckdb"
    with Store(db) as s:
        ingest_events_frame(s, demo.events)
        ingest_outcomes_frame(s, demo.outcomes)
    runner = CliRunner()
    cases = {
        ("journey", "--channel", "app"): {"touchpoints", "transitions"},
        ("peak-end", "--outcome", "nps"): {"models", "best"},
        ("segments",): {"tiers", "whatif", "ratio"},
        ("recovery", "--outcome", "retained"): {"groups", "differences", "verdict"},
        ("milestones",): {"milestones", "weekly"},
        ("recognition",): {"employees", "recognised"},
    }
    for args, keys in cases.items():
        res = runner.invoke(app, [*args, "--db", str(db), "--json"])
        assert res.exit_code == 0, (args, res.output)
        assert keys <= set(json.loads(res.stdout)), args
    res = runner.invoke(app, ["journey", "--db", str(db)])
    assert res.exit_code == 0 and "Journey map" in res.stdout
