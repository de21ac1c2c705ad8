"""score_frame over events and score_text_file over real and awkward files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from keymoments.events import RATING_CONFIDENCE, JourneyModel, Touchpoint
from keymoments.exceptions import (
    ConfigError,
    IngestError,
    KeymomentsWarning,
    MissingColumnError,
    UnsupportedFormatError,
)
from keymoments.score import score_frame, score_text_file
from keymoments.score.lexicon import TEXT_CONFIDENCE_FLOOR

VADER = SentimentIntensityAnalyzer()
JOURNEY = JourneyModel(
    touchpoints=[
        Touchpoint(name="check-in", description="counter or online check-in, boarding pass"),
        Touchpoint(name="baggage", description="bags at the belt, lost or damaged luggage"),
    ]
)


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "rating": [5, None, 2, None, 9, 3],
            "rating_scale": ["csat5", None, "ces7", None, "csat5", "stars10"],
            "text": [None, "I love this airline!", "The check-in queue was awful.", "   ", "ok", None],
        },
        index=[10, 11, 12, 13, 14, 15],
    )


def test_score_frame_columns_and_sources():
    df = _events()
    out = score_frame(df, scorer="lexicon")
    assert out.index.tolist() == df.index.tolist()
    pd.testing.assert_frame_equal(out[df.columns], df)  # the input's columns are untouched
    assert out["valence_source"].tolist() == ["rating", "text", "both", "none", "text", "none"]
    # e1: csat5 5 -> +1 with the rating's confidence
    assert out.loc[10, "rating_valence"] == 1.0 and out.loc[10, "valence"] == 1.0
    assert out.loc[10, "confidence"] == RATING_CONFIDENCE and out.loc[10, "sentiment"] == "positive"
    assert math.isnan(out.loc[10, "text_valence"]) and out.loc[10, "text_confidence"] == 0.0
    assert pd.isna(out.loc[10, "text_model"])
    # e2: text only: VADER's compound and label
    compound = VADER.polarity_scores("I love this airline!")["compound"]
    assert out.loc[11, "valence"] == compound == out.loc[11, "text_valence"]
    assert out.loc[11, "sentiment"] == "positive" and out.loc[11, "text_model"] == "lexicon-vader"
    # e3: ces7 2 -> +2/3 fused with a negative text: between the two
    assert out.loc[12, "rating_valence"] == pytest.approx(2 / 3)
    assert out.loc[12, "text_valence"] < out.loc[12, "valence"] < out.loc[12, "rating_valence"]
    # e4: blank text, no rating; e6: unknown scale
    for i in (13, 15):
        assert math.isnan(out.loc[i, "valence"]) and out.loc[i, "confidence"] == 0.0
        assert pd.isna(out.loc[i, "sentiment"])
    # e5: csat5 9 is out of range -> the text alone speaks
    assert (
        math.isnan(out.loc[14, "rating_valence"]) and out.loc[14, "text_confidence"] >= TEXT_CONFIDENCE_FLOOR
    )


def test_score_frame_without_rating_columns_and_empty():
    out = score_frame(pd.DataFrame({"text": ["great", None]}))
    assert out["valence_source"].tolist() == ["text", "none"]
    empty = score_frame(pd.DataFrame({"text": pd.Series([], dtype=object)}))
    assert len(empty) == 0 and "valence" in empty.columns
    ratings_only = score_frame(pd.DataFrame({"rating": [1], "rating_scale": ["nps"]}), text_col=None)
    assert ratings_only["valence"].tolist() == [-0.8]


def test_score_frame_missing_columns():
    with pytest.raises(MissingColumnError) as info:
        score_frame(pd.DataFrame({"txt": ["hello"], "id": [1]}))
    assert str(info.value) == (
        "Column 'text' is missing from the table; its columns are ['txt', 'id']. Did you mean 'txt'? "
        "Name the column that holds the text with text_col, e.g. text_col='txt'."
    )
    with pytest.raises(MissingColumnError, match="'rating_scale' is missing"):
        score_frame(pd.DataFrame({"text": ["hi"], "rating": [3]}))


def _write_small_csv(path):
    path.write_text(
        "id,comment,sentiment\n"
        '1,"Thank you, the crew was wonderful!",pos\n'
        '2,"My bag was lost at the belt, terrible",neg\n'
        "3,,\n"
        '4,"He said ""fine"" and left\nwithout a word",neu\n',
        encoding="utf-8",
    )


def test_score_text_file_small_csv(tmp_path):
    src = tmp_path / "feedback.csv"
    _write_small_csv(src)
    df, out = score_text_file(src, text_col="comment", journey=JOURNEY, scorer="lexicon")
    assert out == tmp_path / "feedback.scored.csv"
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written.columns.tolist() == [
        "id", "comment", "sentiment_input", "valence", "sentiment", "confidence", "model", "emotion", "emotion_anger",
        "emotion_anxiety", "emotion_gratitude", "emotion_delight", "touchpoint", "touchpoint_confidence", "touchpoints",
    ]  # fmt: skip
    assert written["sentiment_input"].tolist() == ["pos", "neg", "", "neu"]  # the input's column is kept
    assert written["comment"][3] == 'He said "fine" and left\nwithout a word'
    texts = df["comment"].tolist()
    for i in (0, 1, 3):
        assert df["valence"][i] == VADER.polarity_scores(texts[i])["compound"]
    assert df["sentiment"][:2].tolist() == ["positive", "negative"] and pd.isna(df["sentiment"][2])
    assert df["sentiment"][3] == "positive"  # VADER reads "fine" as positive
    assert math.isnan(df["valence"][2]) and df["confidence"][2] == 0.0 and written["valence"][2] == ""
    assert (df["model"] == "lexicon-vader").all()
    assert df["touchpoint"].fillna("-").tolist() == ["other", "baggage", "-", "other"]
    assert 0 < df["touchpoint_confidence"][1] <= 1
    assert df["touchpoints"].fillna("-").tolist() == ["-", "baggage", "-", "-"]
    # emotions from the lexicon's probabilities: thanks and praise are gratitude; "terrible" leans to anger, below
    # the routing threshold with VADER's weak negative share
    assert df["emotion"].fillna("-").tolist()[:3] == ["gratitude", "none", "-"]
    assert df["emotion_anger"][1] > 0.2 and df["emotion_gratitude"][1] == 0.0
    assert df["emotion_anger"][2] == 0.0 and written["emotion"][2] == ""


def test_score_text_file_on_real_twcs(twcs_path, tmp_path):
    head = pd.read_csv(twcs_path, lineterminator="\n", dtype=str, keep_default_na=False, nrows=200)
    src = tmp_path / "twcs_head200.csv"
    head.to_csv(src, index=False, lineterminator="\n")
    df, out = score_text_file(src, text_col="text", out=tmp_path / "scored.jsonl", scorer="lexicon")
    assert len(df) == 200
    expected = [VADER.polarity_scores(t)["compound"] for t in head["text"]]
    np.testing.assert_array_equal(df["valence"].to_numpy(), expected)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 200 and rows[0]["tweet_id"] == head["tweet_id"][0]
    assert {r["sentiment"] for r in rows} == {"negative", "neutral", "positive"}
    assert all(0.0 <= r["confidence"] <= 1.0 and r["model"] == "lexicon-vader" for r in rows)


def test_a_real_file_with_stray_carriage_returns_keeps_its_rows(twcs_path, tmp_path):
    # the file has unquoted carriage returns inside a tweet; a default CSV read would make one row more
    assert len(pd.read_csv(twcs_path, dtype=str)) == 2377
    df, out = score_text_file(twcs_path, out=tmp_path / "twcs.scored.parquet", scorer="lexicon")
    assert len(df) == 2376 and len(pd.read_parquet(out)) == 2376
    again = pd.read_csv(score_text_file(twcs_path, out=tmp_path / "twcs.scored.csv", scorer="lexicon")[1])
    assert len(again) == 2376  # the CSV written back is readable by a plain reader


def test_missing_text_column_message(tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text("id,review_text,stars\n1,Great stay and lovely staff,5\n", encoding="utf-8")
    with pytest.raises(MissingColumnError) as info:
        score_text_file(src, text_col="review")
    assert str(info.value) == (
        "Column 'review' is missing from reviews.csv; its columns are ['id', 'review_text', 'stars']. "
        "Did you mean 'review_text'? Name the column that holds the text with --text-col, e.g. --text-col review_text."
    )
    with pytest.raises(MissingColumnError) as info:
        score_text_file(src)  # 'text' is close to no column: suggest the one holding the longest strings
    assert "Did you mean 'review_text' (the column with the longest texts)?" in str(info.value)
    assert not (tmp_path / "reviews.scored.csv").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".tsv", ".csv.gz"])
def test_formats_round_trip(tmp_path, suffix):
    src = tmp_path / "in.csv"
    _write_small_csv(src)
    first, out = score_text_file(src, text_col="comment", out=tmp_path / f"out{suffix}")
    second, _ = score_text_file(out, text_col="comment", out=tmp_path / "again.csv")
    assert len(second) == 4
    np.testing.assert_array_equal(second["valence"].to_numpy(), first["valence"].to_numpy())


def test_inputs_that_are_refused(tmp_path):
    src = tmp_path / "in.csv"
    _write_small_csv(src)
    with pytest.raises(UnsupportedFormatError, match=r"suffix '\.xlsx'"):
        score_text_file(src, text_col="comment", out=tmp_path / "out.xlsx")
    with pytest.raises(UnsupportedFormatError, match="input format"):
        score_text_file(tmp_path / "notes.txt")
    with pytest.raises(ConfigError, match="is the input file"):
        score_text_file(src, text_col="comment", out=src)
    with pytest.raises(IngestError, match="does not exist"):
        score_text_file(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="Did you mean 'lexicon'"):
        score_text_file(src, text_col="comment", scorer="lexicn")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 2 is not valid JSON"):
        score_text_file(bad_json)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("text,id\nfine,1\nnot,fine,at,all\n", encoding="utf-8")
    with pytest.raises(IngestError, match="line 3"):
        score_text_file(bad_csv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "bad.jsonl", "in.csv"]  # nothing written


def test_crlf_and_non_utf8_csv(tmp_path):
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b'id,text\r\n1,"great, thanks"\r\n2,awful\r\n')
    df, _ = score_text_file(crlf)
    assert df.columns[:2].tolist() == ["id", "text"] and df["text"].tolist() == ["great, thanks", "awful"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\n1,Caf\xe9 was lovely\n".encode("cp1252"))
    with pytest.warns(KeymomentsWarning, match="not UTF-8"):
        df, _ = score_text_file(latin)
    assert df["text"][0] == "Café was lovely" and df["sentiment"][0] == "positive"


def test_journey_from_yaml(tmp_path):
    src = tmp_path / "in.csv"
    _write_small_csv(src)
    JOURNEY.to_yaml(tmp_path / "journey.yaml")
    df, _ = score_text_file(src, text_col="comment", journey=tmp_path / "journey.yaml")
    assert df["touchpoint"][1] == "baggage"


def test_score_text_file_learns_from_labelled_examples(tmp_path):
    src = tmp_path / "feedback.csv"
    _write_small_csv(src)
    examples = pd.DataFrame({"comment": ["He said fine and left without a word", "nobody answered at the desk"],
                             "touchpoint": ["check-in", "check-in"]})  # fmt: skip
    plain, _ = score_text_file(src, text_col="comment", journey=JOURNEY, scorer="lexicon", out=tmp_path / "a.csv")
    taught, _ = score_text_file(src, text_col="comment", journey=JOURNEY, scorer="lexicon", out=tmp_path / "b.csv",
                                examples=examples)  # fmt: skip
    assert plain["touchpoint"][3] == "other" and taught["touchpoint"][3] == "check-in"
    path = tmp_path / "examples.csv"
    examples.rename(columns={"touchpoint": "topic"}).to_csv(path, index=False)
    with pytest.raises(MissingColumnError, match=r"examples.csv has no column 'touchpoint'.*needs 'comment' \(or 'text'\)"):
        score_text_file(src, text_col="comment", journey=JOURNEY, out=tmp_path / "c.csv", examples=path)
    with pytest.raises(ConfigError, match="give a journey model"):
        score_text_file(src, text_col="comment", out=tmp_path / "d.csv", examples=examples)
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "d.csv").exists()
