"""Events that come without a touchpoint get one from their text; the store keeps its derived columns right.

The store's own placed texts teach the tagger (planted: baggage and flight complaints with their touchpoint),
and the text-only events must land on the touchpoint their words name.
"""

from __future__ import annotations

import json

import pandas as pd

from keymoments.engine import Engine
from keymoments.events import JourneyModel, Touchpoint
from keymoments.score.store import score_store, store_journey, tag_store
from keymoments.store.store import Store
from keymoments.store.writer import ingest_events_frame

BAGGAGE = ["my suitcase never showed up on the belt", "the bag came back torn", "lost luggage again",
           "waited an hour at the carousel for my bags", "the zip of my case was broken on arrival"]  # fmt: skip
FLIGHT = ["the flight was two hours late", "bumpy flight and no drinks served", "the crew were rude on board",
          "our plane sat on the tarmac for ages", "cramped seats for a long flight"]  # fmt: skip


def _events() -> pd.DataFrame:
    rows = []
    for i in range(20):
        c = f"c{i}"
        rows.append({"customer_id": c, "ts": f"2024-01-01T10:{i:02d}:00Z", "touchpoint": "booking", "rating": 4})
        rows.append({"customer_id": c, "ts": f"2024-01-02T10:{i:02d}:00Z", "touchpoint": "flight", "text": FLIGHT[i % 5]})
        rows.append({"customer_id": c, "ts": f"2024-01-02T12:{i:02d}:00Z", "touchpoint": "baggage", "text": BAGGAGE[i % 5]})
    # text-only events, in the middle of two journeys and at the end of a third
    rows.append({"customer_id": "c0", "ts": "2024-01-02T11:00:00Z", "text": "they left my bag in Frankfurt and the belt stopped"})
    rows.append({"customer_id": "c1", "ts": "2024-01-01T12:00:00Z", "text": "the pilot said we would be late landing, the flight was delayed"})
    rows.append({"customer_id": "c2", "ts": "2024-01-03T09:00:00Z", "text": "still no sign of my luggage, three days later"})
    df = pd.DataFrame(rows)
    df["rating_scale"] = df["rating"].map(lambda r: "csat5" if pd.notna(r) else None)
    return df


def _derived_from_scratch(store: Store) -> pd.DataFrame:
    return store.query("""
        SELECT event_id, step, next_touchpoint, is_last,
               CAST(row_number() OVER w AS INTEGER) AS want_step, lead(touchpoint) OVER w AS want_next,
               lead(ts) OVER w IS NULL AS want_last
        FROM events WINDOW w AS (PARTITION BY journey_id ORDER BY ts, seq)
    """)


def test_text_only_events_get_the_touchpoint_their_words_name(tmp_path):
    store = Store(tmp_path / "km.duckdb")
    ingest_events_frame(store, _events())
    score_store(store, scorer="lexicon")
    journey = store_journey(store)
    assert journey is not None and journey.order == ["booking", "flight", "baggage"]  # journey order, by median step
    assert sorted(journey.touchpoint("flight").examples) == sorted(FLIGHT)  # each text once: 5 distinct of 20
    assert journey.touchpoint("booking").examples == []

    assert tag_store(store) == 3
    got = store.query("SELECT customer_id, touchpoint FROM events WHERE text LIKE '%Frankfurt%' OR text LIKE '%pilot%' "
                      "OR text LIKE '%three days%' ORDER BY customer_id")  # fmt: skip
    assert got["touchpoint"].tolist() == ["baggage", "flight", "baggage"]
    # the derived columns are what a fresh window over the whole store gives (the previous event's next changed)
    d = _derived_from_scratch(store)
    assert (d["step"] == d["want_step"]).all() and (d["is_last"] == d["want_last"]).all()
    assert (d["next_touchpoint"].fillna("-") == d["want_next"].fillna("-")).all()
    c0 = store.query("SELECT touchpoint, next_touchpoint FROM events WHERE customer_id = 'c0' ORDER BY step")
    assert c0.fillna("-").values.tolist() == [["booking", "flight"], ["flight", "baggage"], ["baggage", "baggage"], ["baggage", "-"]]
    # the tags say the touchpoint was inferred, with its confidence, next to the text's emotions
    tags = json.loads(store.query("SELECT t.tags FROM text_scores t JOIN events e USING (event_id) "
                                  "WHERE e.text LIKE '%Frankfurt%'")["tags"].iloc[0])  # fmt: skip
    assert tags["touchpoint"] == "baggage" and tags["touchpoint_inferred"] is True and 0 < tags["touchpoint_confidence"] <= 1
    assert tags["emotion"] in ("none", "anger", "anxiety", "gratitude", "delight") and "emotion_anger" in tags
    # done once: nothing left to tag
    assert tag_store(store) == 0
    store.close()


def test_a_given_journey_model_is_used_and_a_store_without_touchpoints_is_left_alone(tmp_path):
    store = Store(tmp_path / "km.duckdb")
    texts = ["my bag was lost at the carousel", "the flight left three hours late", "why??"]
    ingest_events_frame(store, pd.DataFrame({"customer_id": ["a", "b", "c"], "ts": ["2024-01-01T10:00:00Z"] * 3, "text": texts}))
    assert store_journey(store) is None
    assert tag_store(store) == 0  # no touchpoint known anywhere: nothing to tag with
    assert store.query("SELECT count(*) AS n FROM events WHERE touchpoint IS NULL")["n"].iloc[0] == 3
    journey = JourneyModel(touchpoints=[Touchpoint(name="flight", description="The flight: delays, crew, seats."),
                                        Touchpoint(name="baggage", description="Checked bags: lost, late or damaged luggage.")])  # fmt: skip
    assert tag_store(store, journey) == 3
    got = store.query("SELECT text, touchpoint FROM events ORDER BY text")
    assert dict(zip(got["text"], got["touchpoint"], strict=True)) == {
        "my bag was lost at the carousel": "baggage", "the flight left three hours late": "flight", "why??": "other",
    }  # fmt: skip
    store.close()


def test_the_engine_tags_when_it_scores(tmp_path):
    engine = Engine(tmp_path / "km.duckdb")
    engine.ingest(_events())
    left = engine.store.query("SELECT count(*) AS n FROM events WHERE touchpoint IS NULL")["n"].iloc[0]
    assert left == 0
    engine.close()


def test_text_tags_give_each_event_its_emotion_and_whether_its_touchpoint_was_inferred(tmp_path):
    from keymoments.store.scores import text_tags

    store = Store(tmp_path / "km.duckdb")
    ingest_events_frame(store, pd.DataFrame({
        "customer_id": ["a", "a", "b"], "ts": ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "2024-01-01T10:00:00Z"],
        "touchpoint": ["flight", None, "flight"],
        "text": ["Worst airline ever, I am furious, absolutely disgusting service!!!", "my bag is lost at the carousel", None],
    }))  # fmt: skip
    score_store(store, scorer="lexicon")
    journey = JourneyModel(touchpoints=[Touchpoint(name="flight"), Touchpoint(name="baggage", description="lost bags")])
    assert tag_store(store, journey) == 1
    ids = store.query("SELECT event_id, coalesce(text, '') AS text FROM events ORDER BY customer_id, ts")
    got = text_tags(store, ids["event_id"].tolist()).set_index("event_id")
    furious, lost, silent = ids["event_id"].tolist()
    assert got.loc[furious, "emotion"] == "anger" and not got.loc[furious, "touchpoint_inferred"]
    assert got.loc[lost, "touchpoint_inferred"] and silent not in got.index  # no text, no text score
    assert text_tags(store, []).empty
    store.close()
