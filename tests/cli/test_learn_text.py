"""`keymoments learn-text`: a domain text model from the store's own rated text, on real reviews."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _reviews(test_data, n_rated: int, n_unrated: int) -> pd.DataFrame:
    """Yelp review sentences (UCI, labelled 0/1) as events: the first ones with a star rating, the rest without."""
    lines = (test_data / "uci_sentiment_labelled_sentences" / "yelp_labelled.txt").read_text(encoding="utf-8").splitlines()
    rows = [line.rsplit("\t", 1) for line in lines if "\t" in line]
    df = pd.DataFrame(rows, columns=["text", "label"]).head(n_rated + n_unrated)
    return _events(df["text"], df["label"].map({"1": 5.0, "0": 1.0}), n_rated)


def _support_tweets(test_data, n_unrated: int) -> pd.DataFrame:
    """Customer tweets to brands with the hand labels of training/data as 1 / 3 / 5 stars, then unrated ones."""
    tweets = pd.read_csv(test_data / "twcs_sample.csv", lineterminator="\n", dtype=str)
    labels = pd.read_csv(ROOT / "training" / "data" / "twcs_train_labels.csv", dtype=str)
    rated = labels.merge(tweets[["tweet_id", "text"]], on="tweet_id")
    unrated = tweets[(tweets["inbound"] == "True") & ~tweets["tweet_id"].isin(labels["tweet_id"])].head(n_unrated)
    text = pd.concat([rated["text"], unrated["text"]], ignore_index=True)
    stars = pd.concat([rated["label"].map({"negative": 1.0, "neutral": 3.0, "positive": 5.0}), unrated["text"].map(lambda _: None)], ignore_index=True)
    return _events(text, stars, len(rated))


def _events(text: pd.Series, stars: pd.Series, n_rated: int) -> pd.DataFrame:
    df = pd.DataFrame({"text": text.to_numpy(), "rating": stars.to_numpy(dtype=float)})
    df["customer_id"] = [f"c{i}" for i in range(len(df))]
    df["ts"] = "2024-03-01T12:00:00Z"
    df["touchpoint"] = "contact"
    df.loc[df.index >= n_rated, "rating"] = None
    df["rating_scale"] = df["rating"].map(lambda r: None if pd.isna(r) else "csat5")
    return df


def test_learn_text_fits_reports_saves_and_rescores_the_unrated_text(run_cli, tmp_path, test_data):
    _support_tweets(test_data, 80).to_csv(tmp_path / "tweets.csv", index=False)
    assert run_cli("ingest", "tweets.csv", "--no-score")[0] == 0
    assert run_cli("score", "--model", "lexicon")[0] == 0
    got = run_cli.json("learn-text")
    assert got["n"] == 1200 and got["classes"] == {"negative": 593, "neutral": 358, "positive": 249}
    rows = {r["model"]: r for r in got["cv"]}
    assert {"general", "domain (cv)"} <= set(rows)
    assert got["gain_macro_f1"] == pytest.approx(rows["domain (cv)"]["macro_f1"] - rows["general"]["macro_f1"])
    # support tweets are not reviews: the business's own labels beat the general model (0.69 vs ~0.6 in the bench)
    assert got["gain_macro_f1"] > 0.03 and got["rescored_unrated"] == 80
    assert (tmp_path / "keymoments.text-model.npz").is_file() and got["path"].endswith("keymoments.text-model.npz")
    from keymoments.store.store import Store

    with Store(tmp_path / "keymoments.duckdb") as s:
        models = s.query("SELECT e.rating IS NULL AS unrated, t.model, count(*) AS n FROM events e "
                         "JOIN text_scores t USING (event_id) GROUP BY ALL ORDER BY ALL")  # fmt: skip
    # the unrated text is rescored with the domain model; the rated text keeps its score
    assert models.values.tolist() == [[False, "lexicon-vader", 1200], [True, "semantic-domain", 80]]
    # from now on the store's new text is scored with it
    more = _support_tweets(test_data, 95).tail(15).assign(customer_id=lambda d: "new-" + d["customer_id"])
    more.to_csv(tmp_path / "more.csv", index=False)
    assert run_cli("ingest", "more.csv")[0] == 0
    with Store(tmp_path / "keymoments.duckdb") as s:
        new = s.query("SELECT t.model FROM events e JOIN text_scores t USING (event_id) WHERE e.customer_id LIKE 'new-%'")
    assert new["model"].tolist() == ["semantic-domain"] * 15
    # the saved model is a scorer, named by its path
    code, out, err = run_cli("score-text", "tweets.csv", "--text-col", "text", "--model", "keymoments.text-model.npz",
                             "--out", "scored.csv")  # fmt: skip
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "scored.csv")["model"]) == {"semantic-domain"}


def test_learn_text_keeps_the_general_model_where_it_is_better(run_cli, tmp_path, test_data):
    """Yelp sentences are what the general head learnt from: the domain model does not beat it, so nothing changes."""
    _reviews(test_data, 240, 60).to_csv(tmp_path / "reviews.csv", index=False)
    assert run_cli("ingest", "reviews.csv", "--no-score")[0] == 0
    assert run_cli("score", "--model", "lexicon")[0] == 0
    code, out, err = run_cli("learn-text")
    assert code == 0, err
    assert "learnt from 240 rated texts" in out and "kept the general model for scoring" in out
    assert (tmp_path / "keymoments.text-model.npz").is_file()  # kept for the record, not used for scoring
    _reviews(test_data, 0, 310).tail(10).assign(customer_id=lambda d: "new-" + d["customer_id"]).to_csv(tmp_path / "more.csv", index=False)
    assert run_cli("ingest", "more.csv")[0] == 0
    from keymoments.store.store import Store

    with Store(tmp_path / "keymoments.duckdb") as s:
        new = s.query("SELECT t.model FROM events e JOIN text_scores t USING (event_id) WHERE e.customer_id LIKE 'new-%'")
    assert len(new) == 10 and "semantic-domain" not in set(new["model"])


def test_learn_text_needs_rated_text(run_cli, tmp_path, test_data):
    df = _reviews(test_data, 0, 20)
    df.to_csv(tmp_path / "unrated.csv", index=False)
    assert run_cli("ingest", "unrated.csv", "--no-score")[0] == 0
    code, out, err = run_cli("learn-text")
    assert code != 0 and "no events with both text and a rating to learn from" in err
    code, out, err = run_cli("score-text", "unrated.csv", "--text-col", "text", "--model", "missing.npz")
    assert code != 0 and "'missing.npz' does not exist; `keymoments learn-text` writes one" in err


def test_a_damaged_learnt_model_does_not_stop_scoring(run_cli, tmp_path, test_data):
    _reviews(test_data, 0, 5).to_csv(tmp_path / "few.csv", index=False)
    (tmp_path / "keymoments.text-model.npz").write_bytes(b"not a model")
    code, out, err = run_cli("ingest", "few.csv")
    assert code == 0, err
    assert "scored the text of 5 events" in out
    assert "warning: Cannot read the store's learnt text model 'keymoments.text-model.npz' (ConfigError)" in err
