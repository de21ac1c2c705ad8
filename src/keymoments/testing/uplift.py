"""A simulated playbook experiment with a planted effect: the test double of a live deployment.

A generated population of customers each has one crisis. A playbook (notify on a crisis, with a holdout drawn
at decision time) runs **live** over their events through the real runner and engine; only afterwards are their
outcomes generated: ``retained`` is drawn with each customer's own base probability, plus ``effect`` when the
playbook acted on them, and observed some days after the decision, within the playbook's window. The uplift
the library measures should then cover ``effect``, and with ``effect=0`` be "significant" about as often as
its confidence level allows.

    >>> sim = simulate_uplift(effect=0.2, seed=3, customers=300)
    >>> sim.acted > 0 and sim.uplift.n_treatment + sim.uplift.n_control == 300
    True

``stale_share`` of the customers carry instead an outcome observed *before* their decision (a value the
action could not have changed, drawn without the effect); the uplift must leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from keymoments.act.uplift import Uplift
    from keymoments.store.store import Store

__all__ = ["SimulatedUplift", "simulate_uplift"]

_PLAYBOOK = """
playbooks:
  - name: {name}
    trigger: {{type: crisis}}
    actions: [{{type: notify, channel: call, template: "We are sorry about your {{touchpoint}}."}}]
    holdout: {{share: {share}}}
    measure: {{outcome: retained, window: {window_days}d}}
"""
_DAY_US = 86_400_000_000


@dataclass
class SimulatedUplift:
    """One simulated experiment: what was planted, what the live run did, and the uplift measured."""

    effect: float
    seed: int
    customers: int
    acted: int
    held_out: int
    uplift: Uplift
    outcomes: pd.DataFrame = field(repr=False)

    @property
    def covered(self) -> bool:
        """The interval holds the planted effect."""
        return bool(self.uplift.ci_low <= self.effect <= self.uplift.ci_high)


def simulate_uplift(
    effect: float = 0.1,
    *,
    seed: int = 0,
    customers: int = 400,
    share: float = 0.5,
    base: tuple[float, float] = (0.3, 0.7),
    window_days: int = 90,
    stale_share: float = 0.0,
    start: str = "2025-01-06",
    store: Store | None = None,
) -> SimulatedUplift:
    """Run one simulated experiment; see the module docstring. ``store`` defaults to a fresh in-memory store.

    ``base`` bounds each customer's own chance of ``retained`` without the action; keep ``base[1] + effect`` at
    or below 1 so the planted effect is the true average effect (nothing is clipped)."""
    from keymoments.act.runner import PlaybookRunner
    from keymoments.act.uplift import uplift
    from keymoments.act.yaml_loader import loads_playbooks
    from keymoments.store.store import Store as _Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    rng = np.random.default_rng(seed)
    ids = np.array([f"s{seed}-c{i:05d}" for i in range(customers)], dtype=object)
    t0 = pd.Timestamp(start, tz="UTC")
    crisis_at = t0 + pd.to_timedelta(rng.uniform(0, 60, customers), unit="D")
    events = pd.DataFrame({
        "event_id": [f"{c}-e1" for c in ids], "customer_id": ids, "ts": crisis_at, "touchpoint": "flight",
        "outcome": rng.choice(["cancelled", "delayed"], customers), "rating": rng.integers(1, 3, customers),
        "rating_scale": "csat5",
    })  # fmt: skip
    pf = loads_playbooks(_PLAYBOOK.format(name="sim-recovery", share=share, window_days=window_days))
    own = store is None
    st = _Store(":memory:") if store is None else store
    try:
        ingest_events_frame(st, events, source=f"simulation seed {seed}")
        runner = PlaybookRunner(st, pf)
        runner.run_live()
        with st.ops.read() as con:
            first = {c: t for c, _arm, t in st.ops.sql.fire_arms(con, "sim-recovery", runner.live_run_id)}
            reached = {c for _p, c in st.ops.sql.acted_on(con, runner.live_run_id)}
        acted = np.array([c in reached for c in ids])
        decided_us = np.array([pd.Timestamp(first[c]).value // 1000 for c in ids], dtype="float64")
        # afterwards: the outcome, with the planted effect where the playbook acted
        p = rng.uniform(base[0], base[1], customers)
        stale = rng.random(customers) < stale_share
        gets = acted & ~stale
        retained = rng.random(customers) < np.clip(p + effect * gets, 0.0, 1.0)
        lag_days = np.where(stale, -rng.uniform(1, 30, customers), rng.uniform(1, window_days - 1, customers))
        observed = pd.to_datetime((decided_us + lag_days * _DAY_US).astype("int64"), unit="us", utc=True)
        outcomes = pd.DataFrame({"customer_id": ids, "retained": retained, "observed_at": observed})
        ingest_outcomes_frame(st, outcomes, source=f"simulation seed {seed}", observed_at_col="observed_at")
        up = uplift(st, pf, "sim-recovery")
    finally:
        if own:
            st.close()
    outcomes["acted"], outcomes["p"], outcomes["stale"] = acted, p, stale
    return SimulatedUplift(effect, seed, customers, int(acted.sum()), int((~acted).sum()), up, outcomes)
