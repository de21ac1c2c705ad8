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


def test_a_utf16_file_is_refused_naming_its_encoding(run_cli, tmp_path):
    text = "customer_id,ts,touchpoint\nc1,2025-01-01,check-in\n"
    for name, data, says in [
        ("bom.csv", text.encode("utf-16"), "UTF-16 (little-endian)"),
        ("le.csv", text.encode("utf-16-le"), "UTF-16LE"),
        ("be.csv", text.encode("utf-16-be"), "UTF-16BE"),
        ("wide.jsonl", '{"customer_id": "c1"}\n'.encode("utf-32"), "UTF-32"),
    ]:
        (tmp_path / name).write_bytes(data)
        for cmd in (["ingest", name], ["ingest-outcomes", name], ["score-text", name, "--text-col", "touchpoint"]):
            if name.endswith(".jsonl") and cmd[0] == "score-text":
                continue
            code, _, err = run_cli(*cmd)
            assert code != 0 and says in err and "UTF-8" in err, (name, cmd, err)
            assert "\\x00" not in err
