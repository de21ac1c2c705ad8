"""Hostile names (quotes, semicolons, the issue's payload, unicode, 1,000 characters) as outcome names,
attribute names and survey headers, through ingest, every analysis, the report and the API's analyses
(issue 15, item 2): the results are right (the same as under a plain name), no file is written, and nothing
fails but with a clean validation error."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keymoments.exceptions import KeymomentsError

LEAK = "km-leak.csv"  # relative: DuckDB would write it into the working directory, which the test watches
PAYLOAD = (f'a" FROM attributes GROUP BY key; COPY (SELECT key_id, role, key_hash FROM api_keys) TO \'{LEAK}\'; '
           'SELECT key AS "b')  # fmt: skip
KNOWN = [
    PAYLOAD,
    f"x') AS y FROM outcomes; COPY (SELECT 1) TO '{LEAK}'; --",
    f"a` FROM t; COPY (SELECT 1) TO '{LEAK}'; --",
    'Tier "gold" status',
    "'; DROP TABLE events; --",
    '"',
    "'",
    '""""',
    "a\"b'c`d",
    "x;y",
    "名前 ñ 🙂 مرحبا",
    "\\",
    "%s {0} $1 ? :name",
    "customer id",
    "SELECT",
]
_chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
NAME = st.one_of(
    st.sampled_from(KNOWN),
    st.text(_chars, min_size=1, max_size=24),
    st.builds(lambda c: (c * 1000)[:1000], st.sampled_from(['"', "'", "a", ";", "é", 'ab"; --'])),
).filter(lambda n: n.strip() == n and n.strip() and n.lower() not in ("customer_id", "journey_id", "id"))
NAMES = st.lists(NAME, min_size=4, max_size=4, unique_by=lambda n: n.lower())

ANALYSES = [
    ("journey", "keymoments.analyze.journey", "JourneyMap", {}),
    ("moments", "keymoments.analyze.moments", "MomentsOfTruth", {"outcome": True, "n_boot": 50}),
    ("roadmap", "keymoments.analyze.roadmap", "Roadmap", {"outcome": True, "n_boot": 50}),
    ("peak-end", "keymoments.analyze.peak_end", "PeakEnd", {"outcome": True}),
    ("segments", "keymoments.analyze.segments", "Segments", {}),
    ("recovery", "keymoments.analyze.recovery", "Recovery", {"outcome": True}),
    ("milestones", "keymoments.analyze.milestones", "Milestones", {"outcome": True}),
    ("recognition", "keymoments.analyze.recognition", "Recognition", {}),
]


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    from keymoments.examples import generate_airline
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    path = tmp_path_factory.mktemp("hostile") / "base.duckdb"
    demo = generate_airline(200, seed=4)
    with Store(path) as store:
        ingest_events_frame(store, demo.events, source="demo")
        ingest_outcomes_frame(store, demo.outcomes, key="customer_id")
        ingest_outcomes_frame(store, demo.customers, key="customer_id", attributes_only=True)
    return path


def _fit(module: str, cls: str, params: dict, outcome: str, store) -> object:  # noqa: ANN001
    import importlib

    kwargs = {k: (outcome if k == "outcome" else v) for k, v in params.items()}
    model = getattr(importlib.import_module(module), cls)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(store)


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=NAMES)
@example(names=[PAYLOAD, 'Tier "gold" status', "'; DROP TABLE events; --", '"' * 1000])
def test_hostile_names_run_as_names_everywhere(names, base_db, tmp_path_factory, monkeypatch):
    from fastapi.testclient import TestClient

    from keymoments.ingest.survey import read_survey
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.serve.report import write_report
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame, ingest_source

    work = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(work)
    shutil.copyfile(base_db, work / "km.duckdb")
    n_out, n_num, n_attr, n_tp = names
    with Store(work / "km.duckdb") as store:
        # -- ingest: outcomes, an attribute, a survey whose headers are the names -------------------------
        ids = store.query("SELECT DISTINCT customer_id FROM events ORDER BY 1")["customer_id"].tolist()
        kept = [i % 3 != 0 for i in range(len(ids))]
        spend = [float((i * 37) % 500) for i in range(len(ids))]
        tier = ["gold" if i % 4 == 0 else "silver" for i in range(len(ids))]
        got = ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ids, n_out: kept, n_num: spend,
                                                         "plain_out": kept}))  # fmt: skip
        assert set(got["outcomes"]) == {n_out, n_num, "plain_out"}
        assert ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ids, n_attr: tier}))[
            "attributes"
        ] == [n_attr]
        wide = store.outcomes_wide([n_out, n_num]).set_index("customer_id").reindex(ids)
        assert wide[n_out].tolist() == [float(k) for k in kept] and wide[n_num].tolist() == spend
        assert store.attributes_wide().set_index("customer_id").reindex(ids)[n_attr].tolist() == tier

        survey = pd.DataFrame({"id": [f"r{i}" for i in range(60)], n_tp: [1 + i % 5 for i in range(60)],
                               n_out: ["yes" if i % 3 else "no" for i in range(60)]})  # fmt: skip
        survey.to_csv(work / "survey.csv", index=False)
        try:
            batch = read_survey(work / "survey.csv", id_col="id", touchpoints=[n_tp], scale="csat5",
                                outcome_cols=[n_out], date="2025-01-01")  # fmt: skip
        except KeymomentsError:
            batch = None  # a header CSV cannot carry (a clean refusal is allowed; a crash or a file is not)
        if batch is not None:
            assert ingest_source(store, batch.events, kind="survey").accepted == 60
            assert set(batch.outcomes.columns) == {"customer_id", n_out}
            tps = store.query(
                "SELECT DISTINCT touchpoint FROM events WHERE customer_id LIKE 'r%' AND channel = 'survey'"
            )
            assert tps["touchpoint"].tolist() == [n_tp]

        # -- every analysis, with the hostile outcome; the same numbers as under a plain name -------------
        for name, module, cls, params in ANALYSES:
            try:
                model = _fit(module, cls, params, n_out, store)
            except KeymomentsError:
                continue  # e.g. too little data for this analysis: a clean error
            model.to_dict()
            if "outcome" in params:
                plain = _fit(module, cls, params, "plain_out", store)
                pd.testing.assert_frame_equal(model.summary, plain.summary, obj=name)

        # -- the report and the API -----------------------------------------------------------------------
        report = write_report(store, work / "report.html", outcome=n_out)
        assert report.exists() and "<html" in report.read_text(encoding="utf-8")[:500].lower()
        key = create_key(store, "analyst", name="a")[1]
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            for name, *_rest, params in ANALYSES:
                q = {k: (n_out if k == "outcome" else v) for k, v in params.items()}
                r = client.get(f"/api/v1/analyses/{name}", params=q, headers={"X-API-Key": key})
                assert r.status_code < 500, (name, r.text[:300])
                assert r.status_code == 200 or r.json()["ok"] is False
    assert sorted(p.name for p in work.iterdir()) == ["km.duckdb", "report.html", "survey.csv"]  # no leak
