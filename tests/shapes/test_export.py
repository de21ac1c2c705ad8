"""Export: `--out FILE.csv|.parquet` on the analysis commands, `.tables()` / `.to_frame()` in Python, and the
dashboard's CSV link under every table (one route, the analyses' permission, formula-safe cells)."""

from __future__ import annotations

import io
import warnings

import pandas as pd
import pytest

from keymoments.exceptions import InvalidParameterError


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fitted(db, cls, *args, **kw):
    from keymoments.store.store import Store

    with Store(db, read_only=True) as s:
        return cls(*args, **kw).fit(s)


def test_out_csv_writes_every_table_of_the_json(km, shape_db, tmp_path):
    from keymoments.analyze.journey import JourneyMap

    out = tmp_path / "journey.csv"
    code, stdout, err = km("journey", "--db", shape_db("demo"), "--out", out)
    assert code == 0 and "Journey map" in stdout  # the human output is still printed
    names = ["touchpoints", "transitions", "variants", "drop_offs"]
    files = {n: out if n == "touchpoints" else tmp_path / f"journey-{n}.csv" for n in names}
    assert all(f.exists() for f in files.values())
    assert f"wrote {out} (touchpoints, 10 rows)" in " ".join(err.split())
    jm = _fitted(shape_db("demo"), JourneyMap)
    for n, f in files.items():
        back = pd.read_csv(f)
        want = jm.tables()[n]
        assert list(back.columns) == list(want.columns) and len(back) == len(want)
    back = pd.read_csv(out)
    assert back["touchpoint"].tolist() == jm.to_frame()["touchpoint"].tolist()
    assert back["mean_valence"].to_numpy() == pytest.approx(jm.touchpoints_["mean_valence"].to_numpy())


def test_out_parquet_with_json_keeps_stdout_json(km, shape_db, tmp_path):
    out = tmp_path / "m.parquet"
    code, stdout, err = km("moments", "--outcome", "retained", "--n-boot", "100", "--db", shape_db("demo"), "--out", out, "--json")
    assert code == 0
    import json

    data = json.loads(stdout)
    back = pd.read_parquet(out)
    assert back["touchpoint"].tolist() == [r["touchpoint"] for r in data["touchpoints"]]
    assert back["characteristics"].tolist()[0] == ", ".join(data["touchpoints"][0]["characteristics"])


@pytest.mark.parametrize("command", [["segments"], ["milestones"], ["recognition"], ["peak-end", "--outcome", "retained"],
                                     ["recovery", "--outcome", "retained"], ["roadmap", "--outcome", "retained", "--n-boot", "100"]])  # fmt: skip
def test_every_analysis_command_takes_out(km, shape_db, tmp_path, command):
    out = tmp_path / "t.csv"
    code, _, err = km(*command, "--db", shape_db("demo"), "--out", out)
    assert code == 0, err
    assert out.exists() and len(pd.read_csv(out)) > 0


def test_out_refuses_another_file_type_before_any_work(km, shape_db, tmp_path):
    code, out, err = km("journey", "--db", shape_db("demo"), "--out", tmp_path / "j.xlsx")
    assert code == 2 and out == ""
    assert err.strip() == f"error: --out must end in .csv or .parquet (the file type); got '{tmp_path / 'j.xlsx'}'."


def test_csv_cells_cannot_run_as_formulas(km, tmp_path):
    evil = '=HYPERLINK("http://evil.example","x")'
    rows = [{"customer_id": f"c{i}", "ts": f"2024-01-0{1 + i % 5}T10:00:00Z", "touchpoint": evil if i % 2 else "@SUM(A1)",
             "rating": 1 + i % 5, "rating_scale": "csat5"} for i in range(40)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "e.csv", index=False)
    assert km("ingest", tmp_path / "e.csv", "--db", tmp_path / "k.duckdb", "--no-score")[0] == 0
    code, _, err = km("journey", "--db", tmp_path / "k.duckdb", "--out", tmp_path / "j.csv")
    assert code == 0, err
    cells = set(pd.read_csv(tmp_path / "j.csv")["touchpoint"])
    assert cells == {"'" + evil, "'@SUM(A1)"}


def test_to_frame_in_python(shape_db):
    from keymoments.analyze.recovery import Recovery
    from keymoments.analyze.segments import Segments

    rec = _fitted(shape_db("demo"), Recovery, "retained")
    assert list(rec.tables()) == ["groups", "differences"]
    assert rec.to_frame()["group"].tolist() == ["recovered", "unrecovered", "none"]
    assert rec.to_frame("differences").shape == (3, 4)
    with pytest.raises(InvalidParameterError, match="Did you mean 'groups'"):
        rec.to_frame("group")
    seg = _fitted(shape_db("demo"), Segments)
    assert list(seg.tables()) == ["tiers", "whatif"] and seg.to_frame("whatif")["move"].tolist() == ["middle_up", "unhappy_up"]


