"""Invariants of the engine over random histories (hypothesis): governance and budgets always hold."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.act.engine import Engine
from keymoments.act.yaml_loader import loads_playbooks

from .conftest import ev, tuples

PB = loads_playbooks("""
global_holdout: 0.1
budgets: [{name: b, scope: location, period: day, amount: 100, empowerment_limit: 30}]
playbooks:
  - name: comp
    trigger: {type: crisis}
    actions: [{type: open_case}, {type: compensate, amount: 35, budget: b}]
    governance: {cooldown_hours: 6, max_per_customer: 2, period: week}
    holdout: {share: 0.2}
  - name: gift
    trigger: {type: event, valence_above: 0.2}
    actions: [{type: compensate, amount: 10, budget: b}]
    governance: {probability: 0.3, max_per_day: 3}
""")

event = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.floats(0, 24 * 20),
    st.sampled_from([None, "cancelled", "lost", "resolved", "completed"]),
    st.floats(-1, 1),
    st.sampled_from(["L1", "L2"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=120))
def test_governance_and_budget_invariants(raw):
    raw = sorted(raw, key=lambda r: r[1])
    events = [ev(c, h, outcome=o, valence=round(v, 3), location_id=loc, event_id=f"e{i}")
              for i, (c, h, o, v, loc) in enumerate(raw)]
    decisions = Engine(PB, seed=4).run(tuples(events))
    fires = [d for d in decisions if d.kind == "fire"]
    spent = defaultdict(int)
    used = defaultdict(int)
    last: dict[tuple, int] = {}
    per_week = defaultdict(int)
    per_day = defaultdict(int)
    hour = 3_600_000_000
    for d in fires:
        if d.status == "held_out":
            assert d.actions == () and d.cost_cents == 0 and d.case_id is None
        if d.playbook == "comp":
            k = (d.playbook, d.customer_id)
            if k in last:
                assert d.ts_us - last[k] >= 6 * hour  # cooldown
            last[k] = d.ts_us
            per_week[(d.customer_id, (d.ts_us // (24 * hour) + 3) // 7)] += 1
            assert d.case_id is not None or d.status != "fired"
        else:
            per_day[d.ts_us // (24 * hour)] += 1
        spent[(d.budget_key, d.ts_us // (24 * hour))] += d.cost_cents
        # the 30 limit holds per customer per day (the pool's period): 35 at once, or 10s that add up past it
        used[(d.customer_id, d.ts_us // (24 * hour))] += d.cost_cents
        assert d.needs_approval == (d.cost_cents > 0 and used[(d.customer_id, d.ts_us // (24 * hour))] > 3000)
    assert all(n <= 2 for n in per_week.values())
    assert all(n <= 3 for n in per_day.values())
    assert all(c <= 10_000 for c in spent.values())  # a pool never goes below zero
    again = Engine(PB, seed=4).run(tuples(events))
    assert [d.to_dict() for d in again] == [d.to_dict() for d in decisions]
