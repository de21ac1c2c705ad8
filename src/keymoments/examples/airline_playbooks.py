"""The demo airline's playbooks at work, with a planted effect on retention that the measured uplift can be
checked against.

How it is made (``keymoments demo`` does this; every number is recorded in the ground truth):

* The first half of the history is what the airline had before it ran playbooks. The playbook library goes
  live at :func:`live_from` (the middle of the window): the runner learns from the history (cooldowns,
  milestones, journeys) but acts only on the events that arrive after it (``PlaybookRunner.go_live``, then
  ``run_live``). Holdouts are drawn as each decision is made.
* Afterwards, ``retained`` is drawn again for every customer with the generator's own uniform draw
  (``latent.u_retained``), its logit raised by :data:`PLAYBOOK_EFFECTS` for each playbook whose action reached
  the customer (a fired decision: held-out customers, and spends a budget blocked, get nothing). A customer
  nothing reached keeps their outcome exactly; only ``retained`` changes.
* Every outcome is observed at the end of the history (a retention snapshot), after every decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from keymoments.examples.airline import DAY, AirlineDemo

__all__ = ["PLAYBOOK_EFFECTS", "live_from", "observed_at", "outcomes_after"]

#: Planted effect of each built-in playbook's action on the logit of ``retained`` (0: it changes nothing).
PLAYBOOK_EFFECTS: dict[str, float] = {
    "service-recovery": 1.0,  # as strong as a crisis the airline resolved itself (LOGIT["recovered"])
    "going-the-distance": 0.5,
    "unresolved-crisis": 0.5,
    "sign-off-follow-up": 0.3,
    "win-back": 0.3,
    "peak-amplification": 0.2,
    "milestone-celebration": 0.2,
    "vulnerable-customer-assistance": 0.5,  # no holdout: help is never withheld, so this is never measured
    "surprise-and-delight": 0.0,
    "employee-recognition": 0.0,  # thanks the employee; the customer does not see it
}


def _window(demo: AirlineDemo) -> tuple[pd.Timestamp, int]:
    g = demo.ground_truth["generator"]
    return pd.Timestamp(g["start"]), int(g["days"])


def live_from(demo: AirlineDemo) -> pd.Timestamp:
    """When the playbooks go live: the middle of the history."""
    start, days = _window(demo)
    return start + pd.Timedelta(seconds=days * DAY // 2)


def observed_at(demo: AirlineDemo) -> pd.Timestamp:
    """When the demo's outcomes are observed: the end of the history."""
    start, days = _window(demo)
    return start + pd.Timedelta(days=days)


def outcomes_after(
    demo: AirlineDemo, acted: Iterable[tuple[str, str]], effects: dict[str, float] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The outcomes once the playbooks have acted, with an ``observed_at`` column, and their ground truth.

    ``acted``: (playbook, customer_id) pairs whose action reached the customer. The ground truth gives, per
    playbook, its planted logit effect, the customers it reached and the mean rise in their chance of being
    retained it caused (``expected_uplift_reached``)."""
    effects = PLAYBOOK_EFFECTS if effects is None else effects
    lat = demo.latent
    index = {c: i for i, c in enumerate(lat["customer_id"])}
    reached: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(lat), dtype=bool))
    for playbook, customer in set(acted):
        if customer in index:
            reached[playbook][index[customer]] = True
    logit = lat["logit_retained"].to_numpy()
    boost = np.zeros(len(lat))
    for playbook, mask in reached.items():
        boost += effects.get(playbook, 0.0) * mask
    p = 1.0 / (1.0 + np.exp(-(logit + boost)))
    out = demo.outcomes.copy()
    out["retained"] = lat["u_retained"].to_numpy() < p
    out["observed_at"] = observed_at(demo)
    truth: dict[str, Any] = {}
    for playbook in sorted(set(effects) | set(reached)):
        mask = reached.get(playbook, np.zeros(len(lat), dtype=bool))
        beta = effects.get(playbook, 0.0)
        without = 1.0 / (1.0 + np.exp(-(logit + boost - beta)))
        truth[playbook] = {"logit_effect": beta, "customers_reached": int(mask.sum()),
                           "expected_uplift_reached": round(float((p - without)[mask].mean()), 6) if mask.any() else None}  # fmt: skip
    gt = {"live_from": live_from(demo).isoformat(), "observed_at": observed_at(demo).isoformat(),
          "retained_rate": round(float(out["retained"].mean()), 6), "effects": truth,
          "how": "retained redrawn with the generator's uniform draw, logit + the effect of every playbook whose "
                 "action reached the customer; only retained changes; all outcomes observed at the end"}  # fmt: skip
    return out, gt
