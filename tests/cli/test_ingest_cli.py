"""The ingest commands as a user runs them: counts, JSON, rejects, and clean one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from keymoments.testing import make_events


def test_ingest_twice_and_json(run_cli, tmp_path):
    make_events(20, 4).to_csv(tmp_path / "e.csv", index=False)
    code, out, err = run_cli("ingest", "e.csv")
    assert code == 0, err
    assert "80 accepted, 0 duplicate, 0 rejected" in out
    res = run_cli.json("ingest", "e.csv")
    assert (res["accepted"], res["duplicates"], res["rejected"]) == (0, 80, 0)
    assert (tmp_path / "keymoments.duckdb").exists()


def test_ingest_map_and_rejects(run_cli, tmp_path):
    df = make_events(5, 2).rename(columns={"ts": "timestamp"})
    df.loc[3, "rating"] = 11
    df.to_csv(tmp_path / "e.csv", index=False)
    code, out, err = run_cli("ingest", "e.csv")
    assert code == 2
    assert err.strip().startswith("error: e.csv: column 'ts' is missing; did you mean 'timestamp'? Use --map timestamp=ts")
    assert "Traceback" not in err
    code, out, err = run_cli("ingest", "e.csv", "--map", "timestamp=ts", "--db", "x.duckdb")
    assert code == 0, err
    assert "9 accepted, 0 duplicate, 1 rejected" in out
    rejects = pd.read_csv(tmp_path / "e.rejects.csv")
    assert rejects["line"].tolist() == [5] and rejects["reason"].tolist() == ["rating 11 is outside the csat5 scale"]


def test_ingest_survey_and_outcomes_cli(run_cli, tmp_path):
    pd.DataFrame({"id": ["a", "b"], "Booking": [5, 0], "Flight": [2, 4], "retained": ["yes", "no"]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    res = run_cli.json(
        "ingest-survey", "s.csv", "--id-col", "id", "--touchpoints", "Booking,Flight", "--scale", "csat5",
        "--outcome-col", "retained", "--na-value", "0",
    )
    assert res["accepted"] == 3 and res["respondents"] == 2 and res["outcomes"] == ["retained"]
    pd.DataFrame({"customer_id": ["a", "b"], "spend": [10, 20]}).to_csv(tmp_path / "o.csv", index=False)
    res = run_cli.json("ingest-outcomes", "o.csv")
    assert res["outcomes"] == ["spend"]


def test_score_text_cli(run_cli, tmp_path):
    pd.DataFrame({"msg": ["I love this airline, fantastic crew", "my bag was lost and nobody helped", "ok"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    code, out, err = run_cli("score-text", "t.csv", "--text-col", "msg", "--out", "scored.csv")
    assert code == 0, err
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert scored["sentiment"].tolist()[:2] == ["positive", "negative"]
    assert {"valence", "sentiment", "confidence"} <= set(scored.columns)
    code, out, err = run_cli("score-text", "t.csv", "--text-col", "message")
    assert code == 2 and "did you mean 'msg'" in err.lower()


def test_analysis_on_a_missing_store_says_what_to_do(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "keymoments.cli", "score", "--db", str(tmp_path / "none.duckdb")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "No store at" in proc.stderr and "keymoments demo" in proc.stderr and "Traceback" not in proc.stderr


def test_score_text_says_how_it_tagged(run_cli, tmp_path, airline_complaints):
    """Real complaints to airlines, tagged with the demo's journey: the CLI says the tagger found one domain."""
    from pathlib import Path

    airline_complaints[["tweet_id", "text"]].to_csv(tmp_path / "complaints.csv", index=False)
    journey = Path(__file__).resolve().parents[2] / "src" / "keymoments" / "examples" / "airline_journey.yaml"
    code, out, err = run_cli("score-text", "complaints.csv", "--text-col", "text", "--journey", str(journey), "--out", "s.csv")
    assert code == 0, err
    assert "tagged with SemanticTagger(10 touchpoints" in err and "calibrated on 106 texts (homogeneity 0.3" in err
    assert "lexical weight 0.7)" in err
    res = run_cli.json("score-text", "complaints.csv", "--text-col", "text", "--journey", str(journey), "--out", "s.csv")
    assert "lexical weight 0.7" in res["tagger"] and sum(res["touchpoint"].values()) == 106


