"""Uplift of a playbook on its outcome versus its holdout, with a confidence interval and a sample-ratio check.

Uplift is measured only where an action was taken: on a **live** run, whose decisions drew each customer's arm
when they were made. A backtest took no action, so its treated and held-out customers were treated alike and
the true difference is zero; asking for its uplift raises :class:`~keymoments.exceptions.UpliftRefusedError`.

Who counts: every customer the playbook was *triggered* for in the run (its decisions of kind ``fire``), in
the arm of their first decision. Treatment = acted on; control = its own holdout plus the global holdout
(neither was acted on by this playbook). Only outcomes observed after that first decision and within the
playbook's window (``measure: {outcome: retained, window: 90d}``) count; outcomes observed before it, after
the window or at an unknown time are left out and counted. When none counts, the uplift is refused with one
line that says why.

Uplift = mean outcome of treatment - mean of control, with a Welch interval (unequal variances; for 0/1
outcomes this is the usual two-proportion interval) and its p-value; ``significant`` means the interval
leaves out zero. Fewer than ``min_n`` per arm is said out loud with a SmallSampleWarning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keymoments.act.holdouts import SampleRatioCheck, sample_ratio_check
from keymoments.act.models import DEFAULT_WINDOW, PlaybookFile, format_window, parse_window
from keymoments.exceptions import InvalidParameterError, NotFoundError, SmallSampleWarning, UpliftRefusedError
from keymoments.store import act_tables as sql
from keymoments.store.store import Store

__all__ = ["Uplift", "live_run_of", "uplift", "uplift_of", "welch_interval"]

#: Why a triggered customer's outcome was left out, by the status ``_arms_with_outcome`` gives it.
EXCLUDED = {"before": "observed before the decision", "after_window": "observed after the window",
            "no_time": "observed at an unknown time", "missing": "without the outcome"}  # fmt: skip


@dataclass(frozen=True)
class Uplift:
    """A playbook's uplift on one outcome in one live run, with its interval, sample sizes and checks."""

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
    run_id: str | None = None
    window: str = format_window(DEFAULT_WINDOW)
    significant: bool = False
    excluded: dict[str, int] = field(default_factory=dict)

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


def live_run_of(store: Store, playbook: str, file: PlaybookFile | None = None) -> str | None:
    """The live run to measure ``playbook`` on: the file's own live run when it decided on the playbook, else
    the latest live run that did; None when no live run did."""
    with store.ops.read() as con:
        runs = store.ops.sql.live_runs_with(con, playbook)
    if file is not None:
        from keymoments.act.runner import file_hash

        own = f"live-{file_hash(file)}"
        if own in runs:
            return own
    return runs[0] if runs else None


def uplift(
    store: Store,
    file: PlaybookFile,
    playbook: str,
    *,
    outcome: str | None = None,
    window: str | timedelta | None = None,
    run_id: str | None = None,
    confidence: float = 0.95,
    min_n: int = 30,
) -> Uplift:
    """The uplift of ``playbook`` on its ``measure`` (or on ``outcome`` / ``window`` when given) versus its
    holdout, in ``run_id`` (default: the file's live run, else the latest live run of the playbook).

    Raises UpliftRefusedError when the run is a backtest, there is no live run, or no outcome of the
    triggered customers was observed within the window after their first decision."""
    pb = next((p for p in file.playbooks if p.name == playbook), None)
    if pb is None:
        raise NotFoundError(f"Playbook {playbook!r} is not in the file; it has {[p.name for p in file.playbooks]}.")
    outcome = outcome or (pb.measure.outcome if pb.measure else None)
    if not outcome:
        raise NotFoundError(
            f"Playbook {playbook!r} names no outcome to measure; add 'measure: {{outcome: retained, window: 90d}}' "
            "or pass outcome=."
        )
    try:
        win = parse_window(window) if window is not None else (pb.measure.window if pb.measure else DEFAULT_WINDOW)
    except ValueError as exc:
        raise InvalidParameterError(f"The 'window' parameter of uplift: {exc}.") from None
    if run_id is None:
        run_id = live_run_of(store, playbook, file)
    return uplift_of(store, playbook, outcome, window=win, share=pb.holdout.share, global_share=file.global_holdout,
                     run_id=run_id, confidence=confidence, min_n=min_n)  # fmt: skip


def _check_run(store: Store, playbook: str, run_id: str | None) -> str:
    """The live run to measure on, or UpliftRefusedError with the reason."""
    if run_id is None:
        raise UpliftRefusedError(
            f"No live run of {playbook!r} in the store: uplift is measured only where actions were taken; "
            "run the playbooks live (`keymoments playbooks run`) and measure outcomes observed after."
        )
    with store.ops.read() as con:
        run = store.ops.sql.get_run(con, run_id)
    if run is None:
        raise NotFoundError(f"No playbook run {run_id!r} in the store; see `keymoments playbooks list`.")
    if run["mode"] != "live":
        raise UpliftRefusedError(
            f"Run {run_id!r} is a {run['mode']}: no action was taken, so treated and held-out customers were treated "
            "alike and there is no uplift to measure; run the playbooks live (`keymoments playbooks run`)."
        )
    return run_id


