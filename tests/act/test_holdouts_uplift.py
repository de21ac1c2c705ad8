"""Holdouts (share, composition, stability, sample-ratio check), uplift on live runs against a reference (only
outcomes observed after the decision, within the window; refused for backtests), surprise predictability."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keymoments.act.engine import Engine
from keymoments.act.holdouts import arm_of, sample_ratio_check
from keymoments.act.runner import PlaybookRunner
from keymoments.act.surprise import predictability
from keymoments.act.uplift import uplift, welch_interval
from keymoments.act.yaml_loader import loads_playbooks
from keymoments.exceptions import (
    InvalidParameterError,
    KeymomentsWarning,
    SmallSampleWarning,
    UpliftRefusedError,
)
from keymoments.store.writer import ingest_outcomes_frame

from .conftest import ev, load_events, tuples


def test_holdout_shares_within_tolerance_and_compose():
    n = 100_000
    arms = [arm_of(f"cust-{i}", share=0.1, salt="service-recovery", global_share=0.05) for i in range(n)]
    share = {a: arms.count(a) / n for a in ("global_holdout", "holdout", "treatment")}
    assert abs(share["global_holdout"] - 0.05) < 0.004
    assert abs(share["holdout"] - 0.95 * 0.10) < 0.004
    assert abs(share["treatment"] - 0.95 * 0.90) < 0.004
    # deterministic and independent across playbooks
    again = [arm_of(f"cust-{i}", share=0.1, salt="service-recovery", global_share=0.05) for i in range(1000)]
    assert again == arms[:1000]
    other = [arm_of(f"cust-{i}", share=0.1, salt="peak-amplification") for i in range(n)]
    both = sum(1 for a, b in zip(arms, other, strict=True) if a == "holdout" and b == "holdout") / n
    assert abs(both - 0.095 * 0.1) < 0.002
    counts = {a: arms.count(a) for a in ("global_holdout", "holdout", "treatment")}
    assert sample_ratio_check(counts, share=0.1, global_share=0.05).ok


def test_sample_ratio_check_flags_a_mismatch():
    bad = sample_ratio_check({"treatment": 9500, "holdout": 500}, share=0.1)
    assert not bad.ok and bad.p_value < 1e-6
    good = sample_ratio_check({"treatment": 9010, "holdout": 990}, share=0.1)
    assert good.ok
    ref = stats.chisquare([9500, 500], [9000, 1000])
    assert bad.chi2 == pytest.approx(ref.statistic)


def test_welch_interval_matches_scipy():
    r = np.random.default_rng(1)
    a, b = list(r.binomial(1, 0.6, 400).astype(float)), list(r.binomial(1, 0.5, 150).astype(float))
    diff, lo, hi, p = welch_interval(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(ref.pvalue)


PB = """
global_holdout: 0.1
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions: [{type: open_case}]
    holdout: {share: 0.3}
    measure: {outcome: retained, window: 30d}
"""


def _observed_after(store, days: float) -> pd.Series:
    """Each triggered customer's first decision time plus ``days``."""
    first = store.query("SELECT customer_id, min(ts) AS ts FROM playbook_decisions WHERE kind = 'fire' GROUP BY 1")
    return first.set_index("customer_id")["ts"] + pd.Timedelta(days=days)


def test_uplift_recovers_a_planted_effect_in_a_live_run(store):
    pf = loads_playbooks(PB)
    n = 1500
    load_events(store, [ev(f"c{i}", i * 0.01, outcome="cancelled", event_id=f"e{i}") for i in range(n)])
    PlaybookRunner(store, pf).run_live()
    rng = random.Random(5)
    ids = [f"c{i}" for i in range(n)]
    arms = store.query("SELECT customer_id, arm FROM playbook_decisions WHERE kind = 'fire'").set_index("customer_id")["arm"]
    retained = [rng.random() < (0.75 if arms[c] == "treatment" else 0.55) for c in ids]  # planted uplift +0.20
    seen = _observed_after(store, 10)
    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ids, "retained": retained, "seen": [seen[c] for c in ids]}),
                          observed_at_col="seen")  # fmt: skip
    up = uplift(store, pf, "recover")
    assert up.run_id.startswith("live-") and up.window == "30d"
    assert up.n_treatment + up.n_control == n and not any(up.excluded.values())
    assert up.ci_low < 0.20 < up.ci_high and up.ci_low > 0.05 and up.significant
    assert up.srm.ok and up.p_value < 1e-6
    assert up.to_dict()["srm"]["observed"]["global_holdout"] > 0
    # against a reference: Welch's t on the same two groups
    treat = [float(r) for c, r in zip(ids, retained, strict=True) if arms[c] == "treatment"]
    ctrl = [float(r) for c, r in zip(ids, retained, strict=True) if arms[c] != "treatment"]
    ref = stats.ttest_ind(treat, ctrl, equal_var=False)
    assert up.p_value == pytest.approx(ref.pvalue) and (up.ci_low, up.ci_high) == pytest.approx(tuple(ref.confidence_interval()))


