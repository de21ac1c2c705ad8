"""Golden: the journey map's transitions on the real Helpdesk log equal pm4py's directly-follows graph.

The fixture ``helpdesk_pm4py_dfg.json`` was computed once with ``pm4py.discover_dfg`` on
``Helpdesk.xes.gz`` (pm4py is AGPL and not a dependency; the tests never import it). Equal timestamps inside a
case keep their order in the file, as pm4py does, which the store's ``seq`` column records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keymoments.analyze.journey import JourneyMap

FIXTURE = Path(__file__).with_name("helpdesk_pm4py_dfg.json")


@pytest.fixture(scope="module")
def helpdesk(tmp_path_factory):
    from keymoments.ingest.files import read_source
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_source

    path = Path(__file__).resolve().parents[1] / "data" / "Helpdesk.xes.gz"
    s = Store(tmp_path_factory.mktemp("hd") / "km.duckdb")
    ingest_source(s, read_source(path))
    yield JourneyMap().fit(s)
    s.close()


def test_transitions_equal_pm4py_dfg(helpdesk):
    ref = json.loads(FIXTURE.read_text())
    ours = sorted([r["from"], r["to"], int(r["count"])] for r in helpdesk.transitions_.to_dict(orient="records"))
    assert ours == ref["dfg"]
    assert helpdesk.n_events_ == ref["events"] and helpdesk.n_journeys_ == ref["cases"]


def test_start_end_and_variants_equal_pm4py(helpdesk):
    ref = json.loads(FIXTURE.read_text())
    ends = helpdesk.touchpoints_.set_index("touchpoint")["ends_here"]
    assert {k: int(v) for k, v in ends[ends > 0].items()} == ref["end_activities"]
    top = helpdesk.variants_.head(len(ref["top_variants"]))
    assert [[p, int(n)] for p, n in zip(top["path"], top["journeys"], strict=True)] == ref["top_variants"]


def test_helpdesk_map_makes_sense(helpdesk):
    tp = helpdesk.touchpoints_.set_index("touchpoint")
    # tickets are assigned first and closed last; nearly every ticket is resolved and closed
    assert helpdesk.order_[0] in ("Insert ticket", "Assign seriousness") and helpdesk.order_[-1] != "Assign seriousness"
    assert tp.loc["Resolve ticket", "reach"] > 0.99 and tp.loc["Closed", "reach"] > 0.99
    assert tp["mean_valence"].isna().all()  # no ratings in this log: no emotion, and no pits or peaks invented
    assert set(tp["kind"]) == {"neutral"}
