"""Peak-end memory: the planted memory model is recovered, metrics match sklearn, features match pandas."""

from __future__ import annotations

import numpy as np
import pytest

from keymoments.analyze.peak_end import PeakEnd, auc, journey_memory
from keymoments.exceptions import InvalidParameterError


def _store(memory, tmp_path_factory):
    from keymoments.examples.airline import generate_airline
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    demo = generate_airline(2000, seed=5, memory=memory)
    s = Store(tmp_path_factory.mktemp(memory) / "km.duckdb")
    ingest_events_frame(s, demo.events)
    ingest_outcomes_frame(s, demo.outcomes)
    return s


@pytest.fixture(scope="module")
def pe_store(tmp_path_factory):
    s = _store("peak_end", tmp_path_factory)
    yield s
    s.close()


@pytest.fixture(scope="module")
def mean_store(tmp_path_factory):
    s = _store("mean", tmp_path_factory)
    yield s
    s.close()


def _scores(store, outcome="nps"):
    return PeakEnd(outcome, n_boot=200).fit(store)


def test_peak_end_beats_mean_when_memory_is_peak_end(pe_store):
    pe = _scores(pe_store)
    s = pe.models_.set_index("name")["score"]
    assert s["peak_end"] > s["mean"] + 0.01
    assert pe.best_ != "mean"
    d = pe.to_dict()
    assert [m["name"] for m in d["models"]] == ["mean", "end", "peak", "peak_end", "fitted"]
    assert {"name", "score", "ci_low", "ci_high"} <= set(d["models"][0]) and d["best"] in s.index
    for m in d["models"]:
        assert m["ci_low"] <= m["score"] <= m["ci_high"]


def test_peak_end_does_not_beat_mean_when_memory_is_mean(mean_store):
    pe = _scores(mean_store)
    s = pe.models_.set_index("name")["score"]
    assert s["mean"] > s["peak_end"]
    assert pe.best_ in ("mean", "fitted")


def test_binary_outcome_uses_auc(pe_store):
    pe = PeakEnd("retained", n_boot=100).fit(pe_store)
    assert pe.metric_ == "auc"
    assert 0.5 < pe.models_["score"].min() and pe.models_["score"].max() < 1
    assert pe.figure() is not None and "Peak-end" in pe._repr_html_()


def test_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.3
    p = np.round(rng.random(500) + y * 0.3, 2)  # with ties
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_journey_features_match_pandas(pe_store):
    j = journey_memory(pe_store).set_index("journey_id").sort_index()
    ev = pe_store.query("SELECT journey_id, step, valence FROM events WHERE valence IS NOT NULL ORDER BY journey_id, step")
    g = ev.groupby("journey_id")
    np.testing.assert_allclose(j["mean"], g["valence"].mean().sort_index())
    np.testing.assert_allclose(j["end"], g["valence"].last().sort_index())
    np.testing.assert_allclose(j["most_negative"], g["valence"].min().sort_index())
    intense = ev.loc[ev["valence"].abs().groupby(ev["journey_id"]).idxmax()].set_index("journey_id")["valence"]
    np.testing.assert_allclose(j["peak"].abs(), intense.sort_index().abs())


def test_unknown_outcome_is_one_clear_error(pe_store):
    with pytest.raises(InvalidParameterError, match="Did you mean 'retained'"):
        PeakEnd("retaind").fit(pe_store)


def test_a_tie_between_a_low_and_an_equally_strong_high_is_the_low_on_every_engine():
    import pandas as pd

    from keymoments.analyze.peak_end import journey_memory

    ev = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b"], "journey_id": ["a", "a", "a", "b", "b"],
        "ts": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-01", "2025-01-02"], utc=True),
        "touchpoint": ["x", "y", "z", "x", "y"], "valence": [0.5, -0.5, 0.1, -0.2, 0.7],
    })  # fmt: skip
    j = journey_memory(ev).set_index("journey_id")
    assert j.loc["a", "peak"] == -0.5 and j.loc["b", "peak"] == 0.7
    assert j.loc["a", "peak_end"] == pytest.approx((-0.5 + 0.1) / 2)