def uplift_of(
    store: Store,
    playbook: str,
    outcome: str,
    *,
    share: float,
    global_share: float = 0.0,
    window: timedelta = DEFAULT_WINDOW,
    run_id: str | None = None,
    confidence: float = 0.95,
    min_n: int = 30,
) -> Uplift:
    """:func:`uplift` from the holdout shares and the window directly (no playbook file needed)."""
    run_id = _check_run(store, playbook, run_id)
    if outcome not in store.outcome_names():
        raise NotFoundError(f"Outcome {outcome!r} is not in the store; load it with `keymoments ingest-outcomes`.")
    rows = _arms_with_outcome(store, playbook, outcome, run_id, window)
    win = format_window(window)
    counts = {"treatment": 0, "holdout": 0, "global_holdout": 0}
    excluded = dict.fromkeys(EXCLUDED, 0)
    treat: list[float] = []
    ctrl: list[float] = []
    for _cid, arm, value, status in rows:
        counts[arm] = counts.get(arm, 0) + 1
        if status != "counted":
            excluded[status] += 1
            continue
        (treat if arm == "treatment" else ctrl).append(float(value))
    srm = sample_ratio_check(counts, share=share, global_share=global_share)
    left_out = ", ".join(f"{n} {EXCLUDED[k]}" for k, n in excluded.items() if n)
    if not treat and not ctrl:
        raise UpliftRefusedError(
            f"No {outcome!r} outcome of the {len(rows)} customers {playbook!r} decided on in {run_id} was observed "
            f"within {win} after their first decision ({left_out or 'none triggered'}); ingest outcomes observed "
            "after the decisions (`keymoments ingest-outcomes --observed-at-col`)."
        )
    notes = [f"left out {left_out}"] if left_out else []
    common = {"run_id": run_id, "window": win, "excluded": excluded}
    missing = excluded["missing"]
    if len(treat) < 2 or len(ctrl) < 2:
        nan = float("nan")
        notes.insert(0, f"too little data: {len(treat)} treated and {len(ctrl)} control customers with '{outcome}'")
        warnings.warn(f"Uplift of {playbook!r}: {notes[0]}.", SmallSampleWarning, stacklevel=2)
        mt = sum(treat) / len(treat) if treat else nan
        mc = sum(ctrl) / len(ctrl) if ctrl else nan
        return Uplift(playbook, outcome, len(treat), len(ctrl), mt, mc, mt - mc, nan, nan, nan, confidence, missing, srm,
                      "; ".join(notes), **common)  # fmt: skip
    diff, lo, hi, p = welch_interval(treat, ctrl, confidence)
    if min(len(treat), len(ctrl)) < min_n:
        notes.insert(0, f"small sample: {len(treat)} treated, {len(ctrl)} control; the interval is wide")
        warnings.warn(f"Uplift of {playbook!r}: {notes[0]}.", SmallSampleWarning, stacklevel=2)
    if not srm.ok:
        notes.append(f"sample-ratio mismatch (p={srm.p_value:.2g}): do not trust this uplift")
    significant = bool(lo > 0 or hi < 0)
    return Uplift(playbook, outcome, len(treat), len(ctrl), sum(treat) / len(treat), sum(ctrl) / len(ctrl), diff, lo, hi,
                  p, confidence, missing, srm, "; ".join(notes), significant=significant, **common)  # fmt: skip


def _arms_with_outcome(
    store: Store, playbook: str, outcome: str, run_id: str, window: timedelta
) -> list[tuple[str, str, float | None, str]]:
    """(customer_id, arm, outcome value, status) per customer the playbook was triggered for in the run.

    The arm and time of each customer's first decision come from the operational store (DuckDB or PostgreSQL),
    the outcome and the time it was observed from DuckDB, joined by customer id here (never by copying a table
    across). ``status``: ``counted`` (observed after the decision and at most ``window`` after it), ``before``
    (observed at or before it), ``after_window``, ``no_time`` (observed at an unknown time) or ``missing``."""
    with store.ops.read() as con:
        arms = store.ops.sql.fire_arms(con, playbook, run_id)
    cur = store.cursor()
    try:
        found = sql.outcome_observations(cur, outcome, [a[0] for a in arms])
    finally:
        cur.close()
    out = []
    for cid, arm, decided in arms:
        value, seen = found.get(cid, (None, None))
        if value is None or (isinstance(value, float) and math.isnan(value)):
            status = "missing"
        elif seen is None:
            status = "no_time"
        elif _utc(seen) <= _utc(decided):
            status = "before"
        elif _utc(seen) > _utc(decided) + window:
            status = "after_window"
        else:
            status = "counted"
        out.append((cid, arm, value, status))
    return out


def _utc(t: datetime) -> datetime:
    """An aware datetime in UTC (a naive one is taken as UTC, as the store does)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
