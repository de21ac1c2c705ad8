"""The tagger learns from the analyst's corrections: corrections are stored (and survive a reopen), the tagger
refits at once and re-tags the store's texts from their cached vectors (a planted near-duplicate of a corrected
text follows it, unrelated texts do not), the active-learning order is least certain first, and the API's routes
answer who may list and correct."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keymoments.events import JourneyModel, Touchpoint
from keymoments.exceptions import InvalidParameterError, NotFoundError
from keymoments.score.corrections import correct, list_texts, refit
from keymoments.score.learning import CorrectionLearner, margin, softmax, uncertain_first
from keymoments.score.store import tag_store
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame

JOURNEY = JourneyModel(touchpoints=[
    Touchpoint(name="flight", description="The flight itself, delays, cabin crew, seats"),
    Touchpoint(name="baggage", description="Checked luggage, the carousel, lost or damaged bags"),
    Touchpoint(name="billing", description="Charges, fees, refunds and payments"),
])  # fmt: skip
TEXTS = [
    "the flight was two hours late", "the crew were rude on board", "cramped seats for a long flight",
    "my suitcase never showed up on the belt", "lost luggage again", "the bag came back torn",
    "I was charged twice for my ticket", "still waiting for my refund", "what is this fee on my card",
    "they charged me 60 dollars to check my suitcase", "they charged me 65 dollars to check my suitcases",
    "paid extra for a bag that then went missing", "the seat I paid for was broken",
]  # fmt: skip
PLANTED = "they charged me 60 dollars to check my suitcase"  # the zero-shot tagger says baggage; the analyst: billing
NEAR = "they charged me 65 dollars to check my suitcases"


def _store(path) -> Store:  # noqa: ANN001
    store = Store(path)
    rows = [{"customer_id": f"c{i % 5}", "ts": f"2024-01-01T10:{i:02d}:00Z", "text": t} for i, t in enumerate(TEXTS)]
    rows.append({"customer_id": "c9", "ts": "2024-01-02T10:00:00Z", "text": PLANTED})  # the same text twice
    ingest_events_frame(store, pd.DataFrame(rows))
    assert tag_store(store, JOURNEY) == len(rows)
    return store


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "km.duckdb"
    _store(path).close()
    return path


def _by_text(store: Store) -> dict[str, dict]:
    return {r["text"]: r for r in list_texts(store, limit=100)["texts"]}


def _tag_of_events(store: Store, text: str) -> list[str]:
    return store.query("SELECT touchpoint FROM events WHERE text = ? ORDER BY seq", [text])["touchpoint"].tolist()


def test_a_correction_is_stored_refits_at_once_and_survives_a_reopen(tagged, tmp_path):
    import shutil

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    store = Store(db)
    before = _by_text(store)
    assert before[PLANTED]["touchpoint"] == "baggage" and before[NEAR]["touchpoint"] == "baggage"
    assert before[PLANTED]["events"] == 2
    from keymoments.serve.cache import data_version

    version = data_version(store)
    done = correct(store, before[PLANTED]["id"], "billing", actor="ana")
    assert data_version(store) != version  # the server's cached analyses are recomputed: journeys changed
    assert done["text"]["touchpoint"] == "billing" and done["text"]["corrected"] is True
    assert done["refit"]["corrections"] == 1 and done["refit"]["texts"] == len(TEXTS)
    after = _by_text(store)
    # the planted near-duplicate follows the correction; texts about something else keep their tag
    assert after[NEAR]["touchpoint"] == "billing" and not after[NEAR]["corrected"]
    moved_to_billing = sum(after[t]["touchpoint"] == "billing" != before[t]["touchpoint"] for t in after if t != PLANTED)
    assert done["refit"]["others_now_this_tag"] == moved_to_billing >= 1  # "N other texts now billing"
    # each uncorrected text shows the next likeliest tag: its probability is the confidence minus the margin
    for t in after.values():
        if t["corrected"]:
            assert t["next_touchpoint"] is None and t["next_confidence"] is None
        else:
            assert t["next_touchpoint"] in {"flight", "baggage", "billing", "other"} - {t["touchpoint"]}
            assert t["next_confidence"] == pytest.approx(t["confidence"] - t["margin"], abs=2e-4), t
    for text in ("lost luggage again", "my suitcase never showed up on the belt", "the flight was two hours late"):
        assert after[text]["touchpoint"] == before[text]["touchpoint"], text
    # both events with the corrected text, and the near-duplicate's event, moved; their journeys were re-derived
    assert _tag_of_events(store, PLANTED) == ["billing", "billing"] and _tag_of_events(store, NEAR) == ["billing"]
    nxt = store.query("SELECT e.next_touchpoint, n.touchpoint AS want FROM events e JOIN events n "
                      "ON n.journey_id = e.journey_id AND n.step = e.step + 1")  # fmt: skip
    assert (nxt["next_touchpoint"] == nxt["want"]).all()
    store.close()

    store = Store(db)  # reopened: the correction, its author and the tags are still there
    rows = store.query("SELECT event_id, text_hash, touchpoint, actor, corrected_at FROM text_corrections")
    assert rows[["event_id", "touchpoint", "actor"]].values.tolist() == [[before[PLANTED]["id"], "billing", "ana"]]
    assert len(rows["text_hash"].iloc[0]) == 64 and rows["corrected_at"].notna().all()
    again = _by_text(store)
    assert again[PLANTED]["corrected"] and again[NEAR]["touchpoint"] == "billing"
    assert refit(store).changed == 0  # refitting again from the stored corrections gives the same tags
    store.close()


def test_unknown_text_and_touchpoint_are_refused_with_what_to_do(tagged, tmp_path):
    import shutil

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    with Store(db) as store:
        some = list_texts(store)["texts"][0]["id"]
        with pytest.raises(NotFoundError, match="No tagged text with id 'nope'"):
            correct(store, "nope", "billing")
        with pytest.raises(InvalidParameterError, match="Did you mean 'baggage'"):
            correct(store, some, "bagage")
        assert store.count("text_corrections") == 0  # a refused correction leaves nothing behind
        with pytest.raises(InvalidParameterError, match="'order' parameter must be one of"):
            list_texts(store, order="random")


def test_the_store_lists_the_least_certain_first_and_corrected_texts_last(tagged, tmp_path):
    import shutil

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    with Store(db) as store:
        page = list_texts(store, limit=100)
        m = [t["margin"] for t in page["texts"]]
        assert m == sorted(m) and page["touchpoints"] == ["flight", "baggage", "billing", "other"]
        correct(store, page["texts"][0]["id"], page["texts"][0]["touchpoint"])  # a confirmation counts too
        page = list_texts(store, limit=100)["texts"]
        assert page[-1]["corrected"] and not any(t["corrected"] for t in page[:-1])
        assert [t["margin"] for t in page[:-1]] == sorted(t["margin"] for t in page[:-1])
        only = list_texts(store, tag="billing", limit=100)
        assert only["texts"] and all(t["touchpoint"] == "billing" for t in only["texts"])


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(2, 6)), elements=st.floats(-8, 8)))
def test_active_learning_order_is_least_certain_first(logits):
    p = softmax(logits)
    order = uncertain_first(p)
    assert sorted(order.tolist()) == list(range(len(p)))
    gaps = margin(p)[order]
    assert (np.diff(gaps) >= -1e-12).all()
    top2 = np.sort(p, axis=1)[:, -2:]
    assert np.allclose(margin(p), top2[:, 1] - top2[:, 0])


def test_without_corrections_the_learner_is_the_zero_shot_prior():
    rng = np.random.default_rng(0)
    prior, x = rng.normal(size=(20, 4)) * 3, rng.normal(size=(20, 8))
    learner = CorrectionLearner().fit(prior, x, np.full(20, -1))
    assert np.allclose(learner.predict_logits(prior, x), prior)


def test_the_api_lists_and_corrects_with_the_one_permission_table(tagged, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    store = Store(db)
    keys = {r: create_key(store, r)[1] for r in ("admin", "analyst", "agent")}
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        def h(role: str) -> dict[str, str]:
            return {"X-API-Key": keys[role]}

        r = client.get("/api/v1/texts", params={"order": "uncertain", "limit": 5}, headers=h("analyst"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(TEXTS) and len(body["texts"]) == 5
        assert [t["margin"] for t in body["texts"]] == sorted(t["margin"] for t in body["texts"])
        first = body["texts"][0]["id"]
        assert client.get("/api/v1/texts", headers=h("agent")).status_code == 403
        assert client.get("/api/v1/texts").status_code == 401
        assert client.post(f"/api/v1/texts/{first}/tag", json={"touchpoint": "billing"}, headers=h("agent")).status_code == 403
        assert client.post(f"/api/v1/texts/{first}/tag", json={"touchpoint": "billing"}).status_code == 401
        assert store.count("text_corrections") == 0
        r = client.post("/api/v1/texts/nope/tag", json={"touchpoint": "billing"}, headers=h("analyst"))
        assert r.status_code == 404 and "No tagged text" in r.json()["error"]
        r = client.post(f"/api/v1/texts/{first}/tag", json={"touchpoint": "biling"}, headers=h("analyst"))
        assert r.status_code == 422 and "Did you mean 'billing'" in r.json()["error"]
        r = client.post(f"/api/v1/texts/{first}/tag", json={"touchpoint": "billing"}, headers=h("analyst"))
        assert r.status_code == 200 and r.json()["text"]["touchpoint"] == "billing" and r.json()["refit"]["corrections"] == 1
        assert client.get("/api/v1/texts", params={"tag": "biling"}, headers=h("admin")).status_code == 422
    store.close()


def test_the_cli_lists_least_certain_first_and_corrects(tagged, tmp_path, capsys):
    import json
    import shutil

    from keymoments.cli import main

    db = str(tmp_path / "km.duckdb")
    shutil.copyfile(tagged, db)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("texts", "--uncertain", "--limit", "5", "--db", db, "--json")
    page = json.loads(out)
    assert code == 0 and len(page["texts"]) == 5 and page["total"] == len(TEXTS)
    assert [t["margin"] for t in page["texts"]] == sorted(t["margin"] for t in page["texts"])
    near = next(t for t in json.loads(run("texts", "list", "--limit", "100", "--db", db, "--json")[1])["texts"]
                if t["text"] == PLANTED)  # fmt: skip
    code, out, _ = run("texts", "tag", near["id"], "billing", "--db", db)
    assert code == 0 and "tagged billing" in out and "Refitted on 1 corrections" in out
    code, out, err = run("texts", "tag", near["id"], "biling", "--db", db)
    assert code == 2 and out == "" and "Did you mean 'billing'" in err
    with Store(db) as store:
        assert store.query("SELECT actor FROM text_corrections")["actor"].str.startswith("cli:").tolist() == [True]
        assert _by_text(store)[NEAR]["touchpoint"] == "billing"


def test_texts_that_arrive_after_a_correction_are_tagged_by_the_refitted_tagger(tagged, tmp_path):
    import shutil

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    with Store(db) as store:
        correct(store, _by_text(store)[PLANTED]["id"], "billing")
        later = [{"customer_id": "c20", "ts": "2024-02-01T10:00:00Z", "text": PLANTED},  # a known, corrected text
                 {"customer_id": "c20", "ts": "2024-02-01T11:00:00Z", "text": "they charged me 70 dollars to check my suitcase"},
                 {"customer_id": "c20", "ts": "2024-02-01T12:00:00Z", "text": "my luggage never arrived"}]  # fmt: skip
        ingest_events_frame(store, pd.DataFrame(later))
        assert tag_store(store, JOURNEY) == 3
        got = store.query("SELECT text, touchpoint FROM events WHERE customer_id = 'c20' ORDER BY ts")
        assert got["touchpoint"].tolist() == ["billing", "billing", "baggage"]
        assert _by_text(store)["they charged me 70 dollars to check my suitcase"]["touchpoint"] == "billing"


def test_a_read_only_store_refuses_a_correction_with_409_and_says_what_to_do(tagged, tmp_path):
    """`serve --workers N` opens the DuckDB file read-only: the API answers 409 with the way out, the page hides
    the re-tag forms and says why, and a posted form gets the same message, not a store error."""
    import shutil

    from fastapi.testclient import TestClient

    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key

    db = tmp_path / "km.duckdb"
    shutil.copyfile(tagged, db)
    with Store(db) as store:
        key = create_key(store, "analyst")[1]
    store = Store(db, read_only=True)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        first = client.get("/api/v1/texts", headers={"X-API-Key": key}).json()["texts"][0]["id"]
        r = client.post(f"/api/v1/texts/{first}/tag", json={"touchpoint": "billing"}, headers={"X-API-Key": key})
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["ok"] is False and body["error"].startswith("Corrections need a writable store")
        assert "without --workers" in body["error"] and "not on PostgreSQL" in body["error"]
        client.cookies.set("km_key", key)
        page = client.get("/texts")
        assert page.status_code == 200 and 'id="read-only"' in page.text and "Corrections need a writable store" in page.text
        assert 'class="retag"' not in page.text  # no form that can only fail
        r = client.post(f"/texts/{first}/tag", data={"touchpoint": "billing", "back": "/texts"}, follow_redirects=False)
        assert r.status_code == 409 and "Corrections need a writable store" in r.text
    store.close()
    with Store(db) as store:
        assert store.count("text_corrections") == 0


def test_texts_tagged_without_a_vector_are_counted_then_backfilled_and_correctable(tmp_path, capsys):
    """Texts the word-list tagger tagged (or tagged before the vectors were cached) have no vector: the page, the
    API and the CLI say how many are not listed and which command adds them; `texts backfill` encodes them, and
    they are listed and correctable. An event whose touchpoint came with the data is never re-tagged."""
    from keymoments.cli import main
    from keymoments.exceptions import ConfigError
    from keymoments.score.store import backfill_texts
    from keymoments.score.tagging import LexicalTagger

    db = tmp_path / "km.duckdb"
    store = Store(db)
    rows = [{"customer_id": f"c{i % 5}", "ts": f"2024-01-01T10:{i:02d}:00Z", "text": t} for i, t in enumerate(TEXTS)]
    rows.append({"customer_id": "c9", "ts": "2024-01-02T10:00:00Z", "text": PLANTED})
    rows.append({"customer_id": "c9", "ts": "2024-01-02T11:00:00Z", "text": "lost luggage again", "touchpoint": "flight"})
    ingest_events_frame(store, pd.DataFrame(rows))
    with store.write() as con:  # scored texts, as a store's are: the inferred tag is recorded beside the emotions
        con.execute("INSERT INTO text_scores SELECT event_id, 'test', 0.0, 0.5, 'neutral', NULL, now() FROM events")
    assert tag_store(store, JOURNEY, tagger=LexicalTagger(JOURNEY).fit()) == len(TEXTS) + 1
    page = list_texts(store, limit=100)
    assert page["total"] == 0 and (page["unlisted"], page["unlisted_events"]) == (len(TEXTS), len(TEXTS) + 1)
    from fastapi.testclient import TestClient

    from keymoments.config import Settings
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key

    key = create_key(store, "analyst")[1]
    # no background scorer: it would score and tag these texts a moment after start-up, racing the two reads
    with TestClient(create_app(store, Settings(score_api_text=False)), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/texts", headers={"X-API-Key": key}).json()["unlisted"] == len(TEXTS)
        client.cookies.set("km_key", key)
        notice = client.get("/texts").text
        assert f'id="unlisted">{len(TEXTS)} tagged texts ({len(TEXTS) + 1} events) are not listed' in notice
        assert "keymoments texts backfill" in notice
    store.close()

    with pytest.raises(SystemExit) as exit_:
        main(["texts", "--db", str(db)])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    assert f"{len(TEXTS)} more tagged texts ({len(TEXTS) + 1} events) are not listed" in out
    assert "keymoments texts backfill" in out

    import yaml

    journey = tmp_path / "journey.yaml"
    journey.write_text(yaml.safe_dump(JOURNEY.model_dump(mode="json", exclude_defaults=True)))
    with pytest.raises(SystemExit) as exit_:
        main(["texts", "backfill", "--db", str(db), "--journey", str(journey)])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and out.startswith(f"{len(TEXTS)} texts listed now;"), out
    with Store(db) as store:
        page = list_texts(store, limit=100)
        assert page["total"] == len(TEXTS) and page["unlisted"] == 0
        listed = {t["text"]: t for t in page["texts"]}
        assert listed[PLANTED]["events"] == 2 and listed[PLANTED]["touchpoint"] == "baggage"  # the semantic tag
        # the events follow the tag in force; the event given 'flight' by the data keeps it
        assert store.query("SELECT touchpoint FROM events WHERE text = 'lost luggage again' ORDER BY seq")[
            "touchpoint"].tolist() == [listed["lost luggage again"]["touchpoint"], "flight"]  # fmt: skip
        assert backfill_texts(store, JOURNEY) is None  # nothing left to add
        correct(store, listed[PLANTED]["id"], "billing")
        assert _tag_of_events(store, PLANTED) == ["billing", "billing"]
        # a later word-list-tagged text, backfilled with another journey: refused, the cache is kept
        ingest_events_frame(store, pd.DataFrame([{"customer_id": "c7", "ts": "2024-03-01T10:00:00Z", "text": "my bag is lost"}]))
        with store.write() as con:
            con.execute("INSERT INTO text_scores SELECT event_id, 'test', 0.0, 0.5, 'neutral', NULL, now() FROM events "
                        "WHERE customer_id = 'c7'")  # fmt: skip
        tag_store(store, JOURNEY, tagger=LexicalTagger(JOURNEY).fit())
        other = JourneyModel(touchpoints=[Touchpoint(name="flight", description="The flight"),
                                          Touchpoint(name="luggage", description="Bags")])  # fmt: skip
        with pytest.raises(ConfigError, match=r"tagged over \['flight', 'baggage', 'billing', 'other'\]; .*--journey"):
            backfill_texts(store, other)
        assert list_texts(store, limit=100)["total"] == len(TEXTS) and store.count("text_corrections") == 1


def test_the_prior_weight_chosen_on_the_corrections_follows_a_real_rule_and_ignores_noise():
    """The store's learner weighs its learnt logits against the zero-shot prior by cross-validation on the
    corrections themselves: corrections that follow a rule the prior does not know are followed (weight 1);
    corrections that are noise leave the prior in charge, where the head alone would follow the noise."""
    from keymoments.score.corrections import learner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # a rule in the vectors that the prior (class 0 for every text) does not know
    prior = np.zeros((80, 3))
    prior[:, 0] = 2.0
    rule = np.where(x[:, 0] > 0, 1, 2)
    labels = np.full(80, -1)
    labels[:40] = rule[:40]
    fitted = learner().fit(prior, x, labels)
    assert fitted.mix_ == 1.0
    assert np.mean(fitted.predict_proba(prior[40:], x[40:]).argmax(axis=1) == rule[40:]) >= 0.9
    # noise: 30 random labels against a weak prior that is right
    truth = rng.integers(0, 3, 80)
    prior = np.eye(3)[truth]
    labels = np.full(80, -1)
    labels[:30] = rng.integers(0, 3, 30)
    fitted = learner().fit(prior, x, labels)
    assert fitted.mix_ <= 0.25
    assert np.mean(fitted.predict_proba(prior[30:], x[30:]).argmax(axis=1) == truth[30:]) >= 0.9
    unguarded = CorrectionLearner("offset", l2=0.05, bias_l2=1.0).fit(prior, x, labels)
    assert np.mean(unguarded.predict_proba(prior[30:], x[30:]).argmax(axis=1) == truth[30:]) < 0.6
    # under 10 corrections (two per fold) there is nothing to cross-validate: the head is used as fitted
    labels[9:] = -1
    assert learner().fit(prior, x, labels).mix_ == 1.0
    from keymoments.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"The 'select' parameter of CorrectionLearner must be one of \['none', 'l2', 'mix'\]"):
        CorrectionLearner(select="cv").fit(prior, x, labels)
    with pytest.raises(ConfigError, match="The 'bias_l2' parameter of CorrectionLearner must be > 0"):
        CorrectionLearner(bias_l2=0.0).fit(prior, x, labels)