def test_every_dashboard_table_links_its_csv(dashboard):
    import re

    client = dashboard("demo")
    page = client.get("/recovery?outcome=retained&segment=tier%3Dgold").text
    links = [h.replace("&amp;", "&") for h in re.findall(r'href="(/download/[^"]+)"', page)]
    assert links == ["/download/recovery/groups.csv?outcome=retained&segment=tier%3Dgold",
                     "/download/recovery/differences.csv?outcome=retained&segment=tier%3Dgold"]  # fmt: skip
    r = client.get(links[0])
    assert r.status_code == 200 and r.headers["content-disposition"] == 'attachment; filename="recovery-groups.csv"'
    api = client.get("/api/v1/analyses/recovery?outcome=retained&segment=tier%3Dgold").json()
    got = pd.read_csv(io.StringIO(r.text))
    assert got["n"].tolist() == [g["n"] for g in api["groups"]]  # the same numbers as the page and the API
    journey = client.get("/journey").text
    assert journey.count('href="/download/journey/') == 4  # touchpoints, transitions, drop-offs, paths


def test_the_csv_route_asks_the_analyses_permission(dashboard):
    from keymoments.serve.auth import create_key

    client = dashboard("demo")
    store = client.app.state.km.store
    agent = create_key(store, "agent", name="a", employee_id="E1")[1]
    analyst = create_key(store, "analyst", name="b")[1]
    assert client.get("/download/journey/touchpoints.csv", headers={"X-API-Key": analyst}).status_code == 200
    assert client.get("/download/journey/touchpoints.csv", headers={"X-API-Key": agent}).status_code == 403
    anon = client.get("/download/journey/touchpoints.csv", headers={"X-API-Key": ""}, follow_redirects=False)
    assert anon.status_code in (303, 401)
    r = client.get("/download/journey/touchpoint.csv")
    assert r.status_code == 404 and "Did you mean &#39;touchpoints&#39;" in r.text


def test_the_budgets_tables_download_with_the_budgets_permission(shape_copy):
    import re

    from fastapi.testclient import TestClient

    from keymoments.act.library import load_library
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    with Store(shape_copy("demo")) as store:
        admin = create_key(store, "admin", name="a")[1]
        agent = create_key(store, "agent", name="b", employee_id="E1")[1]
        app = create_app(store, playbooks=load_library(["service-recovery", "unresolved-crisis"]))
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["X-API-Key"] = admin
            assert client.post("/api/v1/playbooks/run").status_code == 200  # cases, spends, a ledger
            page = client.get("/budgets").text
            links = re.findall(r'href="(/download/budgets/[^"]+)"', page)
            assert {"/download/budgets/balances.csv", "/download/budgets/ledger.csv"} <= set(links)
            for link in links:
                r = client.get(link, headers={"X-API-Key": agent})  # agents may read budgets, so their tables too
                assert r.status_code == 200 and len(r.text.splitlines()) > 1
            assert client.get("/download/budgets/journal.csv").status_code == 404


def test_the_case_queue_and_playbooks_download(shape_copy):
    import re

    from fastapi.testclient import TestClient

    from keymoments.act.library import load_library
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store

    with Store(shape_copy("demo")) as store:
        admin = create_key(store, "admin", name="a")[1]
        analyst = create_key(store, "analyst", name="b")[1]
        app = create_app(store, playbooks=load_library(["service-recovery", "unresolved-crisis"]))
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["X-API-Key"] = admin
            assert client.post("/api/v1/playbooks/run").status_code == 200
            page = client.get("/cases?status=open").text
            link = re.findall(r'href="(/download/cases/[^"]+)"', page)
            assert link == ["/download/cases/cases.csv?status=open"]
            cases = pd.read_csv(io.StringIO(client.get(link[0]).text))
            assert len(cases) == client.get("/api/v1/cases", params={"status": "open"}).json()["total"]
            assert set(cases["status"]) == {"open"}
            assert client.get(link[0], headers={"X-API-Key": analyst}).status_code == 200  # as GET /cases: every role
            anon = client.get(link[0], headers={"X-API-Key": ""}, follow_redirects=False)
            assert anon.status_code in (303, 401)
            spent = client.get("/api/v1/budgets/ledger", params={"limit": 5000}).json()["entries"]
            cid = next(e["case_id"] for e in spent if e.get("case_id"))
            page = client.get(f"/cases/{cid}").text
            assert f'href="/download/case/ledger.csv?case_id={cid}"' in page
            ledger = pd.read_csv(io.StringIO(client.get(f"/download/case/ledger.csv?case_id={cid}").text))
            assert len(ledger) == sum(e["case_id"] == cid for e in spent)
            assert client.get("/download/case/ledger.csv?case_id=case-nope").status_code == 404
            assert 'href="/download/playbooks/playbooks.csv"' in client.get("/playbooks").text
            pb = pd.read_csv(io.StringIO(client.get("/download/playbooks/playbooks.csv").text))
            assert set(pb["name"]) == {"service-recovery", "unresolved-crisis"}
