"""The findings of issue 16 on data of other shapes (items 3-7), each pinned by a test that failed before its fix.

The stores are the fixture shapes (builders.py): a CSAT survey ingested with ``ingest-survey``, purchases with
amounts and no rating or text, the demo airline.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from keymoments.exceptions import NotEnoughDataError
from keymoments.store.store import Store

SURVEY_ORDER = ["Booking", "Check-in", "Flight", "Baggage"]  # the --touchpoints the survey was ingested with


@pytest.fixture
def open_shape(shape_db):
    opened: list[Store] = []

    def get(name: str) -> Store:
        s = Store(shape_db(name), read_only=True)
        opened.append(s)
        return s

    yield get
    for s in opened:
        s.close()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- item 3: the report ------------------------------------------------------------------------------------
def test_report_on_purchases_without_ratings_or_text(open_shape):
    """It crashed with TypeError: '>' not supported between 'NoneType' and 'float' in the template."""
    from keymoments.serve.report import build_report

    html = build_report(open_shape("purchases"))
    assert "no rated events" in html and "Mean emotion" in html


# -- item 4: a survey is not a journey --------------------------------------------------------------------------
def test_the_store_knows_a_survey_has_no_time_order(open_shape):
    from keymoments.analyze.order import journeys_time_ordered, time_order

    survey = time_order(open_shape("survey"))
    assert not survey.ordered and survey.timed == 0 and survey.journeys == 160
    assert "share one timestamp" in survey.reason
    assert journeys_time_ordered(open_shape("demo")) and journeys_time_ordered(open_shape("purchases"))


def _untimed(rows: list[tuple[str, list[str]]]) -> pd.DataFrame:
    t0 = pd.Timestamp("2024-05-01", tz="UTC")
    return pd.DataFrame([{"customer_id": r, "ts": t0, "touchpoint": tp, "rating": 4, "rating_scale": "csat5",
                          "valence": 0.5} for r, tps in rows for tp in tps])  # fmt: skip


def test_journey_keeps_the_order_given_when_respondents_skip_questions():
    """Respondents who answered C skipped A and B, so C's median position (1) came before B's (2): the map drew
    A, C, B, D. The order given is A, B, C, D, and with no time order it is the one kept."""
    from keymoments.analyze.journey import JourneyMap

    rows = [(f"x{i}", ["A", "B", "D"]) for i in range(30)] + [(f"y{i}", ["C", "D"]) for i in range(30)]
    rows += [(f"z{i}", ["A", "B", "C", "D"]) for i in range(10)]
    jm = JourneyMap().fit(_untimed(rows))
    assert jm.order_ == ["A", "B", "C", "D"] and not jm.time_ordered_
    assert list(jm.figure().layout.xaxis.categoryarray) == ["A", "B", "C", "D"]
    assert jm.transitions_.empty and jm.drop_offs_.empty  # no "usual end" of a survey
    assert jm.to_dict()["time_ordered"] is False and "no time order" in jm.to_dict()["note"]


def test_survey_touchpoints_keep_the_given_order_everywhere(open_shape):
    from keymoments.analyze.journey import JourneyMap
    from keymoments.analyze.moments import MomentsOfTruth
    from keymoments.analyze.roadmap import Roadmap

    store = open_shape("survey")
    assert JourneyMap().fit(store).order_ == SURVEY_ORDER
    mot = MomentsOfTruth("recommend", n_boot=100).fit(store)
    assert mot.order_ == SURVEY_ORDER
    rm = Roadmap.from_moments(mot)
    assert list(rm.curve_["touchpoint"]) == SURVEY_ORDER
    assert list(rm.figure().layout.xaxis.categoryarray) == SURVEY_ORDER


def test_no_first_impression_or_ending_is_inferred_from_a_survey(open_shape):
    """The first column was called the first_impression and the last one the ending."""
    from keymoments.analyze.moments import MomentsOfTruth

    mot = MomentsOfTruth("recommend", n_boot=100).fit(open_shape("survey"))
    flags = {f for fs in mot.characteristics_.values() for f in fs}
    assert not flags & {"first_impression", "ending"}
    for flag in ("first_impression", "ending"):
        assert mot.characteristics_how_[flag].startswith("not inferred: the journeys have no time order")


def test_a_journey_model_still_names_the_ending_of_a_survey(open_shape):
    from keymoments.analyze.moments import MomentsOfTruth
    from keymoments.events import JourneyModel

    jm = JourneyModel.model_validate({"touchpoints": [{"name": "Baggage", "ending": True}]})
    mot = MomentsOfTruth("recommend", journey=jm, n_boot=100).fit(open_shape("survey"))
    assert "ending" in mot.characteristics_["Baggage"]


def test_peak_end_explains_why_it_does_not_apply_to_a_survey(open_shape):
    """It reported an 'end' model that was just the last column."""
    from keymoments.analyze.peak_end import PeakEnd

    with pytest.raises(NotEnoughDataError, match=r"share one timestamp \(a survey answered at once\), so there is no ending"):
        PeakEnd("recommend").fit(open_shape("survey"))


# -- item 5: segments -----------------------------------------------------------------------------------------
def test_segments_invent_no_spend_and_show_the_outcome_rates(open_shape, km, shape_db):
    """It printed 'spend = paid', 0.000 for every tier and 'ratio None' on a survey without spend."""
    from keymoments.analyze.segments import Segments

    seg = Segments().fit(open_shape("survey"))
    assert seg.spend_column_ is None and "mean_spend" not in seg.tiers_.columns
    assert seg.outcomes_ == ["recommend"] and seg.whatif_["on"] == "recommend" and seg.whatif_["unit"] == "customers"
    rates = seg.tiers_.set_index("tier")["recommend_rate"]
    assert rates["happy"] > rates["middling"] > rates["unhappy"]  # as the survey was generated
    code, out, err = km("segments", "--db", shape_db("survey"))
    assert code == 0 and "spend = paid" not in out and "None" not in out and "0.000 │" not in out
    out = " ".join(out.split())  # the title wraps
    assert "no spend (name one with --spend)" in out and "recommend_rate" in out and "%" in out
    assert "What-if on recommend (customers)" in out


def test_segments_take_a_binary_outcome_as_spend_and_the_named_outcome(open_shape):
    """A yes/no outcome given as --spend was refused."""
    from keymoments.analyze.segments import Segments

    seg = Segments(spend="recommend", outcome="recommend").fit(open_shape("survey"))
    assert seg.spend_column_ == "recommend" and seg.whatif_["unit"] == "customers"
    demo = Segments(outcome="repurchased_90d").fit(open_shape("demo"))
    assert demo.spend_column_ == "spend_next_12m" and demo.outcomes_ == ["repurchased_90d"]
    assert "retained_rate" not in demo.tiers_.columns and "repurchased_90d_rate" in demo.tiers_.columns


# -- item 6: recovery without crises ------------------------------------------------------------------------------
def test_recovery_without_crises_says_so_in_one_line(km, shape_db):
    """It printed empty tables, 'rests on 0 observations' warnings and {'compensation_recovered': np.float64(0.0)…}."""
    code, out, err = km("recovery", "--outcome", "recommend", "--db", shape_db("survey"))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: No crises in the data: no event has an outcome (the events' `outcome` column, e.g. failed, "
        "cancelled, delayed, lost), so there is nothing to recover from; load it with the events "
        "(`--map COLUMN=outcome`)."
    ]


def test_recovery_prints_its_cost_as_money(km, shape_db):
    code, out, err = km("recovery", "--outcome", "retained", "--db", shape_db("demo"))
    assert code == 0 and "np.float64" not in out and "Cost of recovery:" in out and "Verdict:" in out


# -- item 7: purchases ----------------------------------------------------------------------------------------
def test_purchase_milestones_are_the_2nd_3rd_5th_purchase(open_shape):
    """Only journey_1 and anniversaries came out: every customer is one journey, and counts began at 5."""
    from keymoments.analyze.milestones import Milestones

    ms = Milestones().fit(open_shape("purchases"))
    names = set(ms.milestones_["milestone"])
    assert {"purchase_2", "purchase_3", "purchase_5"} <= names
    assert not any(n.startswith("journey_") for n in names)  # a purchase log's journey is the customer
    events = open_shape("purchases").query("SELECT customer_id, count(*) AS n FROM events GROUP BY 1")
    assert ms.milestones_.set_index("milestone").loc["purchase_2", "customers"] == int((events["n"] >= 2).sum())


def test_spend_thresholds_come_from_the_data(open_shape):
    """They were fixed at 1,000 / 5,000 / 10,000 / 50,000 whatever the currency and basket."""
    from keymoments.analyze.milestones import Milestones, nice

    store = open_shape("purchases")
    totals = store.query("SELECT customer_id, sum(value) AS t FROM events WHERE value > 0 GROUP BY 1")["t"]
    expected = sorted({nice(float(np.quantile(totals, q))) for q in (0.5, 0.75, 0.9, 0.99)})
    ms = Milestones().fit(store)
    assert ms.spend_thresholds_ == expected and max(expected) < 1000
    assert {f"spend_{x:g}" for x in expected[:2]} <= set(ms.milestones_["milestone"])


def test_anniversaries_only_where_the_customers_history_spans_them(open_shape):
    """One-off customers got 1-, 2- and 3-year anniversaries of their single purchase."""
    from keymoments.analyze.milestones import milestone_crossings

    store = open_shape("purchases")
    cr = milestone_crossings(store)
    days = store.query("SELECT customer_id, count(DISTINCT CAST(ts AS DATE)) AS d, max(ts) AS last FROM events GROUP BY 1")
    one_off = set(days.loc[days["d"] == 1, "customer_id"])
    ann = cr[cr["kind"] == "tenure"]
    assert one_off and not set(ann["customer_id"]) & one_off
    last = days.set_index("customer_id")["last"]
    late = pd.to_datetime(ann["ts"], utc=True).to_numpy() > (pd.to_datetime(last.reindex(ann["customer_id"]), utc=True) + pd.DateOffset(years=1)).to_numpy()
    assert not late.any()


def test_time_to_second_purchase(open_shape):
    from keymoments.analyze.milestones import Milestones

    store = open_shape("purchases")
    s = Milestones().fit(store).second_
    firsts = store.query("""SELECT customer_id, min(ts) AS a, count(*) AS n,
                            (SELECT min(ts) FROM events e2 WHERE e2.customer_id = e.customer_id AND e2.ts > min(e.ts)) AS b
                            FROM events e GROUP BY customer_id""")
    rep = firsts[firsts["n"] >= 2]
    days = (pd.to_datetime(rep["b"], utc=True) - pd.to_datetime(rep["a"], utc=True)).dt.total_seconds() / 86400
    assert s["of"] == "purchase" and s["customers"] == len(firsts) and s["repeat"] == len(rep)
    assert s["median_days"] == pytest.approx(float(days.median()), rel=1e-6)


def test_moments_without_valence_offers_presence_value_and_milestones(open_shape, km, shape_db):
    """It refused ('No customer has both an outcome and a rated touchpoint') instead of saying what it can do."""
    from keymoments.analyze.moments import MomentsOfTruth

    mot = MomentsOfTruth("repurchased", n_boot=200).fit(open_shape("purchases"))
    assert mot.mode_ == "presence"
    s = mot.summary.set_index("touchpoint")
    assert {"met: store", "met: web", "spent at: store", "crossed: purchase_2"} <= set(s.index)
    # the repeat buyers repurchase more, as generated: crossing the 2nd purchase predicts the outcome
    assert s.loc["crossed: purchase_2", "ci_low"] > 0
    code, out, err = km("moments", "--outcome", "repurchased", "--n-boot", "100", "--db", shape_db("purchases"))
    assert code == 0 and out.startswith("Note: no event has a rating or scored text")


def test_roadmap_and_peak_end_say_what_purchase_data_can_do(km, shape_db):
    db = shape_db("purchases")
    code, out, err = km("roadmap", "--outcome", "repurchased", "--n-boot", "100", "--db", db)
    assert code == 2 and "`keymoments moments --outcome repurchased` shows which touchpoints" in err
    code, out, err = km("peak-end", "--outcome", "repurchased", "--db", db)
    assert code == 2 and "no valence to remember" in err and "`keymoments moments` shows" in err
