"""The Spark back-test's split, run without Spark over random histories (hypothesis): each customer's events
through the executors' function, the candidates sorted by their keys, and the driver's replay give exactly the
decisions of one engine over all events, including ties in time, timers that fall due together across
customers, caps per location and per day, pools that run dry and cases of firings a shared cap drops."""

from __future__ import annotations

import pickle

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.act.engine import EVENT_COLUMNS, Engine
from keymoments.act.spark_backtest import _KEYS, _shared, decide_bucket, reconcile
from keymoments.act.yaml_loader import loads_playbooks

from .conftest import ev, tuples

PB = loads_playbooks("""
seed: 2
global_holdout: 0.1
budgets:
  - {name: b, scope: location, period: day, amount: 60, empowerment_limit: 30}
  - {name: g, scope: global, period: week, amount: 40}
playbooks:
  - name: comp
    trigger: {type: crisis}
    actions: [{type: open_case, resolve_on_outcome: [resolved]}, {type: compensate, amount: 25, budget: b}]
    governance: {cooldown_hours: 6, max_per_customer: 2, period: week, max_per_day: 3}
    holdout: {share: 0.2}
  - name: desk
    trigger: {type: event, valence_above: 0.2}
    actions: [{type: open_case, owner: team}, {type: compensate, amount: 10, budget: g}]
    governance: {per: location, cooldown_hours: 5, probability: 0.6}
  - name: gift
    trigger: {type: event, valence_above: 0.5}
    actions: [{type: compensate, amount: 10, budget: g}]
  - name: chase
    trigger: {type: absence, after: {outcome: [cancelled, lost]}, expect: {outcome: [resolved]}, within_hours: 6}
    actions: [{type: notify, template: sorry}, {type: compensate, amount: 5, budget: b}]
    governance: {per: location, max_per_customer: 1, period: day}
  - name: bye
    trigger: {type: journey_end, quiet_hours: 12}
    actions: [{type: notify, template: bye}]
  - name: fifth
    trigger: {type: milestone, metric: events, at: [3, 5]}
    actions: [{type: notify, template: thanks}]
    governance: {max_per_day: 1}
""")

event = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.integers(0, 24 * 6),  # whole hours: many events share a timestamp
    st.sampled_from([None, "cancelled", "lost", "resolved", "completed"]),
    st.floats(-1, 1),
    st.sampled_from(["L1", "L2"]),
)


def partitioned(events: list[tuple], seed: int) -> list:
    """The Spark back-test's executors and driver, in one process: customers in two buckets."""
    engine = Engine(PB, seed=seed)
    shared = _shared(engine)
    frame = pd.DataFrame(events, columns=list(EVENT_COLUMNS)).sample(frac=1, random_state=seed)  # any order
    clock = int(frame["ts_us"].max())
    parts = [frame[frame["customer_id"].isin(group)] for group in (["a", "c", "e"], ["b", "d"])]
    rows = pd.concat([decide_bucket(PB, f"test:{seed}", seed, shared, clock, p) for p in parts])
    rows = rows.sort_values(list(_KEYS), kind="stable")
    return reconcile(engine, shared, (pickle.loads(d) for d in rows["decision"]))


@settings(max_examples=80, deadline=None)
@given(st.lists(event, min_size=1, max_size=80), st.integers(0, 3))
def test_the_split_gives_the_decisions_of_one_engine(raw, seed):
    raw = sorted(raw, key=lambda r: r[1])
    events = tuples([ev(c, h, outcome=o, valence=round(v, 3), location_id=loc, event_id=f"e{i}")
                     for i, (c, h, o, v, loc) in enumerate(raw)])  # fmt: skip
    whole = [d.to_dict() for d in Engine(PB, seed=seed).run(events)]
    assert [d.to_dict() for d in partitioned(events, seed)] == whole


def test_the_split_can_fail_without_the_drivers_replay():
    """Without the driver's replay of the pools and shared caps, the same history decides otherwise."""
    events = tuples([ev(c, h, outcome="cancelled", valence=0.9, location_id="L1", event_id=f"e{i}")
                     for i, (c, h) in enumerate([("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2), ("a", 30)])])  # fmt: skip
    whole = [d.to_dict() for d in Engine(PB, seed=0).run(events)]
    assert [d.to_dict() for d in partitioned(events, 0)] == whole
    engine = Engine(PB, seed=0)
    frame = pd.DataFrame(events, columns=list(EVENT_COLUMNS))
    rows = decide_bucket(PB, "test:raw", 0, _shared(engine), int(frame["ts_us"].max()), frame)
    raw = [pickle.loads(d).to_dict() for d in rows.sort_values(list(_KEYS))["decision"]]
    assert raw != whole and len(raw) > len(whole)  # shared caps dropped firings; pools blocked spends