def test_only_outcomes_observed_after_the_decision_and_within_the_window_count(store):
    pf = loads_playbooks(PB)
    load_events(store, [ev(f"c{i}", i, outcome="lost", event_id=f"e{i}") for i in range(400)])
    PlaybookRunner(store, pf).run_live()
    ids = [f"c{i}" for i in range(400)]
    arms = store.query("SELECT customer_id, arm FROM playbook_decisions WHERE kind = 'fire'").set_index("customer_id")["arm"]
    first = _observed_after(store, 0)
    # every 4th customer: observed before the decision; every 4th + 1: after the 30-day window; the rest inside it.
    # The ones left out carry a value that would flip the result if it were counted.
    when, value = [], []
    for i, c in enumerate(ids):
        inside = i % 4 >= 2
        when.append(first[c] + pd.Timedelta(days={0: -1, 1: 31}.get(i % 4, 29.9)))
        treated = arms[c] == "treatment"
        value.append(float(treated) if inside else float(not treated))
    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ids, "retained": value, "at": when}), observed_at_col="at")
    with store.write() as con:  # a row stored before outcomes had an observed time
        con.execute("UPDATE outcomes SET observed_at = NULL WHERE key IN ('c2', 'c3')")
    up = uplift(store, pf, "recover")
    assert up.excluded == {"before": 100, "after_window": 100, "no_time": 2, "missing": 0}
    assert up.n_treatment + up.n_control == 198
    assert up.mean_treatment == 1.0 and up.mean_control == 0.0
    assert "100 observed before the decision" in up.note and "100 observed after the window" in up.note
    # a wider window takes the late ones in (and they pull the other way)
    wide = uplift(store, pf, "recover", window="60d")
    assert wide.excluded["after_window"] == 0 and wide.n_treatment + wide.n_control == 298
    assert wide.uplift < up.uplift


def test_uplift_is_refused_without_a_live_run_or_observed_outcomes(store):
    pf = loads_playbooks(PB)
    load_events(store, [ev(f"c{i}", i, outcome="cancelled", event_id=f"e{i}") for i in range(200)])
    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": [f"c{i}" for i in range(200)], "retained": [i % 2 for i in range(200)]}),
                          observed_at="2025-01-01")  # fmt: skip
    bt = PlaybookRunner(store, pf).backtest(record=True)
    with pytest.raises(UpliftRefusedError, match="No live run of 'recover'"):
        uplift(store, pf, "recover")
    with pytest.raises(UpliftRefusedError, match="is a backtest: no action was taken") as exc:
        uplift(store, pf, "recover", run_id=bt.run_id)
    assert "\n" not in str(exc.value)
    PlaybookRunner(store, pf).run_live()
    with pytest.raises(UpliftRefusedError, match=r"No 'retained' outcome of the 200 customers .* was observed within 30d") as exc:
        uplift(store, pf, "recover")  # every outcome was observed before the decisions (2025-03-03 on)
    assert "200 observed before the decision" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InvalidParameterError, match="window"):
        uplift(store, pf, "recover", window="30 days")


def test_uplift_with_too_little_data_says_so(store):
    pf = loads_playbooks(PB)
    load_events(store, [ev("a", 0, outcome="cancelled", event_id="a")])
    PlaybookRunner(store, pf).run_live()
    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": ["a"], "retained": [1]}), observed_at="2025-03-10")
    with pytest.warns(SmallSampleWarning, match="too little data"):
        up = uplift(store, pf, "recover")
    assert "too little data" in up.note and not up.significant


def test_surprise_is_unpredictable_and_a_schedule_is_not():
    surprise = loads_playbooks("""
playbooks:
  - name: delight
    trigger: {type: event}
    actions: [{type: notify, template: hi}]
    governance: {probability: 0.05, cooldown_hours: 48}
  - name: schedule
    trigger: {type: milestone, metric: events, at: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]}
    actions: [{type: notify, template: hi}]
""")
    events = [ev(f"c{i % 40}", i * 0.6, event_id=str(i)) for i in range(40 * 120)]  # a visit a day each
    d = Engine(surprise, seed=1).run(tuples(events))
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeymomentsWarning)
        s = predictability(d, "delight")
    assert s.customers_measured >= 30 and s.predictability < 0.35
    with pytest.warns(KeymomentsWarning, match="predictable"):
        sched = predictability(d, "schedule")
    assert sched.predictability > 0.9
    # different customers' delights fall on different days: no shared schedule either
    days = {(x.customer_id, x.ts_us // 86_400_000_000) for x in d if x.playbook == "delight"}
    assert len({day for _, day in days}) > 50
