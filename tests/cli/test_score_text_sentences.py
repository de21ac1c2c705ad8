"""score-text --sentences: one row per sentence a text was scored as, with its valence (and touchpoint)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

MIXED = (
    "We booked the hotel for our anniversary and the reception staff were welcoming at first. "
    "Then the room smelled of smoke and the air conditioning rattled all night long. "
    "The breakfast was cold, the coffee machine was broken and nobody came to fix it. "
    "Housekeeping ignored the do not disturb sign and walked in on us twice. "
    "At checkout they charged us for a minibar we never opened and refused to refund it. "
    "Awful stay, we will never again book here."
)


def test_score_text_writes_sentences(run_cli, tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": [MIXED, "Great flight!", None]}).to_csv(src, index=False)
    out, sents = tmp_path / "scored.csv", tmp_path / "sentences.csv"
    code, stdout, err = run_cli("score-text", str(src), "--text-col", "text", "--out", str(out), "--sentences", str(sents))
    assert code == 0, err
    assert f"sentences: {sents}" in stdout
    table = pd.read_csv(sents)
    assert list(table.columns) == ["row", "segment", "sentence", "valence", "sentiment"]
    assert table["row"].tolist() == [0] * 6 + [1]  # six sentences, then the short text as one segment
    assert table.loc[table.row == 0, "sentence"].str.contains(re.escape("never again")).any()
    assert table.loc[table.row == 0, "sentiment"].eq("negative").sum() >= 4


def test_sentences_must_not_overwrite_the_input(run_cli, tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"text": ["ok"]}).to_csv(src, index=False)
    code, _, err = run_cli("score-text", str(src), "--text-col", "text", "--sentences", str(src))
    assert code != 0
    assert "must be another file" in err
    assert pd.read_csv(src)["text"].tolist() == ["ok"]
