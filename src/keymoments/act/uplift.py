"""Uplift of a playbook on its outcome versus its holdout, with a confidence interval and a sample-ratio check.

Who counts: every customer the playbook was *triggered* for (its decisions of kind ``fire``), in the arm the
hash put them in. Treatment = acted on; control = its own holdout plus the global holdout (neither was acted on
by this playbook). Uplift = mean outcome of treatment - mean of control, with a Welch interval (unequal
variances; for 0/1 outcomes this is the usual two-proportion interval) and its p-value. Customers without the
outcome are left out and counted. Fewer than ``min_n`` per arm is said out loud with a SmallSampleWarning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from keymoments.act.holdouts import SampleRatioCheck, sample_ratio_check
from keymoments.act.models import PlaybookFile
from keymoments.exceptions import NotFoundError, SmallSampleWarning
from keymoments.store import act_tables as sql
from keymoments.store.store import Store

__all__ = ["Uplift", "uplift", "uplift_of", "welch_interval"]


@dataclass(frozen=True)
class Uplift:
    """A playbook's uplift on one outcome, with its interval, sample sizes and sample-ratio check."""

    playbook: str
    outcome: str
    n_treatment: int
    n_control: int
    mean_treatment: float
    mean_control: float
    uplift: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    missing_outcome: int
    srm: SampleRatioCheck
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "srm"}
        d["srm"] = self.srm.to_dict()
        return d


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(difference of means a - b, low, high, two-sided p) by Welch's t."""
    from scipy import stats

    n1, n2 = len(a), len(b)
    m1, m2 = sum(a) / n1, sum(b) / n2
    v1 = sum((x - m1) ** 2 for x in a) / (n1 - 1)
    v2 = sum((x - m2) ** 2 for x in b) / (n2 - 1)
    se2 = v1 / n1 + v2 / n2
    diff = m1 - m2
    if se2 == 0:
        return diff, diff, diff, 1.0 if diff == 0 else 0.0
    df = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    se = math.sqrt(se2)
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return diff, diff - q * se, diff + q * se, p


def uplift(
    store: Store,
    file: PlaybookFile,
    playbook: str,
    *,
    outcome: str | None = None,
    run_id: str | None = None,
    confidence: float = 0.95,
    min_n: int = 30,
) -> Uplift:
    """The uplift of ``playbook`` on ``outcome`` (default: the playbook's own) versus its holdout."""
    pb = next((p for p in file.playbooks if p.name == playbook), None)
    if pb is None:
        raise NotFoundError(f"Playbook {playbook!r} is not in the file; it has {[p.name for p in file.playbooks]}.")
    outcome = outcome or pb.outcome
    if not outcome:
        raise NotFoundError(f"Playbook {playbook!r} names no outcome to measure; add 'outcome: retained' or pass outcome=.")
    return uplift_of(store, playbook, outcome, share=pb.holdout.share, global_share=file.global_holdout,
                     run_id=run_id, confidence=confidence, min_n=min_n)


def uplift_of(
    store: Store,
    playbook: str,
    outcome: str,
    *,
    share: float,
    global_share: float = 0.0,
    run_id: str | None = None,
    confidence: float = 0.95,
    min_n: int = 30,
) -> Uplift:
    """:func:`uplift` from the holdout shares directly (no playbook file needed)."""
    rows = _arms_with_outcome(store, playbook, outcome, run_id)
    counts = {"treatment": 0, "holdout": 0, "global_holdout": 0}
    treat: list[float] = []
    ctrl: list[float] = []
    missing = 0
    for _cid, arm, value in rows:
        counts[arm] = counts.get(arm, 0) + 1
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing += 1
            continue
        (treat if arm == "treatment" else ctrl).append(float(value))
    srm = sample_ratio_check(counts, share=share, global_share=global_share)
    note = ""
    if len(treat) < 2 or len(ctrl) < 2:
        nan = float("nan")
        note = f"too little data: {len(treat)} treated and {len(ctrl)} control customers with '{outcome}'"
        warnings.warn(f"Uplift of {playbook!r}: {note}.", SmallSampleWarning, stacklevel=2)
        mt = sum(treat) / len(treat) if treat else nan
        mc = sum(ctrl) / len(ctrl) if ctrl else nan
        return Uplift(playbook, outcome, len(treat), len(ctrl), mt, mc, mt - mc, nan, nan, nan, confidence, missing, srm, note)
    diff, lo, hi, p = welch_interval(treat, ctrl, confidence)
    if min(len(treat), len(ctrl)) < min_n:
        note = f"small sample: {len(treat)} treated, {len(ctrl)} control; the interval is wide"
        warnings.warn(f"Uplift of {playbook!r}: {note}.", SmallSampleWarning, stacklevel=2)
    if not srm.ok:
        note = (note + "; " if note else "") + f"sample-ratio mismatch (p={srm.p_value:.2g}): do not trust this uplift"
    return Uplift(playbook, outcome, len(treat), len(ctrl), sum(treat) / len(treat), sum(ctrl) / len(ctrl), diff, lo, hi,
                  p, confidence, missing, srm, note)  # fmt: skip


def _arms_with_outcome(store: Store, playbook: str, outcome: str, run_id: str | None) -> list[tuple]:
    """(customer_id, arm, outcome value) per customer the playbook was triggered for. Embedded: one join in
    DuckDB; with the decisions in PostgreSQL, the arms come from there and the outcomes from DuckDB, joined by
    customer id here (never by copying a table across)."""
    if store.ops.kind == "embedded":
        cur = store.cursor()
        try:
            return sql.arms_with_outcome(cur, playbook, outcome, run_id)
        finally:
            cur.close()
    with store.ops.read() as con:
        arms = store.ops.sql.fire_arms(con, playbook, run_id)
    cur = store.cursor()
    try:
        found = sql.outcome_values(cur, outcome, [a[0] for a in arms])
    finally:
        cur.close()
    return [(cid, arm, found.get(cid)) for cid, arm in arms]
