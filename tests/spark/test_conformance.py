"""Conformance: every ported analysis gives the same answer on DuckDB and on Spark (local mode).

The same analysis is fitted on a DuckDB store and on a SparkStore over the same events (the demo airline, and
the real Helpdesk process log in XES), and their ``to_dict()`` compared: exactly for counts,
names and orderings, within 1e-9 for means and other floats. Confidence intervals come from seeded bootstraps
over customer-level frames that both engines hand over in the same order, so they agree to the same 1e-9.
"""

from __future__ import annotations

import json
import warnings

import pytest

from keymoments.analyze.journey import JourneyMap
from keymoments.analyze.milestones import Milestones
from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.peak_end import PeakEnd
from keymoments.analyze.recognition import Recognition
from keymoments.analyze.recovery import Recovery
from keymoments.analyze.roadmap import Roadmap
from keymoments.analyze.segments import Segments
from keymoments.present import to_jsonable
from keymoments.testing.compare import same


def both(make, stores):
    """``make()`` fitted on each store, as JSON documents (warnings, which both engines give alike, muted)."""
    out = []
    for store in stores:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(json.loads(json.dumps(to_jsonable(make().fit(store).to_dict()))))
    return out


def test_the_comparison_can_fail():
    same({"a": [1, 2.0, float("nan")]}, {"a": [1, 2.0 + 1e-12, float("nan")]})
    for other in ({"a": [1, 2.1, float("nan")]}, {"a": [2, 2.0, float("nan")]}, {"a": [1, 2.0]}, {"b": 1}):
        with pytest.raises(AssertionError):
            same({"a": [1, 2.0, float("nan")]}, other)


ANALYSES = {
    "journey": lambda d: JourneyMap(d.journey),
    "journey-filtered": lambda d: JourneyMap(d.journey, segment="tier=gold", channel="app", since="2025-03-01",
                                             until="2025-09-01"),
    "moments": lambda d: MomentsOfTruth("retained", journey=d.journey, n_boot=200),
    "peak-end": lambda d: PeakEnd(outcome="retained"),
    "segments": lambda d: Segments(),
    "roadmap": lambda d: Roadmap(outcome="retained", journey=d.journey),
    "recovery": lambda d: Recovery(outcome="retained", journey=d.journey),
    "milestones": lambda d: Milestones(outcome="retained"),
    "recognition": lambda d: Recognition(),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ANALYSES))
def test_demo_analysis_is_the_same_on_spark(name, demo, demo_stores):
    duck, spark = both(lambda: ANALYSES[name](demo), demo_stores)
    same(duck, spark)


@pytest.mark.slow
def test_process_log_journey_map_is_the_same_on_spark(xes_stores):
    duck, spark = both(JourneyMap, xes_stores)
    assert duck["events"] == 21348 and duck["journeys"] == 4580
    same(duck, spark)


@pytest.mark.slow
def test_process_log_filtered_by_date_is_the_same_on_spark(xes_stores):
    duck, spark = both(lambda: JourneyMap(since="2011-01-01", until="2012-01-01"), xes_stores)
    same(duck, spark)
