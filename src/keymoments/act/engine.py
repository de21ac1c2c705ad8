"""The playbook engine: a pure, deterministic step ``(state, event) -> (state', decisions)``.

``evaluate`` does no I/O: it reads one event (a plain tuple, see :data:`EVENT_COLUMNS`), updates the engine's
in-memory state (customer and journey aggregates, cooldowns, caps, a simulated budget ledger, open cases and
the timers of proactive triggers) and returns :class:`Decision` objects. Recording them (``fire``: decisions,
cases, ledger, outbox in one transaction) and delivering them (``act``: webhooks) happen afterwards, in
:mod:`keymoments.act.runner` and :mod:`keymoments.act.outbox`. Because the step only looks at one customer's
state (plus per-playbook daily caps, governance per employee or location and budget pools), it runs
partitioned by customer on Spark, with what customers share replayed afterwards
(:mod:`keymoments.act.spark_backtest`).

The state is mutated in place for speed (no copies per event); ``Engine.snapshot()`` deep-copies it when a
caller needs the before/after pair. Same events + same file + same seed => same decisions, bit for bit.

Speed: the playbooks are compiled once into closures, candidate playbooks are looked up by
``(touchpoint, outcome)`` in a memo, events are tuples, timestamps integer microseconds, and no pydantic object
or SQL statement is touched per event.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keymoments.act.holdouts import GLOBAL_SALT, unit_hash
from keymoments.act.models import (
    AbsenceTrigger,
    CompensateAction,
    EventMatch,
    FieldCondition,
    HistoryCondition,
    JourneyCondition,
    JourneyEndTrigger,
    MilestoneTrigger,
    OpenCaseAction,
    Playbook,
    PlaybookFile,
)
from keymoments.act.patterns import compile_pattern
from keymoments.events import CRISIS_OUTCOMES

__all__ = ["EVENT_COLUMNS", "Decision", "Engine", "event_tuple", "period_id", "period_start"]

#: The order of the fields of an event tuple (what the store's reader selects).
EVENT_COLUMNS: tuple[str, ...] = (
    "seq",
    "ts_us",
    "customer_id",
    "journey_id",
    "touchpoint",
    "stage",
    "channel",
    "outcome",
    "rating",
    "valence",
    "value",
    "text",
    "employee_id",
    "location_id",
    "event_id",
    "attrs",
)
(SEQ, TS, CUST, JOURNEY, TP, STAGE, CHANNEL, OUTCOME, RATING, VALENCE, VALUE, TEXT, EMP, LOC, EID, ATTRS) = range(16)
_FIELD_INDEX = {name: i for i, name in enumerate(EVENT_COLUMNS)}

_US_HOUR = 3_600_000_000
_US_DAY = 24 * _US_HOUR
#: How long the engine follows an open case for resolution and handoffs.
CASE_TRACK_DAYS = 30
_CASE_TRACK_US = CASE_TRACK_DAYS * _US_DAY

# customer state slots
C_N, C_JOURNEYS, C_JSET, C_FIRST, C_LAST, C_SPEND, C_CRISES, C_VSUM, C_VN, C_VLAST = range(10)
# journey state slots
J_N, J_CRISES, J_VMIN, J_VMAX, J_VSUM, J_VN, J_VLAST, J_LAST, J_CUST, J_ENDED, J_EMP, J_LOC = range(12)


def event_tuple(ev: dict[str, Any], seq: int = 0) -> tuple[Any, ...]:
    """Turn an event dict (contract field names; ``ts`` a datetime, ISO string or epoch) into an engine tuple."""
    ts = ev.get("ts_us")
    if ts is None:
        t = ev["ts"]
        if isinstance(t, str):
            t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        if isinstance(t, datetime):
            if t.tzinfo is None:
                t = t.replace(tzinfo=UTC)
            ts = int(t.timestamp() * 1_000_000)
        else:
            ts = int(float(t) * 1_000_000)
    vals = dict(ev)
    vals["ts_us"] = ts
    vals.setdefault("seq", seq)
    if not vals.get("journey_id"):
        vals["journey_id"] = vals["customer_id"]
    if not vals.get("event_id"):
        vals["event_id"] = f"{vals['customer_id']}:{ts}:{vals.get('touchpoint', '')}:{seq}"
    return tuple(vals.get(c) for c in EVENT_COLUMNS)


_month_cache: dict[int, tuple[int, int]] = {}


def _ym(day: int) -> tuple[int, int]:
    ym = _month_cache.get(day)
    if ym is None:
        d = datetime.fromtimestamp(day * 86400, UTC)
        ym = _month_cache[day] = (d.year, d.month)
    return ym


def period_id(period: str, ts_us: int) -> int:
    """The number of the period (UTC) that ``ts_us`` falls in; weeks start on Monday."""
    if period == "total":
        return 0
    day = ts_us // _US_DAY
    if period == "day":
        return day
    if period == "week":
        return (day + 3) // 7
    y, m = _ym(day)
    if period == "month":
        return y * 12 + m - 1
    if period == "quarter":
        return y * 4 + (m - 1) // 3
    return y  # year


def period_start(period: str, pid: int) -> datetime:
    """The first instant (UTC) of period number ``pid``."""
    if period == "total":
        return datetime(1970, 1, 1, tzinfo=UTC)
    if period == "day":
        return datetime.fromtimestamp(pid * 86400, UTC)
    if period == "week":
        return datetime.fromtimestamp((pid * 7 - 3) * 86400, UTC)
    if period == "month":
        return datetime(pid // 12, pid % 12 + 1, 1, tzinfo=UTC)
    if period == "quarter":
        return datetime(pid // 4, (pid % 4) * 3 + 1, 1, tzinfo=UTC)
    return datetime(pid, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Decision:
    """What the engine decided: a playbook fired (or was held out / blocked), or a case it opened changed.

    ``kind`` is ``fire`` or ``case_update``. For ``fire``, ``status`` is ``fired``, ``held_out`` or
    ``blocked`` (every action was blocked); ``needs_approval`` and ``budget_blocked`` flag the compensation.
    For ``case_update``, ``status`` is ``handoff`` or ``resolved``.
    """

    decision_id: str
    playbook: str
    kind: str
    status: str
    trigger: str
    customer_id: str
    journey_id: str | None
    event_id: str | None
    ts_us: int
    seq: int
    arm: str = "treatment"
    actions: tuple[dict[str, Any], ...] = ()
    cost_cents: int = 0
    budget: str | None = None
    budget_key: str | None = None
    budget_period: int | None = None
    needs_approval: bool = False
    budget_blocked: bool = False
    employee_id: str | None = None
    location_id: str | None = None
    case_id: str | None = None
    touchpoint: str | None = None
    outcome: str | None = None
    text: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_us / 1_000_000, UTC)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        d["ts"] = self.ts.isoformat()
        d["actions"] = list(self.actions)
        return d


def _did(*parts: object) -> str:
    return hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=10).hexdigest()


# -- compiling ---------------------------------------------------------------------------------------------
def _compile_match(m: EventMatch) -> Callable[[tuple], bool]:
    """One closure testing every criterion of an EventMatch on an event tuple."""
    checks: list[Callable[[tuple], bool]] = []
    if m.touchpoint:
        tps = frozenset(m.touchpoint)
        checks.append(lambda e: e[TP] in tps)
    if m.outcome:
        outs = frozenset(m.outcome)
        checks.append(lambda e: e[OUTCOME] in outs)
    if m.stage:
        stages = frozenset(m.stage)
        checks.append(lambda e: e[STAGE] in stages)
    if m.channel:
        chans = frozenset(m.channel)
        checks.append(lambda e: e[CHANNEL] in chans)
    if m.valence_below is not None:
        lo = m.valence_below
        checks.append(lambda e: e[VALENCE] is not None and e[VALENCE] < lo)
    if m.valence_above is not None:
        hi = m.valence_above
        checks.append(lambda e: e[VALENCE] is not None and e[VALENCE] > hi)
    if m.text_pattern:
        rx = compile_pattern(m.text_pattern)  # RE2: linear time, whatever the pattern
        checks.append(lambda e: bool(e[TEXT]) and rx.search(e[TEXT]) is not None)
    if m.min_value is not None:
        mv = m.min_value
        checks.append(lambda e: e[VALUE] is not None and e[VALUE] >= mv)
    if m.has_employee is not None:
        want = m.has_employee
        checks.append(lambda e: bool(e[EMP]) is want)
    if not checks:
        return lambda e: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda e: a(e) and b(e)
    return lambda e: all(c(e) for c in checks)


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "exists": lambda a, b: a is not None and a != "",
    "missing": lambda a, b: a is None or a == "",
}


def _attr(e: tuple, key: str) -> Any:
    a = e[ATTRS]
    if not a:
        return None
    if isinstance(a, str):
        try:
            a = json.loads(a)
        except ValueError:
            return None
    return a.get(key) if isinstance(a, dict) else None


def _compile_condition(c: Any, pb_idx: int, fires: dict) -> Callable[[tuple, list, list], bool]:
    if isinstance(c, FieldCondition):
        if c.op == "regex":
            rx = compile_pattern(str(c.value))
            cmp: Callable[[Any, Any], bool] = lambda a, b: a is not None and rx.search(str(a)) is not None  # noqa: E731
        else:
            cmp = _CMP[c.op]
        value = frozenset(c.value) if c.op in ("in", "not_in") else c.value
        if c.field.startswith("attrs."):
            key = c.field[6:]
            return lambda e, cs, js: cmp(_attr(e, key), value)
        i = _FIELD_INDEX[c.field]
        return lambda e, cs, js: cmp(e[i], value)
    cmp = _CMP[c.op]
    v = c.value
    if isinstance(c, HistoryCondition):
        getters: dict[str, Callable[[tuple, list], Any]] = {
            "events": lambda e, cs: cs[C_N],
            "journeys": lambda e, cs: cs[C_JOURNEYS],
            "crises": lambda e, cs: cs[C_CRISES],
            "spend": lambda e, cs: cs[C_SPEND],
            "tenure_days": lambda e, cs: (cs[C_LAST] - cs[C_FIRST]) / _US_DAY,
            "fires": lambda e, cs: fires.get((pb_idx, e[CUST]), 0),
            "mean_valence": lambda e, cs: cs[C_VSUM] / cs[C_VN] if cs[C_VN] else None,
            "last_valence": lambda e, cs: cs[C_VLAST],
        }
        g = getters[c.metric]
        return lambda e, cs, js: cmp(g(e, cs), v)
    assert isinstance(c, JourneyCondition)
    jg: dict[str, Callable[[list], Any]] = {
        "events": lambda js: js[J_N],
        "crises": lambda js: js[J_CRISES],
        "min_valence": lambda js: js[J_VMIN],
        "max_valence": lambda js: js[J_VMAX],
        "mean_valence": lambda js: js[J_VSUM] / js[J_VN] if js[J_VN] else None,
        "last_valence": lambda js: js[J_VLAST],
    }
    g2 = jg[c.metric]
    return lambda e, cs, js: cmp(g2(js), v)


def _all_of(fs: list[Callable[[tuple, list, list], bool]]) -> Callable[[tuple, list, list], bool] | None:
    if not fs:
        return None
    if len(fs) == 1:
        return fs[0]
    if len(fs) == 2:
        a, b = fs
        return lambda e, cs, js: a(e, cs, js) and b(e, cs, js)
    return lambda e, cs, js: all(f(e, cs, js) for f in fs)


_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a fast, well-mixed 64-bit hash of an integer."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class _PB:
    """A playbook compiled to plain Python (slots, closures, ints)."""

    __slots__ = (
        "idx", "name", "trigger", "kind", "match", "conds", "prob", "seed_key", "per", "cooldown_us", "cap",
        "cap_period", "max_per_day", "holdout_share", "holdout_salt", "actions", "costs",
        "case", "expect", "within_us", "same_journey", "quiet_us", "end_tps", "mile_metric", "mile_at",
        "priority", "order", "filter_tp", "filter_out",
    )  # fmt: skip


_PER_INDEX = {"customer": CUST, "employee": EMP, "location": LOC, "journey": JOURNEY}


class Engine:
    """Evaluate playbooks over events, one at a time, deterministically.

    >>> from keymoments.act.yaml_loader import loads_playbooks
    >>> pf = loads_playbooks('''
    ... name: recover
    ... trigger: {type: crisis}
    ... actions: [{type: open_case, team: recovery}]
    ... ''')
    >>> eng = Engine(pf)
    >>> [d.status for d in eng.evaluate(event_tuple({"customer_id": "c1", "ts": 0, "touchpoint": "flight", "outcome": "cancelled"}))]
    ['fired']
    """

    def __init__(self, file: PlaybookFile, *, seed: int | None = None, simulate_budgets: bool = True) -> None:
        self.file = file
        #: True (backtests): budget pools are simulated here, in *event-time* periods (a spend on an event of
        #: March draws from March's pool), and spends that would overdraw are blocked.
        #: False (live): costs are only tagged; the store's ledger, which also sees spends made by people
        #: through the API and approvals, decides when the decisions are fired, in the period of the wall clock.
        self.simulate_budgets = simulate_budgets
        self.seed = file.seed if seed is None else seed
        self.global_share = file.global_holdout
        self._pools = {b.name: (b.scope, b.period, b.amount_cents, b.limit_cents) for b in file.budgets}
        pbs = [p for p in file.playbooks if p.enabled]
        order = sorted(range(len(pbs)), key=lambda i: (-pbs[i].governance.priority, i))
        # state ----------------------------------------------------------------------------------------
        self.customers: dict[str, list] = {}
        self.journeys: dict[str, list] = {}
        self.fires: dict[tuple[int, str], int] = {}
        self.gov: dict[tuple[int, str], list] = {}  # (pb, per key) -> [last_ts, period, count]
        self.spent: dict[tuple[str, str, int], int] = {}  # (pool, scope key, period) -> cents reserved/spent
        #: (pool, customer, period) -> cents spent or reserved on the customer: the empowerment limit holds per
        #: case and per customer per period (the ledger's rule, simulated here in event time)
        self.limit_used: dict[tuple[str, str, int], int] = {}
        self.cases: dict[str, list[list]] = {}  # customer -> open cases [case_id, pb, owner, handoffs, opened]
        self.timers: list[tuple] = []  # heap of (deadline, n, kind, pb idx, key, token)
        self.waiting: dict[str, dict[tuple[int, str], tuple]] = {}  # customer -> {(pb, key): (token, journey, start)}
        self.holdout_cache: dict[tuple[int, str], str] = {}
        self.daily: dict[int, list[int]] = {}  # playbook -> [day, fires that day] (max_per_day)
        self._draw_keys: dict[tuple[int, str], int] = {}
        #: playbooks whose cooldown, cap and daily cap are left to the caller (a partitioned back-test applies
        #: the ones shared across customers afterwards, in time order: keymoments.act.spark_backtest)
        self.deferred: frozenset[int] = frozenset()
        #: when a list: the token of each timer whose firing returned a decision, in order (see advance)
        self.fired_tokens: list[int] | None = None
        self.clock = 0
        self._n = 0
        # compiled playbooks ---------------------------------------------------------------------------
        self.playbooks: list[_PB] = [self._compile(pbs[i], k) for k, i in enumerate(order)]
        self._on_event = [p for p in self.playbooks if p.kind in ("event", "crisis", "good_news", "end_tp")]
        self._milestones = [p for p in self.playbooks if p.kind == "milestone"]
        self._absence = [p for p in self.playbooks if p.kind == "absence"]
        self._quiet = [p for p in self.playbooks if p.quiet_us]
        self._cand: dict[tuple[Any, Any], tuple[_PB, ...]] = {}
        self._acand: dict[tuple[Any, Any], tuple[_PB, ...]] = {}
        self._crisis = frozenset(CRISIS_OUTCOMES)

    # -- compile ------------------------------------------------------------------------------------------
    def _compile(self, p: Playbook, idx: int) -> _PB:
        c = _PB()
        c.idx, c.name, c.order = idx, p.name, idx
        t = p.trigger
        c.trigger = t.type
        c.kind = t.type
        c.match = None
        c.quiet_us = 0
        c.end_tps = None
        c.expect = None
        c.within_us = 0
        c.same_journey = False
        c.mile_metric = None
        c.mile_at = ()
        tps_ = getattr(t, "touchpoint", None)
        outs_ = getattr(t, "outcome", None)
        c.filter_tp = frozenset(tps_) if tps_ else None
        c.filter_out = frozenset(outs_) if outs_ and not isinstance(t, AbsenceTrigger) else None
        if isinstance(t, AbsenceTrigger):  # absence playbooks are looked up by their 'after' match
            c.filter_tp = frozenset(t.after.touchpoint) if t.after.touchpoint else None
            c.filter_out = frozenset(t.after.outcome) if t.after.outcome else None
        if isinstance(t, JourneyEndTrigger):
            c.kind = "end_tp" if t.touchpoint else "journey_end"
            if t.touchpoint:
                tps = frozenset(t.touchpoint)
                c.end_tps = tps
                c.match = lambda e: e[TP] in tps
            if t.quiet_hours:
                c.quiet_us = int(t.quiet_hours * _US_HOUR)
        elif isinstance(t, MilestoneTrigger):
            c.mile_metric = t.metric
            c.mile_at = tuple(t.at)
        elif isinstance(t, AbsenceTrigger):
            c.match = _compile_match(t.after)
            c.expect = _compile_match(t.expect)
            c.within_us = int(t.within_hours * _US_HOUR)
            c.same_journey = t.same_journey
        else:
            c.match = _compile_match(t)
        c.conds = _all_of([_compile_condition(x, idx, self.fires) for x in p.conditions])
        g = p.governance
        c.prob = g.probability
        c.seed_key = f"{self.seed}:{p.name}"
        c.per = _PER_INDEX[g.per]
        c.cooldown_us = int(g.cooldown_hours * _US_HOUR)
        c.cap = g.max_per_customer
        c.cap_period = g.period
        c.max_per_day = g.max_per_day
        c.priority = g.priority
        c.holdout_share = p.holdout.share
        c.holdout_salt = p.holdout.salt or p.name
        c.actions = tuple(a.model_dump(mode="json") for a in p.actions)
        c.costs = tuple((a.budget, a.cents) for a in p.actions if isinstance(a, CompensateAction))
        c.case = next((a for a in p.actions if isinstance(a, OpenCaseAction)), None)
        if c.case is not None:
            c.case = (frozenset(c.case.resolve_on_outcome), c.case.resolve_when_valence_above, c.case.keep_owner,
                      c.case.owner, c.case.team, frozenset(c.case.resolve_on_touchpoint))
        return c

    def _candidates(self, tp: Any, outcome: Any) -> tuple[_PB, ...]:
        """Playbooks whose event trigger could match this (touchpoint, outcome) pair; memoised."""
        found = tuple(
            p
            for p in self._on_event
            if (p.filter_tp is None or tp in p.filter_tp) and (p.filter_out is None or outcome in p.filter_out)
        )
        self._cand[(tp, outcome)] = found
        return found

    # -- state helpers ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the mutable state (for tests and debugging)."""
        return copy.deepcopy(
            {k: getattr(self, k) for k in ("customers", "journeys", "fires", "gov", "spent", "limit_used", "cases", "timers", "waiting", "daily", "clock")}
        )

    def _arm(self, p: _PB, cust: str) -> str:
        key = (p.idx, cust)
        arm = self.holdout_cache.get(key)
        if arm is None:
            if self.global_share and unit_hash(GLOBAL_SALT, cust) < self.global_share:
                arm = "global_holdout"
            elif p.holdout_share and unit_hash(p.holdout_salt, cust) < p.holdout_share:
                arm = "holdout"
            else:
                arm = "treatment"
            self.holdout_cache[key] = arm
        return arm

    def _draw(self, p: _PB, cid: str, ts: int, suffix: str) -> float:
        """The seeded per-customer random draw of a randomised playbook, uniform in [0, 1).

        It mixes a per-(seed, playbook, customer) key (hashed once) with the customer's event count and the
        time, so the same history and seed give the same draws, and no customer can predict theirs."""
        key = (p.idx, cid)
        base = self._draw_keys.get(key)
        if base is None:
            base = self._draw_keys[key] = int(unit_hash(p.seed_key, cid) * 2**64)
        x = base ^ _mix64(self.customers[cid][C_N] * 0x9E3779B1 + ts + len(suffix))
        return _mix64(x) / 18446744073709551616.0

    # -- the step -----------------------------------------------------------------------------------------
    def evaluate(self, e: tuple) -> list[Decision]:
        """Advance the clock to the event's time (firing due proactive triggers), then evaluate the event."""
        ts = e[TS]
        out: list[Decision] = []
        if self.timers and self.timers[0][0] <= ts:
            out.extend(self.advance(ts))
        if ts > self.clock:
            self.clock = ts
        cid = e[CUST]
        jid = e[JOURNEY] or cid
        val = e[VALENCE]
        outcome = e[OUTCOME]
        # customer aggregates
        cs = self.customers.get(cid)
        if cs is None:
            cs = self.customers[cid] = [0, 0, set(), ts, ts, 0.0, 0, 0.0, 0, None]
        cs[C_N] += 1
        new_journey = jid not in cs[C_JSET]
        if new_journey:
            cs[C_JSET].add(jid)
            cs[C_JOURNEYS] += 1
        prev_last = cs[C_LAST]
        cs[C_LAST] = ts
        money = e[VALUE]
        prev_spend = cs[C_SPEND]
        if money is not None and money > 0:
            cs[C_SPEND] = prev_spend + money
        crisis = outcome in self._crisis
        if crisis:
            cs[C_CRISES] += 1
        # journey aggregates
        js = self.journeys.get(jid)
        if js is None:
            js = self.journeys[jid] = [0, 0, None, None, 0.0, 0, None, ts, cid, None, None, None]
        js[J_N] += 1
        js[J_LAST] = ts
        if crisis:
            js[J_CRISES] += 1
        if e[EMP]:
            js[J_EMP] = e[EMP]
        if e[LOC]:
            js[J_LOC] = e[LOC]
        if val is not None:
            if js[J_VMIN] is None or val < js[J_VMIN]:
                js[J_VMIN] = val
            if js[J_VMAX] is None or val > js[J_VMAX]:
                js[J_VMAX] = val
            js[J_VSUM] += val
            js[J_VN] += 1
            js[J_VLAST] = val
        # open cases of this customer: resolution, handoffs
        if cid in self.cases:
            self._case_updates(e, cid, out)
        # proactive timers waiting for this customer's contact
        if cid in self.waiting:
            self._stop_clocks(e, cid, jid)
        # event triggers
        cands = self._cand.get((e[TP], outcome))
        if cands is None:
            cands = self._candidates(e[TP], outcome)
        for p in cands:
            if p.match(e):
                if p.kind == "end_tp":
                    ended = js[J_ENDED]
                    if ended is not None and p.idx in ended:
                        continue
                    js[J_ENDED] = (ended or frozenset()) | {p.idx}
                if p.conds is None or p.conds(e, cs, js):
                    d = self._govern(p, e, cs, jid, ts)
                    if d is not None:
                        out.append(d)
        # milestones crossed
        for p in self._milestones:
            m = p.mile_metric
            if m == "journeys":
                if not new_journey:
                    continue
                before, now = cs[C_JOURNEYS] - 1, cs[C_JOURNEYS]
            elif m == "events":
                before, now = cs[C_N] - 1, cs[C_N]
            elif m == "spend":
                before, now = prev_spend, cs[C_SPEND]
                if before == now:
                    continue
            else:
                before, now = (prev_last - cs[C_FIRST]) / _US_DAY, (ts - cs[C_FIRST]) / _US_DAY
                if cs[C_N] == 1:
                    before = -1.0
            for at in p.mile_at:
                if before < at <= now:
                    if p.conds is None or p.conds(e, cs, js):
                        d = self._govern(p, e, cs, jid, ts, detail={"metric": m, "at": at, "value": now})
                        if d is not None:
                            out.append(d)
        # proactive: start clocks
        starts = self._acand.get((e[TP], outcome)) if self._absence else ()
        if starts is None:
            starts = self._acand[(e[TP], outcome)] = tuple(
                p for p in self._absence
                if (p.filter_tp is None or e[TP] in p.filter_tp) and (p.filter_out is None or outcome in p.filter_out)
            )  # fmt: skip
        for p in starts:
            if p.match(e) and (p.conds is None or p.conds(e, cs, js)):
                key = jid if p.same_journey else cid
                token = self._n = self._n + 1
                self.waiting.setdefault(cid, {})[(p.idx, key)] = (token, jid, e)
                heapq.heappush(self.timers, (ts + p.within_us, token, "absence", p.idx, key, cid))
        # sign-off by quiet time: arm one timer per journey; it re-arms itself while the journey is active
        for p in self._quiet:
            ended = js[J_ENDED]
            if ended is not None and (p.idx in ended or -p.idx - 1 in ended):
                continue
            js[J_ENDED] = (ended or frozenset()) | {-p.idx - 1}
            self._n += 1
            heapq.heappush(self.timers, (ts + p.quiet_us, self._n, "quiet", p.idx, jid, cid))
        if val is not None:
            cs[C_VSUM] += val
            cs[C_VN] += 1
            cs[C_VLAST] = val
        return out

    def run(self, events: Iterable[tuple], *, until_us: int | None = None) -> list[Decision]:
        """Evaluate every event in order, then advance to ``until_us`` (default: the last event's time)."""
        out: list[Decision] = []
        ev = self.evaluate
        for e in events:
            d = ev(e)
            if d:
                out.extend(d)
        out.extend(self.advance(self.clock if until_us is None else until_us))
        return out

    # -- proactive triggers ---------------------------------------------------------------------------------
    def advance(self, now_us: int) -> list[Decision]:
        """Move the clock to ``now_us`` and fire every proactive trigger that fell due (strictly before it)."""
        out: list[Decision] = []
        timers = self.timers
        while timers and timers[0][0] <= now_us:
            deadline, token, kind, pidx, key, cid = heapq.heappop(timers)
            p = self.playbooks[pidx]
            if kind == "absence":
                w = self.waiting.get(cid)
                entry = w.get((pidx, key)) if w else None
                if entry is None or entry[0] != token:
                    continue  # stopped by a contact, or superseded by a newer start
                del w[(pidx, key)]
                if not w:
                    del self.waiting[cid]
                start = entry[2]
                cs = self.customers[cid]
                js = self.journeys.get(entry[1])
                self.clock = max(self.clock, deadline)
                d = self._govern(p, start, cs, entry[1], deadline, detail={"waited_hours": p.within_us / _US_HOUR},
                                 id_suffix=f"absence:{deadline}")
                if d is not None:
                    out.append(d)
                    if self.fired_tokens is not None:
                        self.fired_tokens.append(token)
                del js
            else:  # quiet journey end
                js = self.journeys.get(key)
                if js is None:
                    continue
                if js[J_LAST] + p.quiet_us > deadline:
                    heapq.heappush(timers, (js[J_LAST] + p.quiet_us, token, kind, pidx, key, cid))
                    continue
                ended = js[J_ENDED] or frozenset()
                js[J_ENDED] = (ended - {-pidx - 1}) | {pidx}
                if p.idx in ended:
                    continue  # already signed off at an ending touchpoint
                cs = self.customers[cid]
                last = (js[J_N], cid, key)
                probe = [None] * len(EVENT_COLUMNS)
                probe[CUST], probe[JOURNEY], probe[TS], probe[EMP], probe[LOC] = cid, key, deadline, js[J_EMP], js[J_LOC]
                probe[EID] = f"{key}:end"
                e = tuple(probe)
                self.clock = max(self.clock, deadline)
                if p.conds is None or p.conds(e, cs, js):
                    d = self._govern(p, e, cs, key, deadline, detail={"journey_events": last[0]}, id_suffix="end")
                    if d is not None:
                        out.append(d)
                        if self.fired_tokens is not None:
                            self.fired_tokens.append(token)
        if now_us > self.clock:
            self.clock = now_us
        return out

    def _stop_clocks(self, e: tuple, cid: str, jid: str) -> None:
        w = self.waiting[cid]
        for (pidx, key), (_token, tj, start) in list(w.items()):
            if start is e:
                continue
            p = self.playbooks[pidx]
            if p.same_journey and tj != jid:
                continue
            if p.expect(e):
                del w[(pidx, key)]
        if not w:
            del self.waiting[cid]

    # -- cases --------------------------------------------------------------------------------------------
    def _case_updates(self, e: tuple, cid: str, out: list[Decision]) -> None:
        """Resolve the customer's open cases on a resolving event; count (and, going the distance, record)
        handoffs. Cases stop being tracked after :data:`CASE_TRACK_DAYS` (they stay open in the store)."""
        still = []
        ts = e[TS]
        for case in self.cases[cid]:
            case_id, pidx, owner, handoffs, opened, src_eid = case
            if src_eid == e[EID]:
                still.append(case)
                continue
            if ts - opened > _CASE_TRACK_US:
                continue
            p = self.playbooks[pidx]
            resolve_on, resolve_val, keep_owner, _owner_kind, _team, resolve_tps = p.case
            emp = e[EMP]
            if emp and owner is not None and emp != owner:
                case[3] = handoffs = handoffs + 1
                if keep_owner:
                    out.append(self._case_decision(p, e, case_id, "handoff",
                                                   {"owner": owner, "served_by": emp, "handoffs": handoffs}))
                else:
                    case[2] = emp
            elif emp and owner is None:
                case[2] = emp
            v = e[VALENCE]
            if (e[OUTCOME] in resolve_on or e[TP] in resolve_tps
                    or (resolve_val is not None and v is not None and v > resolve_val)):
                out.append(self._case_decision(p, e, case_id, "resolved", {
                    "owner": case[2], "first_owner_kept": handoffs == 0 or keep_owner, "handoffs": handoffs,
                    "hours_open": (ts - opened) / _US_HOUR, "valence": v, "outcome": e[OUTCOME]}))
            else:
                still.append(case)
        if still:
            self.cases[cid] = still
        else:
            del self.cases[cid]

    def _case_decision(self, p: _PB, e: tuple, case_id: str, status: str, detail: dict) -> Decision:
        return Decision(
            decision_id=_did(p.name, case_id, status, e[EID]), playbook=p.name, kind="case_update", status=status,
            trigger=p.trigger, customer_id=e[CUST], journey_id=e[JOURNEY], event_id=e[EID], ts_us=e[TS], seq=e[SEQ] or 0,
            employee_id=e[EMP], location_id=e[LOC], case_id=case_id, touchpoint=e[TP], outcome=e[OUTCOME],
            detail=detail,
        )

    # -- governance: probability, caps, holdout, budget ---------------------------------------------------
    def _govern(self, p: _PB, e: tuple, cs: list, jid: str, ts: int, detail: dict | None = None,
                id_suffix: str = "") -> Decision | None:
        cid = e[CUST]
        eid = e[EID]
        deferred = p.idx in self.deferred
        if not deferred:
            per_key = e[p.per] or cid
            pid = period_id(p.cap_period, ts) if p.cap else 0
            if not self._admit(p, per_key, ts, pid):
                return None
        if p.prob < 1.0 and self._draw(p, cid, ts, id_suffix) >= p.prob:
            return None
        if not deferred and not self._take(p, per_key, ts, pid):
            return None
        self.fires[(p.idx, cid)] = self.fires.get((p.idx, cid), 0) + 1
        arm = self._arm(p, cid)
        d = Decision(
            decision_id=_did(p.name, eid, id_suffix), playbook=p.name, kind="fire", status="fired", trigger=p.trigger,
            customer_id=cid, journey_id=jid, event_id=eid, ts_us=ts, seq=e[SEQ] or 0, arm=arm,
            employee_id=e[EMP], location_id=e[LOC], touchpoint=e[TP], outcome=e[OUTCOME], text=e[TEXT],
            detail=detail or {},
        )
        if arm != "treatment":
            d.status = "held_out"
            return d
        d.actions = p.actions
        if p.costs:
            self._charge(p, d)
        if p.case is not None and d.status == "fired":
            d.case_id = "case-" + d.decision_id
            owner = e[EMP] if p.case[3] == "employee" else None
            self.cases.setdefault(cid, []).append([d.case_id, p.idx, owner, 0, ts, eid])
        return d

    def _admit(self, p: _PB, per_key: str, ts: int, pid: int) -> bool:
        """The playbook's cooldown and cap for its 'per' key allow a firing at ``ts`` (``pid``: the cap's period)."""
        g = self.gov.get((p.idx, per_key))
        if g is not None:
            if p.cooldown_us and ts - g[0] < p.cooldown_us:
                return False
            if p.cap and g[1] == pid and g[2] >= p.cap:
                return False
        return True

    def _take(self, p: _PB, per_key: str, ts: int, pid: int) -> bool:
        """Count a firing against the playbook's daily cap (False: the day is full) and its 'per' key."""
        if p.max_per_day:
            day = ts // _US_DAY
            dc = self.daily.get(p.idx)
            if dc is None or dc[0] != day:
                dc = self.daily[p.idx] = [day, 0]
            if dc[1] >= p.max_per_day:
                return False
            dc[1] += 1
        g = self.gov.get((p.idx, per_key))
        if g is None:
            self.gov[(p.idx, per_key)] = [ts, pid, 1]
        else:
            g[0] = ts
            if g[1] == pid:
                g[2] += 1
            else:
                g[1], g[2] = pid, 1
        return True

    def _charge(self, p: _PB, d: Decision) -> None:
        """Draw a fired decision's compensations from their pools (simulated in event time, or only tagged)."""
        ts, cid = d.ts_us, d.customer_id
        for pool_name, cents in p.costs:
            scope, period, amount, limit = self._pools[pool_name]
            key = {"global": "*", "employee": d.employee_id, "location": d.location_id, "team": _team_of(p)}.get(scope) or "*"
            ppid = period_id(period, ts)
            bkey = (pool_name, key, ppid)
            spent = self.spent.get(bkey, 0)
            d.budget, d.budget_key, d.budget_period = pool_name, key, ppid
            if not self.simulate_budgets:
                d.cost_cents += cents
                d.needs_approval = d.needs_approval or (limit is not None and cents > limit)
                continue
            if spent + cents > amount:
                d.budget_blocked = True
                d.detail["budget_left_cents"] = amount - spent
                continue
            self.spent[bkey] = spent + cents
            d.cost_cents += cents
            ukey = (pool_name, cid, ppid)  # the decision's case is new: the customer's period covers it
            used = self.limit_used.get(ukey, 0) + cents
            self.limit_used[ukey] = used
            if limit is not None and used > limit:
                d.needs_approval = True
        if d.budget_blocked and len(p.actions) == len(p.costs):
            d.status = "blocked"


def _team_of(p: _PB) -> str:
    return p.case[4] if p.case is not None else "*"


