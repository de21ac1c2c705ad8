"""Fits above the customer limit on Spark: the same stratified sample, fit and warning as on DuckDB."""

from __future__ import annotations

import pytest
from test_conformance import both, same

from keymoments.analyze.milestones import Milestones
from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.peak_end import PeakEnd
from keymoments.analyze.recovery import Recovery
from keymoments.analyze.roadmap import Roadmap
from keymoments.analyze.segments import Segments

SAMPLED = {
    "moments": lambda: MomentsOfTruth("retained", n_boot=200, max_fit_customers=50),
    "roadmap": lambda: Roadmap(outcome="retained", n_boot=200, max_fit_customers=50),
    "peak-end": lambda: PeakEnd(outcome="retained", n_boot=100, max_fit_customers=50),
    "recovery": lambda: Recovery("retained", max_fit_customers=50),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLED))
def test_a_sampled_fit_is_the_same_on_spark(name, demo_stores):
    duck, spark = both(SAMPLED[name], demo_stores)
    same(duck, spark)
    assert duck["warnings"][0].startswith(
        "fitted on a stratified sample of 50 of 300 customers; the intervals are the sample's"
    )
    assert duck.get("n", sum(g["n"] for g in duck.get("groups", []))) == 50  # only the sample was fitted


SHARED = {
    "segments": lambda: Segments(max_fit_customers=150, seed=2),
    "milestones": lambda: Milestones("retained", max_fit_customers=150, seed=2),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHARED))
def test_a_share_of_the_customers_is_the_same_on_spark(name, demo_stores):
    """Segments and milestones above the limit: the same customers drawn in each engine (md5 of the seeded key),
    so the same tiers, milestones, scaled counts and warning."""
    duck, spark = both(SHARED[name], demo_stores)
    same(duck, spark)
    assert (
        duck["warnings"][0].startswith("computed on a seeded sample of ")
        and "of 300 customers" in duck["warnings"][0]
    )
