"""Uplift on simulated live experiments with a planted effect (keymoments.testing.simulate_uplift).

Each experiment runs a playbook live through the real runner and engine (holdouts drawn as decisions are made),
then generates the outcomes afterwards, observed after the decision, with the planted effect where the playbook
acted. A tenth of the customers carry an outcome observed before their decision, which must not count. The
interval must cover the planted effect in at least 90% of 50 seeds (95% expected), and with no effect be
"significant" in at most 8% of 100 seeds (5% expected).

Each experiment is a fresh in-memory store of 400 customers: about 0.2 s of CPU.
"""

from __future__ import annotations

import statistics

import pytest

from keymoments.store.store import Store
from keymoments.testing.uplift import simulate_uplift

pytestmark = pytest.mark.slow


def _run(effect: float, seed: int, **kw):  # noqa: ANN003, ANN202
    with Store(":memory:", threads=1) as store:
        return simulate_uplift(effect, seed=seed, store=store, **kw)


def test_the_interval_covers_the_planted_effect():
    sims = [_run(0.15, seed, stale_share=0.1) for seed in range(50)]
    covered = sum(s.covered for s in sims)
    assert covered >= 45, f"the 95% interval covered the planted +0.15 in {covered} of 50 experiments"
    estimates = [s.uplift.uplift for s in sims]
    assert statistics.mean(estimates) == pytest.approx(0.15, abs=0.02)
    assert all(s.uplift.excluded["before"] > 0 and s.uplift.srm.ok for s in sims)  # the stale outcomes were left out


def test_no_effect_is_rarely_significant():
    sims = [_run(0.0, seed) for seed in range(1000, 1100)]
    significant = sum(s.uplift.significant for s in sims)
    assert significant <= 8, f"'significant' in {significant} of 100 experiments with no effect"
    assert statistics.mean(s.uplift.uplift for s in sims) == pytest.approx(0.0, abs=0.015)


def test_the_simulation_acts_only_on_the_treated_arm():
    sim = _run(0.3, 7, customers=300)
    out = sim.outcomes
    assert sim.acted + sim.held_out == 300 and 100 < sim.held_out < 200  # a 50% holdout
    assert out.loc[out["acted"], "retained"].mean() > out.loc[~out["acted"], "retained"].mean()
    assert sim.uplift.n_treatment == sim.acted and sim.uplift.significant
