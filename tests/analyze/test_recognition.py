"""Recognition: the planted star employees are found, without false stars, with evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keymoments.analyze.recognition import Recognition


@pytest.fixture(scope="module")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(2000, seed=1)


@pytest.fixture(scope="module")
def rec(demo, tmp_path_factory):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame

    s = Store(tmp_path_factory.mktemp("rg") / "km.duckdb")
    ingest_events_frame(s, demo.events)
    r = Recognition(top=10).fit(s)
    yield r
    s.close()


def test_planted_stars_lead_and_no_false_star_is_recognised(rec, demo):
    stars = set(demo.ground_truth["star_employees"])
    ranked = rec.employees_["employee_id"].tolist()
    assert set(ranked[:4]) <= stars
    assert stars <= set(ranked[:10])
    recognised = set(rec.employees_.loc[rec.employees_["recognised"], "employee_id"])
    assert recognised and recognised <= stars


def test_evidence_is_specific(rec):
    d = rec.to_dict()
    top = d["employees"][0]
    assert top["recognised"] and len(top["evidence"]) == 3
    for mo in top["evidence"]:
        assert mo["employee_id"] == top["employee_id"] and mo["valence"] >= 0.5
    assert any(mo.get("text") for mo in top["evidence"])
    assert rec.figure() is not None


def test_one_lucky_day_does_not_win():
    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for e in range(30):
        for i in range(100):
            rows.append({"customer_id": f"c{e}-{i}", "employee_id": f"e{e}", "touchpoint": "desk",
                         "valence": float(np.clip(rng.normal(0.1 + (0.3 if e == 0 else 0), 0.4), -1, 1)),
                         "ts": t0 + pd.Timedelta(hours=i)})
    # 'lucky' served two customers who both loved it
    rows += [{"customer_id": f"l{i}", "employee_id": "lucky", "touchpoint": "desk", "valence": 1.0,
              "ts": t0 + pd.Timedelta(hours=i)} for i in range(2)]
    r = Recognition().fit(pd.DataFrame(rows))
    emp = r.employees_.set_index("employee_id")
    assert r.employees_["employee_id"].iloc[0] == "e0"
    assert not emp.loc["lucky", "recognised"]
    assert emp.loc["lucky", "mean_lift"] > emp.loc["e0", "mean_lift"] > emp.loc["e0", "shrunk_lift"] > 0
