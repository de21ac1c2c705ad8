"""`ingest --engine spark`: the store's Parquet dataset gets the same events, derived columns, duplicates and
rejects as the embedded store, with Spark computing step / next touchpoint over the journeys a batch touches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from keymoments.engine import ingest_to_spark
from keymoments.ingest.files import frame_source
from keymoments.store.schema import EVENT_COLUMNS
from keymoments.store.spark import SparkStore
from keymoments.store.store import Store
from keymoments.store.writer import ingest_source


def _halves(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two batches that share journeys: the second brings events that fall before, between and after the
    first's, so appending it moves old rows' steps and next touchpoints."""
    pick = np.random.default_rng(7).random(len(events)) < 0.5
    return events[pick].reset_index(drop=True), events[~pick].reset_index(drop=True)


def _events(store) -> pd.DataFrame:
    if isinstance(store, SparkStore):
        df = store.events_frame().drop("event_date").toPandas()
    else:
        df = store.query("SELECT * FROM events")
    df = df[list(EVENT_COLUMNS)].sort_values("event_id").reset_index(drop=True)
    for c in ("ts", "next_ts"):
        df[c] = pd.to_datetime(df[c], utc=True).astype("datetime64[us, UTC]")  # one resolution for both
    df["attrs"] = df["attrs"].map(lambda a: None if pd.isna(a) else json.loads(a))
    for c in df.columns:  # one missing value for text whatever the engine hands back (None, NaN, pd.NA)
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_datetime64_any_dtype(df[c])):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


@pytest.fixture(scope="module")
def ingested(demo, spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ingest")
    first, second = _halves(demo.events)
    duck = Store(folder / "duck.duckdb")
    sp = SparkStore(folder / "km.duckdb", session=spark)
    answers = []
    for half in (first, second):
        d = ingest_source(duck, frame_source(half))
        s = ingest_to_spark(sp, frame_source(half), score=False)
        answers.append((d, s))
    yield duck, sp, answers, first, folder
    duck.close()
    sp.close()


@pytest.mark.slow
def test_the_dataset_holds_the_stores_events_with_the_same_derived_columns(ingested):
    duck, sp, answers, _, _ = ingested
    for d, s in answers:
        assert (s.accepted, s.duplicates, s.rejected) == (d.accepted, d.duplicates, d.rejected)
    a, b = _events(duck), _events(sp)
    assert len(a) == len(b) > 1000
    # the second batch moved rows written by the first: that is what the comparison has to get right
    assert (a["batch_id"] == 1).any() and (a["batch_id"] == 2).any()
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.slow
def test_the_dataset_is_partitioned_by_event_date(ingested):
    _, sp, _, _, _ = ingested
    parts = sorted(p.name for p in sp.events_path.iterdir() if p.is_dir())
    assert parts and all(p.startswith("event_date=20") for p in parts)
    day = sp.events_frame().where("event_date = '2025-03-01'").toPandas()
    assert len(day) and (pd.to_datetime(day["ts"], utc=True).dt.strftime("%Y-%m-%d") == "2025-03-01").all()


@pytest.mark.slow
def test_reingesting_a_batch_adds_nothing(ingested):
    _, sp, _, first, _ = ingested
    before = sp.count("events")
    again = ingest_to_spark(sp, frame_source(first), score=False)
    assert (again.accepted, again.duplicates) == (0, len(first))
    assert sp.count("events") == before


@pytest.mark.slow
def test_bad_rows_are_rejected_with_their_reason_and_the_rest_goes_in(spark, tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text(
        "customer_id,ts,touchpoint,rating,rating_scale\n"
        "c1,2025-01-01T10:00:00Z,booking,5,csat5\n"
        "c1,not a time,check-in,4,csat5\n"
        "c1,2025-01-02T10:00:00Z,boarding,9,csat5\n"
        "c2,2025-01-03T10:00:00Z,booking,2,csat5\n"
    )
    import keymoments as km

    with km.connect(tmp_path / "km.duckdb", engine="spark", session=spark) as eng:  # the Python API
        r = eng.ingest(csv, rejects=tmp_path / "rejects.csv")
        assert (r.accepted, r.rejected) == (2, 2)
        assert eng.count() == 2 and eng.engine == "spark"
        ev = _events(eng.store)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert len(rejects) == 2 and rejects["reason"].notna().all()  # one line each, with its reason
    assert list(ev["touchpoint"]) == ["booking", "booking"] and ev["valence"].notna().all()


@pytest.mark.slow
def test_analyses_on_the_ingested_dataset_equal_the_stores(ingested, demo):
    from keymoments.analyze.journey import JourneyMap

    duck, sp, _, _, _ = ingested
    sp.refresh()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert JourneyMap(demo.journey).fit(sp).to_json() == JourneyMap(demo.journey).fit(duck).to_json()
