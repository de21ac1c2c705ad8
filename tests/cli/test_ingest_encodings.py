"""CSV files in UTF-16 (Excel's "Unicode text") are read; encodings keymoments cannot read are refused with a
message that names the encoding and the fix (issue 15 item 12). Real CLI, real DuckDB files."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.store.store import Store

TEXT = (
    "customer_id,ts,touchpoint,text\r\n"
    "c1,2024-05-01T10:00:00Z,café,naïve résumé — très bien\r\n"
    "c2,2024-05-02T10:00:00Z,check-in,ok\r\n"
)


def _events(db) -> list[tuple]:  # noqa: ANN001
    with Store(db, read_only=True) as store:
        return [tuple(r) for r in store.query("SELECT customer_id, touchpoint, text FROM events ORDER BY customer_id").itertuples(index=False)]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_utf16_and_bom_marked_csv_are_read(run_cli, tmp_path, codec):
    """utf-16 writes a byte-order mark (what Excel and PowerShell write); utf-16-le is the same without one."""
    (tmp_path / "e.csv").write_bytes(TEXT.encode(codec))
    code, out, err = run_cli("ingest", "e.csv", "--no-score")
    assert code == 0, err
    assert "2 accepted, 0 duplicate, 0 rejected" in out
    assert _events(tmp_path / "keymoments.duckdb") == [("c1", "café", "naïve résumé — très bien"), ("c2", "check-in", "ok")]


@pytest.mark.parametrize(
    ("codec", "named", "source"),
    [("utf-16-be", "UTF-16 big-endian", "UTF-16BE"), ("utf-32", "UTF-32", "UTF-32")],
)
def test_unreadable_encodings_are_refused_by_name_with_the_fix(run_cli, tmp_path, codec, named, source):
    (tmp_path / "e.csv").write_bytes(("\ufeff" if codec == "utf-16-be" else "").encode(codec) + TEXT.encode(codec))
    code, out, err = run_cli("ingest", "e.csv")
    assert code == 2
    assert f"the file is {named} text, which keymoments cannot read" in err
    assert f"iconv -f {source} -t UTF-8 e.csv > e.utf8.csv" in err
    assert not (tmp_path / "keymoments.duckdb").exists()


def test_latin1_is_refused_with_the_encoding_option_that_reads_it(run_cli, tmp_path):
    """Before, the row with 'café' silently went to the rejects as a malformed line."""
    (tmp_path / "e.csv").write_bytes(TEXT.replace("—", "-").encode("latin-1"))
    code, out, err = run_cli("ingest", "e.csv")
    assert code == 2
    assert "the file is not UTF-8 (byte 0xE9 on line 2); it looks like Latin-1 or Windows-1252" in err
    assert "--encoding latin-1" in err and "iconv -f WINDOWS-1252 -t UTF-8" in err
    code, out, err = run_cli("ingest", "e.csv", "--encoding", "latin-1", "--no-score")
    assert code == 0, err
    assert _events(tmp_path / "keymoments.duckdb")[0] == ("c1", "café", "naïve résumé - très bien")
    code, out, err = run_cli("ingest", "e.csv", "--encoding", "ebcdic", "--db", "x.duckdb")
    assert code == 2 and "--encoding 'ebcdic' is not one keymoments reads CSV in" in err


def test_utf16_survey_outcomes_and_text_files(run_cli, tmp_path):
    survey = "id,Booking,Flight,retained,tier\r\nr1,5,4,yes,gold\r\nr2,2,1,no,blue — bleu\r\n"
    (tmp_path / "s.csv").write_bytes(survey.encode("utf-16"))
    code, out, err = run_cli("ingest-survey", "s.csv", "--id-col", "id", "--touchpoints", "Booking,Flight",
                             "--scale", "csat5", "--outcome-col", "retained", "--outcome-col", "tier")  # fmt: skip
    assert code == 0, err
    assert "4 accepted" in out
    (tmp_path / "o.csv").write_bytes("customer_id,spend\r\nr1,10.5\r\nr2,0\r\n".encode("utf-16"))
    code, out, err = run_cli("ingest-outcomes", "o.csv", "--json")
    assert code == 0, err
    with Store(tmp_path / "keymoments.duckdb", read_only=True) as store:
        assert store.outcomes_wide(["retained", "spend"]).to_dict("records") == [
            {"customer_id": "r1", "retained": 1.0, "spend": 10.5}, {"customer_id": "r2", "retained": 0.0, "spend": 0.0},
        ]  # fmt: skip
        assert store.attributes_wide()["tier"].tolist() == ["gold", "blue — bleu"]
    (tmp_path / "t.csv").write_bytes("id,msg\r\n1,I love this airline\r\n2,the worst flight ever\r\n".encode("utf-16"))
    code, out, err = run_cli("score-text", "t.csv", "--text-col", "msg", "--model", "lexicon", "--out", "scored.csv")
    assert code == 0, err
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert scored["msg"].tolist() == ["I love this airline", "the worst flight ever"]
    assert scored["sentiment"].tolist() == ["positive", "negative"]
