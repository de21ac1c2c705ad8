"""Holdouts (share, composition, stability, sample-ratio check), uplift against a reference, surprise predictability."""

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
from keymoments.exceptions import KeymomentsWarning, SmallSampleWarning

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
    outcome: retained
"""


def test_uplift_recovers_a_planted_effect(store):
    pf = loads_playbooks(PB)
    n = 1500
    load_events(store, [ev(f"c{i}", i * 0.01, outcome="cancelled", event_id=f"e{i}") for i in range(n)])
    rng = random.Random(5)
    retained = []
    for i in range(n):
        arm = arm_of(f"c{i}", share=0.3, salt="recover", global_share=0.1)
        retained.append(rng.random() < (0.75 if arm == "treatment" else 0.55))  # planted uplift +0.20
    from keymoments.store.writer import ingest_outcomes_frame

    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "retained": retained}))
    res = PlaybookRunner(store, pf).backtest(record=True)
    up = uplift(store, pf, "recover", run_id=res.run_id)
    assert up.n_treatment + up.n_control == n
    assert up.ci_low < 0.20 < up.ci_high and up.ci_low > 0.05
    assert up.srm.ok and up.p_value < 1e-6
    assert up.to_dict()["srm"]["observed"]["global_holdout"] > 0


def test_uplift_with_too_little_data_says_so(store):
    pf = loads_playbooks(PB)
    load_events(store, [ev("a", 0, outcome="cancelled", event_id="a")])
    PlaybookRunner(store, pf).backtest(record=True)
    with pytest.warns(SmallSampleWarning, match="too little data"):
        up = uplift(store, pf, "recover")
    assert "too little data" in up.note


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
