"""Wide surveys become one event per rated touchpoint plus an outcome row."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.exceptions import InvalidParameterError, MissingColumnError
from keymoments.ingest.survey import read_survey
from keymoments.store.writer import ingest_outcomes_frame, ingest_source


def _survey(tmp_path):
    path = tmp_path / "survey.csv"
    pd.DataFrame({
        "rid": ["r1", "r2", "r3"],
        "Booking": [5, 0, 3],
        "Check in": [4, 2, ""],
        "Flight": [1, 5, "x"],
        "recommend": ["Yes", "No", "Yes"],
        "spend": [100.0, 20.5, 0.0],
    }).to_csv(path, index=False)
    return path


def test_reshape(tmp_path, store):
    batch = read_survey(
        _survey(tmp_path), id_col="rid", touchpoints=["Booking", "Check in", "Flight"], scale="csat5",
        outcome_cols=["recommend", "spend"], na_value="0", date="2024-06-01",
    )
    rejects = tmp_path / "rej.csv"
    r = ingest_source(store, batch.events, rejects_path=rejects)
    # r1: 3 events; r2: Booking=0 is 'not rated' -> 2 events; r3: Check in blank -> Booking + Flight 'x' rejected
    assert (r.accepted, r.rejected) == (6, 1)
    rej = pd.read_csv(rejects)
    assert rej["line"].tolist() == [4] and rej["reason"].iloc[0] == "rating x is not a number"
    ev = store.query("SELECT customer_id, touchpoint, rating, rating_valence, step FROM events ORDER BY customer_id, step")
    assert ev[ev.customer_id == "r1"]["touchpoint"].tolist() == ["Booking", "Check in", "Flight"]  # column order kept
    assert ev[ev.customer_id == "r2"]["touchpoint"].tolist() == ["Check in", "Flight"]
    assert ev[ev.customer_id == "r1"]["rating_valence"].tolist() == [1.0, 0.5, -1.0]
    out = ingest_outcomes_frame(store, batch.outcomes, key="customer_id")
    assert out["outcomes"] == ["recommend", "spend"]
    wide = store.outcomes_wide(["recommend", "spend"]).set_index("customer_id").sort_index()
    assert wide["recommend"].tolist() == [1.0, 0.0, 1.0]
    assert store.outcome_names()["recommend"] == ("customer_id", "bool")
    again = ingest_source(store, rejects_path=tmp_path / "again.csv", src=read_survey(
        _survey(tmp_path), id_col="rid", touchpoints=["Booking", "Check in", "Flight"], scale="csat5", na_value="0",
        date="2024-07-01",
    ).events)
    assert again.accepted == 0 and again.duplicates == 6  # idempotent even with another date


def test_survey_errors(tmp_path):
    path = _survey(tmp_path)
    with pytest.raises(MissingColumnError, match="column 'Checkin' is missing. Did you mean 'Check in'"):
        read_survey(path, id_col="rid", touchpoints=["Booking", "Checkin"], scale="csat5")
    with pytest.raises(InvalidParameterError, match="--scale must be one of"):
        read_survey(path, id_col="rid", touchpoints=["Booking"], scale="csat7")


def test_outcome_table_errors(store):
    from keymoments.exceptions import IngestError

    with pytest.raises(MissingColumnError, match="key column 'customer_id' is missing.*Did you mean 'customerID'"):
        ingest_outcomes_frame(store, pd.DataFrame({"customerID": ["a"], "churn": ["Yes"]}))
    with pytest.raises(IngestError, match="appears more than once"):
        ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ["a", "a"], "churn": ["Yes", "No"]}))


def test_real_telco_outcomes(store, test_data):
    """1,008 customers of IBM's telco churn table (the first 1,000 and the 11 with a blank TotalCharges); the
    whole table's published counts are checked by bench/check_shared_corpora.py."""
    from keymoments.ingest.outcomes import read_outcomes

    path = test_data / "telco_churn_sample.csv"
    df = read_outcomes(path, ["customerID=customer_id"])
    res = ingest_outcomes_frame(store, df)
    assert "Churn" in res["outcomes"] and "TotalCharges" in res["outcomes"] and "Contract" in res["attributes"]
    wide = store.outcomes_wide(["Churn", "TotalCharges"])
    plain = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("customerID")
    assert len(wide) == len(plain) == 1008
    assert wide["Churn"].sum() == (plain["Churn"] == "Yes").sum() == 256
    assert wide["TotalCharges"].isna().sum() == 11  # the 11 blanks stay missing
    numbers = pd.to_numeric(plain["TotalCharges"], errors="coerce")
    assert wide["TotalCharges"].sum() == pytest.approx(numbers.sum())