def test_outcomes_carry_the_time_they_were_observed(run_cli, tmp_path):
    from keymoments.store.store import Store

    (tmp_path / "o.csv").write_text("customer_id,retained,seen\na,yes,2025-03-01\nb,no,2025-03-02T10:00:00Z\nc,yes,\n")
    res = run_cli.json("ingest-outcomes", "o.csv", "--observed-at-col", "seen")
    assert res["outcomes"] == ["retained"] and res["attributes"] == [] and res["observed_at"] == "column seen"

    def times() -> dict:
        with Store(tmp_path / "keymoments.duckdb", read_only=True) as s:
            df = s.query("SELECT key, observed_at FROM outcomes WHERE name = 'retained' ORDER BY key")
        return dict(zip(df["key"], df["observed_at"], strict=True))

    t = times()
    assert str(t["a"]) == "2025-03-01 00:00:00+00:00" and str(t["b"]) == "2025-03-02 10:00:00+00:00"
    assert t["c"] is None or t["c"] != t["c"]  # an empty cell: observed at an unknown time
    # one time for the whole table (a snapshot), and by default the ingest time, which a re-ingest of an
    # unchanged value keeps
    (tmp_path / "p.csv").write_text("customer_id,nps\na,9\nb,3\n")
    assert run_cli.json("ingest-outcomes", "p.csv", "--observed-at", "2025-06-30")["observed_at"].startswith("2025-06-30")
    (tmp_path / "q.csv").write_text("customer_id,spend\na,10\nb,20\n")
    first = run_cli.json("ingest-outcomes", "q.csv")["observed_at"]
    assert first[:4] >= "2026"
    (tmp_path / "q.csv").write_text("customer_id,spend\na,10\nb,25\n")
    run_cli.json("ingest-outcomes", "q.csv")
    with Store(tmp_path / "keymoments.duckdb", read_only=True) as s:
        df = s.query("SELECT key, observed_at FROM outcomes WHERE name = 'spend' ORDER BY key")
    assert df["observed_at"].iloc[0].isoformat() == first and df["observed_at"].iloc[1].isoformat() > first
    code, _, err = run_cli("ingest-outcomes", "o.csv", "--observed-at-col", "sen")
    assert code != 0 and "Did you mean 'seen'?" in err
    (tmp_path / "r.csv").write_text("customer_id,retained,seen\na,yes,yesterday\n")
    code, _, err = run_cli("ingest-outcomes", "r.csv", "--observed-at-col", "seen")
    assert code != 0 and "unreadable time in 'seen' (row 1: 'yesterday')" in err


def _tables_created_after(version: int) -> list[str]:
    """The tables the store's migrations after ``version`` create, last first (so dependants drop first)."""
    import re

    from keymoments.store.schema import MIGRATIONS

    made = [m.group(1) for statements in MIGRATIONS[version:] for sql in statements
            for m in re.finditer(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", sql)]  # fmt: skip
    return made[::-1]


def test_outcomes_stored_before_the_migration_have_no_observed_time(tmp_path):
    import pandas as pd

    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame

    path = tmp_path / "old.duckdb"
    with Store(path) as s:  # a store as version 3 left it: outcomes without an observed time
        ingest_outcomes_frame(s, pd.DataFrame({"customer_id": ["a"], "retained": [1]}))
        with s.write() as con:
            con.execute("ALTER TABLE outcomes DROP COLUMN observed_at")
            con.execute("DELETE FROM schema_version WHERE version >= 4")
            for table in _tables_created_after(4):  # later migrations' tables go too: they run again on reopen
                con.execute(f"DROP TABLE {table}")
    with Store(path) as s:
        assert s.schema_version >= 4
        row = s.query("SELECT value, observed_at FROM outcomes").iloc[0]
        assert row["value"] == 1 and pd.isna(row["observed_at"])
        # re-ingesting the same value does not pretend to know when it was first observed
        ingest_outcomes_frame(s, pd.DataFrame({"customer_id": ["a"], "retained": [1]}))
        assert pd.isna(s.query("SELECT observed_at FROM outcomes").iloc[0, 0])
