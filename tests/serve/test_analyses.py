"""Analysis routes answer what the CLI's --json prints, for the same parameters, and cache per data version."""

from __future__ import annotations

import json

from keymoments.cli.common import to_jsonable


def _cli_json(db_store, cls, **kw):  # noqa: ANN001, ANN003, ANN202
    return json.loads(json.dumps(to_jsonable(cls(**kw).fit(db_store).to_dict())))


def test_journey_route_equals_the_fitter(api):
    from keymoments.analyze.journey import JourneyMap

    r = api.get("/api/v1/analyses/journey", role="analyst", params={"segment": "segment=business", "channel": "app"})
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(api.store, JourneyMap, segment="segment=business", channel="app")
    assert r.json()["events"] > 0


def test_journey_cli_json_matches_api(api, demo_db, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from keymoments.cli import app

    db = tmp_path / "copy.duckdb"
    shutil.copyfile(demo_db, db)
    out = CliRunner().invoke(app, ["journey", "--db", str(db), "--json", "--since", "2025-03-01"])
    assert out.exit_code == 0, out.output
    r = api.get("/api/v1/analyses/journey", params={"since": "2025-03-01"})
    assert r.json() == json.loads(out.output)


def test_moments_route(api):
    r = api.get("/api/v1/analyses/moments", params={"outcome": "retained", "n_boot": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "retained"
    tps = body["touchpoints"]
    assert tps and all("impact" in t and "ci_low" in t and "ci_high" in t for t in tps)


def test_results_are_cached_per_data_version(api):
    cache = api.app.state.km.results
    api.get("/api/v1/analyses/journey", params={"channel": "web"})
    hits = cache.hits
    api.get("/api/v1/analyses/journey", params={"channel": "web"})
    assert cache.hits == hits + 1
    misses = cache.misses
    api.post("/api/v1/events", json=[{"customer_id": "new", "ts": "2025-05-05T10:00:00Z", "touchpoint": "booking", "channel": "web"}])
    api.get("/api/v1/analyses/journey", params={"channel": "web"})
    assert cache.misses == misses + 1


def test_index_lists_available_analyses(api):
    names = [a["name"] for a in api.get("/api/v1/analyses").json()["analyses"]]
    assert "journey" in names and "moments" in names
    paths = api.client.get("/openapi.json").json()["paths"]
    for n in names:
        assert f"/api/v1/analyses/{n}" in paths
