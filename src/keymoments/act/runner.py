"""Backtest and live runs: ``evaluate`` (the pure engine) -> ``fire`` (record) -> ``act`` (the outbox worker).

* :meth:`PlaybookRunner.backtest` replays the store's history in event order through the engine and
  summarises, per playbook, what fired, cost, budget blocks, approvals needed and cases opened. It writes
  nothing unless ``record=True`` (then only its decisions, under its own run id).
* :meth:`PlaybookRunner.run_live` processes the events that arrived since the last live run (arrival order,
  ``seq``), with the same engine: the state is rebuilt by replaying the events already processed (the engine
  is deterministic, so it reaches the same state), then the new events' decisions are *fired*: decisions,
  holdout assignments, cases, ledger entries and outbox messages are written in one transaction per batch,
  together with the cursor (the last ``seq`` processed). A crash before the commit loses nothing (the batch is
  processed again); a crash after it duplicates nothing (decision, case, ledger and message ids are derived
  from the decision id, and inserts of existing ids are skipped).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from keymoments.act import decision_log
from keymoments.act.budgets import Ledger
from keymoments.act.cases import _fill
from keymoments.act.decision_log import DecisionLog
from keymoments.act.engine import Decision, Engine
from keymoments.act.models import PlaybookFile
from keymoments.money import to_cents
from keymoments.store import act_tables
from keymoments.store.ops import OperationalStore, ops_of
from keymoments.store.store import Store

__all__ = ["BacktestResult", "LiveResult", "LiveStream", "PlaybookRunner", "file_hash", "summarise"]

SUMMARY_COLUMNS = [
    "playbook", "triggered", "fired", "held_out", "blocked", "budget_blocks", "approvals_needed", "cases_opened",
    "cases_resolved", "handoffs", "cost", "customers",
]  # fmt: skip


#: How each kind of run counts budget periods (said in its results, so a back-test's spend is not read as live).
BACKTEST_BUDGET_PERIODS = "simulated in event time: each spend draws from the period of its event's timestamp"
LIVE_BUDGET_PERIODS = "wall clock: each spend draws from the period in which it was decided"


def file_hash(file: PlaybookFile) -> str:
    """What identifies a file's decisions (its live run is ``live-<hash>``). ``measure`` is left out: how
    uplift is measured decides nothing, and leaving it out keeps the hash of files written before it."""
    dump = file.model_dump_json(exclude={"playbooks": {"__all__": {"measure"}}})
    return hashlib.sha256(dump.encode()).hexdigest()[:16]


def summarise(decisions: Iterable[Decision], file: PlaybookFile) -> pd.DataFrame:
    """Per playbook: triggered, fired, held out, blocked, budget blocks, approvals needed, cases, cost."""
    rows: dict[str, Counter] = {p.name: Counter() for p in file.playbooks if p.enabled}
    custs: dict[str, set] = defaultdict(set)
    for d in decisions:
        c = rows.setdefault(d.playbook, Counter())
        if d.kind == "fire":
            c["triggered"] += 1
            c[d.status] += 1
            c["budget_blocks"] += d.budget_blocked
            c["approvals_needed"] += d.needs_approval
            c["cases_opened"] += d.case_id is not None
            c["cost_cents"] += d.cost_cents
            if d.status == "fired":
                custs[d.playbook].add(d.customer_id)
        elif d.status == "resolved":
            c["cases_resolved"] += 1
        elif d.status == "handoff":
            c["handoffs"] += 1
    out = []
    for name, c in rows.items():
        out.append({
            "playbook": name, "triggered": c["triggered"], "fired": c["fired"], "held_out": c["held_out"],
            "blocked": c["blocked"], "budget_blocks": c["budget_blocks"], "approvals_needed": c["approvals_needed"],
            "cases_opened": c["cases_opened"], "cases_resolved": c["cases_resolved"], "handoffs": c["handoffs"],
            "cost": c["cost_cents"] / 100, "customers": len(custs[name]),
        })  # fmt: skip
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


@dataclass
class BacktestResult:
    """What a backtest decided: the decisions (a :class:`~keymoments.act.decision_log.DecisionLog`, read as a
    list), a per-playbook ``summary`` and the run's figures."""

    run_id: str
    events: int
    seconds: float
    decisions: Sequence[Decision]
    summary: pd.DataFrame
    seed: int
    recorded: bool = False

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "mode": "backtest", "events": self.events, "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second), "seed": self.seed, "recorded": self.recorded,
            "decisions": len(self.decisions), "budget_periods": BACKTEST_BUDGET_PERIODS,
            "playbooks": self.summary.to_dict(orient="records"),
        }  # fmt: skip

    def print_summary(self) -> None:
        print(f"backtest {self.run_id}: {self.events} events, {len(self.decisions)} decisions, "
              f"{self.events_per_second:,.0f} events/s")
        print(f"budgets: {BACKTEST_BUDGET_PERIODS}")
        print(self.summary.to_string(index=False))


@dataclass
class LiveResult:
    """What a live pass did: events processed, decisions fired, and what was written."""

    run_id: str
    events: int
    decisions: list[Decision]
    written: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        by = Counter((d.playbook, d.status) for d in self.decisions)
        return {
            "run_id": self.run_id, "mode": "live", "events": self.events, "decisions": len(self.decisions),
            "last_seq": self.last_seq, "written": self.written, "budget_periods": LIVE_BUDGET_PERIODS,
            "by_playbook": [{"playbook": p, "status": s, "count": n} for (p, s), n in sorted(by.items())],
        }  # fmt: skip


def _decision_row(d: Decision, run_id: str, mode: str, now: datetime) -> tuple:
    return (
        run_id, d.decision_id, mode, d.playbook, d.kind, d.status, d.trigger, d.customer_id, d.journey_id,
        d.event_id, d.ts, d.seq, d.arm, d.cost_cents, d.budget, d.budget_key, d.needs_approval, d.budget_blocked,
        d.employee_id, d.location_id, d.case_id, json.dumps(list(d.actions), default=str),
        json.dumps(d.detail, default=str), now,
    )  # fmt: skip


class PlaybookRunner:
    """Run a playbook file over a store: ``backtest()`` over history, ``run_live()`` over new events."""

    def __init__(self, store: Store | None, file: PlaybookFile, *, seed: int | None = None, source: str | None = None,
                 ops: OperationalStore | None = None) -> None:  # fmt: skip
        """``store``: the events (DuckDB); ``ops``: where decisions and their effects go (default: the store's
        operational store). A broker worker passes ``store=None`` and its ``ops``: its events come from the
        stream, not the store."""
        self.store = store
        self.ops = ops if ops is not None else ops_of(store)
        self.file = file
        self.seed = file.seed if seed is None else seed
        self.source = source
        self.hash = file_hash(file)
        self.ledger = Ledger(self.ops, file)
        self.live_run_id = f"live-{self.hash}"

    # -- backtest ------------------------------------------------------------------------------------------
    def backtest(self, *, record: bool = False, run_id: str | None = None) -> BacktestResult:
        """Replay the store's history in event order; on a :class:`~keymoments.store.spark.SparkStore` the
        engine runs per customer on Spark and the driver reconciles budgets (the same decisions, see
        :mod:`keymoments.act.spark_backtest`)."""
        t0 = time.perf_counter()
        if getattr(self.store, "spark", None) is not None:
            from keymoments.act.spark_backtest import spark_backtest

            n, decisions = spark_backtest(self.store, self.file, self.seed)  # type: ignore[arg-type]
        else:
            n, decisions = self._embedded_backtest()
        seconds = time.perf_counter() - t0
        run_id = run_id or f"bt-{self.hash}-{self.seed}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        result = BacktestResult(run_id, n, seconds, decisions, summarise(decisions, self.file), self.seed)
        if record:
            self._record_backtest(result)
        return result

    def _embedded_backtest(self) -> tuple[int, DecisionLog]:
        """Every event of the DuckDB store through one engine, in (ts, seq) order."""
        engine = Engine(self.file, seed=self.seed)
        cur = self.store.cursor()
        n = 0
        decisions = DecisionLog()
        ev = engine.evaluate
        try:
            for chunk in act_tables.iter_events(cur, order="ts"):
                n += len(chunk)
                for e in chunk:
                    d = ev(e)
                    if d:
                        decisions.extend(d)
        finally:
            cur.close()
        decisions.extend(engine.advance(engine.clock))
        return n, decisions

    def _record_backtest(self, result: BacktestResult) -> None:
        """The run, its decisions and its holdout assignments in one transaction; the decisions go in blocks of
        :data:`~keymoments.act.decision_log.CHUNK`, so memory does not grow with them."""
        now = datetime.now(UTC)
        sql = self.ops.sql
        holdouts = self._holdout_rows(result.decisions)
        with self.ops.write() as con:
            sql.insert_run(con, {
                "run_id": result.run_id, "mode": "backtest", "source": self.source, "file_hash": self.hash,
                "seed": self.seed, "started_at": now, "finished_at": now, "events": result.events,
                "decisions": len(result.decisions), "last_seq": None,
            })  # fmt: skip
            block: list[tuple] = []
            for d in result.decisions:
                block.append(_decision_row(d, result.run_id, "backtest", now))
                if len(block) >= decision_log.CHUNK:
                    sql.insert_decisions_frame(con, pd.DataFrame(block, columns=list(sql._DECISION_COLS)))
                    block = []
            if block:
                sql.insert_decisions_frame(con, pd.DataFrame(block, columns=list(sql._DECISION_COLS)))
            sql.upsert_holdouts(con, holdouts)
        result.recorded = True

    def _holdout_rows(self, decisions: Iterable[Decision]) -> list[tuple]:
        shares = {p.name: p.holdout.share for p in self.file.playbooks}
        seen: dict[tuple[str, str], tuple] = {}
        for d in decisions:
            if d.kind == "fire" and (d.playbook, d.customer_id) not in seen:
                seen[(d.playbook, d.customer_id)] = (
                    d.playbook, d.customer_id, d.arm, shares.get(d.playbook, 0.0), self.file.global_holdout, d.ts,
                )
        return list(seen.values())

    # -- live ----------------------------------------------------------------------------------------------
    def live_engine(self) -> tuple[Engine, int]:
        """An engine whose state is rebuilt from the events the live run already processed, and that seq."""
        with self.ops.read() as con:
            run = self.ops.sql.get_run(con, self.live_run_id)
        last = int(run["last_seq"]) if run and run["last_seq"] is not None else 0
        cur = self.store.cursor()
        try:
            engine = Engine(self.file, seed=self.seed, simulate_budgets=False)  # the ledger decides live
            if last:
                ev = engine.evaluate
                for chunk in act_tables.iter_events(cur, order="seq", upto_seq=last):
                    for e in chunk:
                        ev(e)
        finally:
            cur.close()
        return engine, last

    def go_live(self) -> int:
        """Start the live run at the store's present: the events stored so far are history the engine learns
        from (cooldowns, caps, milestones, journeys) but never acts on; :meth:`run_live` acts on the events
        that arrive after. Returns the live run's cursor; does nothing when the live run already exists."""
        cur = self.store.cursor()
        try:
            last = act_tables.max_seq(cur)  # the events live in DuckDB whatever holds the decisions
        finally:
            cur.close()
        with self.ops.write() as con:
            run = self.ops.sql.get_run(con, self.live_run_id)
            if run is not None:
                return int(run["last_seq"] or 0)
            self._touch_run(con, last)
        return last

    def run_live(self, *, engine: Engine | None = None, last_seq: int | None = None, batch: int = 2_000,
                 now: datetime | None = None) -> LiveResult:  # fmt: skip
        """Process events that arrived since the last live pass; fire their decisions; return what was done.

        ``now`` advances the clock for proactive triggers (default: the latest event's time, so a re-run over
        the same store decides the same; pass ``datetime.now(UTC)`` to fire timers that fell due in real time).
        """
        if engine is None or last_seq is None:
            engine, last_seq = self.live_engine()
        cur = self.store.cursor()
        total = 0
        fired: list[Decision] = []
        written: Counter = Counter()
        try:
            for chunk in act_tables.iter_events(cur, order="seq", after_seq=last_seq, chunk=batch):
                out: list[Decision] = []
                for e in chunk:
                    d = engine.evaluate(e)
                    if d:
                        out.extend(d)
                last_seq = int(chunk[-1][0])
                total += len(chunk)
                written.update(self.fire(out, last_seq=last_seq))
                fired.extend(out)
        finally:
            cur.close()
        if now is not None:
            due = engine.advance(int(now.timestamp() * 1_000_000))
            if due:
                written.update(self.fire(due, last_seq=last_seq))
                fired.extend(due)
        if total == 0 and not fired:
            with self.ops.write() as con:
                self._touch_run(con, last_seq)
        return LiveResult(self.live_run_id, total, fired, dict(written), last_seq)

    def _touch_run(self, con: Any, last_seq: int, added: int = 0) -> None:
        self.ops.sql.touch_live_run(con, self.live_run_id, source=self.source, file_hash=self.hash, seed=self.seed,
                           last_seq=last_seq, added=added, now=datetime.now(UTC))  # fmt: skip

    # -- fire: record decisions and their effects ------------------------------------------------------------
    def fire(self, decisions: list[Decision], *, last_seq: int | None = None, con: Any = None,
             blind: bool = False, lock_pools: bool = True) -> Counter:  # fmt: skip
        """Record decisions with their cases, ledger entries and outbox messages in one transaction.

        Batched: a handful of statements per call, whatever the number of decisions. Budgets are checked
        against the pools' rows read (and, on PostgreSQL, locked) inside the transaction, and taken with one
        ``UPDATE`` per pool key, which the ``CHECK (remaining_cents >= 0)`` guards.

        ``blind=True`` (the broker worker, whose reads each cost a round trip): when no decision spends money or
        updates a case, skip the read of the decisions already recorded and insert every row with ``ON
        CONFLICT DO NOTHING`` instead; every id derives from the decision's, so a decision recorded before
        changes nothing. Money and case updates always read first: they must never apply twice.

        ``lock_pools=False`` (the worker's first try): the pools are read without a lock and locked by the
        ``UPDATE`` that takes the money, at the end of the transaction, so the row is held for the commit only;
        if others took the money meanwhile, ``CHECK (remaining_cents >= 0)`` fails the transaction and the
        caller tries again with the lock taken first."""
        if con is None:
            with self.ops.write() as c:
                return self.fire(decisions, last_seq=last_seq, con=c, blind=blind, lock_pools=lock_pools)
        sql = self.ops.sql
        written: Counter = Counter()
        now = datetime.now(UTC)
        run_id = self.live_run_id
        reqs = self._compensations(decisions, now)
        touched = [d.case_id for d in decisions if d.kind == "case_update" and d.case_id]
        blind = blind and not reqs and not touched
        # every read and lock at once (one round trip on PostgreSQL): pools, customers' limits, touched cases
        reads = sql.FireReads(set(), {}, {}, {}, {}) if blind else sql.fire_reads(
            con, run_id, [d.decision_id for d in decisions], list({r[4] for r in reqs}),
            [d.customer_id for d, *_ in reqs], list({(k[0], d.customer_id, k[2]) for d, _i, _a, _p, k in reqs}), touched,
            lock_pools=lock_pools,
        )  # fmt: skip
        new_pools = sorted({(p.name, k[1], p.period, k[2], p.amount_cents, p.currency, p.limit_cents)
                            for _d, _i, _a, p, k in reqs if k not in reads.remaining})  # fmt: skip
        if new_pools:  # a pool's first spend of its period (an insert into a row others update would wait on them)
            sql.ensure_pools(con, new_pools)
            more = sql.fire_reads(con, run_id, (), [(r[0], r[1], r[3]) for r in new_pools], (), (), (),
                                  lock_pools=lock_pools)  # fmt: skip
            reads.remaining.update(more.remaining)
        fresh = [d for d in decisions if d.decision_id not in reads.known]
        entries = self._fire_ledger(con, [r for r in reqs if r[0].decision_id not in reads.known], reads, now, written)
        outbox = self._fire_cases(con, fresh, entries, reads, now, written, ignore=blind)
        sql.insert_rows(con, "playbook_decisions", sql._DECISION_COLS,
                        [_decision_row(d, run_id, "live", now) for d in fresh], ignore=blind)  # fmt: skip
        sql.upsert_holdouts(con, self._holdout_rows(fresh))
        sql.insert_rows(con, "outbox", sql._OUTBOX_COLS, outbox, ignore=blind)  # ids derive from fresh decisions
        written["decisions"] += len(fresh)
        written["outbox"] += sum(1 for o in outbox if o[6] == "pending")
        if last_seq is not None:
            self._touch_run(con, last_seq, len(fresh))
        return written

    def _compensations(self, decisions: list[Decision], now: datetime) -> list[tuple]:
        """Each compensation to spend: (decision, action index, action, pool, (pool, scope key, period start))."""
        reqs = []
        for d in decisions:
            if d.kind == "fire" and d.status == "fired":
                for i, a in enumerate(d.actions):
                    if a["type"] == "compensate":
                        pool = self.ledger.pool(a["budget"])
                        key = (d.budget_key or "*") if pool.scope != "global" else "*"
                        # the period of the wall clock now, never of the event's timestamp (an event dated
                        # 1900 or 9999 must not open a pool of its own); back-tests simulate event time
                        reqs.append((d, i, a, pool, (pool.name, key, self.ledger._period(pool, now))))
        return reqs

    def _fire_ledger(self, con: Any, reqs: list[tuple], reads: Any, now: datetime,
                     written: Counter) -> dict[str, list[tuple]]:  # fmt: skip
        """Spend or reserve every compensation (the pools' rows and the customers' limits are locked by
        ``fire_reads``); returns {decision_id: [(entry_id, pool, cents, status, currency)]}."""
        sql = self.ops.sql
        if not reqs:
            return {}
        remaining, used = reads.remaining, Counter(reads.used)
        taken: Counter = Counter()
        rows, out = [], defaultdict(list)
        for d, i, a, pool, k in reqs:
            cents = to_cents(a["amount"], positive=True)  # what validation accepted; the same cents as a back-test
            left, limit = remaining[k]
            if cents > left - taken[k]:
                d.budget_blocked = True
                d.cost_cents = max(0, d.cost_cents - cents)
                d.detail["budget_error"] = (
                    f"budget {pool.name!r} ({k[1]}) has {(left - taken[k]) / 100:.2f} {pool.currency} left; "
                    f"{cents / 100:.2f} would overdraw it"
                )
                written["budget_blocked"] += 1
                continue
            taken[k] += cents
            ukey = (k[0], d.customer_id, k[2])
            used[ukey] += cents
            status = "pending_approval" if limit is not None and used[ukey] > limit else "approved"
            d.needs_approval = d.needs_approval or status == "pending_approval"
            eid = f"le-{d.decision_id}-{i}"
            rows.append((eid, pool.name, k[1], k[2], cents, status, d.case_id, d.decision_id, d.customer_id,
                         d.employee_id or "engine", a.get("kind"), now, now if status == "approved" else None,
                         "auto (within empowerment limit)" if status == "approved" else None))  # fmt: skip
            out[d.decision_id].append((eid, pool.name, cents, status, pool.currency))
        for d, *_ in reqs:
            if d.budget_blocked and all(a["type"] == "compensate" for a in d.actions) and d.decision_id not in out:
                d.status = "blocked"  # nothing of it could be done
        for (pool_name, key, start), cents in sorted(taken.items()):  # in key order, as the locks are taken
            sql.take_from_pool(con, pool_name, key, start, cents)  # CHECK (remaining_cents >= 0) guards this
        sql.insert_rows(con, "ledger", ("entry_id", "pool", "scope_key", "period_start", "amount_cents", "status",
                                        "case_id", "decision_id", "customer_id", "actor", "note", "created_at",
                                        "settled_at", "settled_by"), rows, ignore=False)  # fmt: skip
        written["ledger"] += len(rows)
        return out

    def _fire_cases(self, con: Any, fresh: list[Decision], entries: dict[str, list[tuple]], reads: Any,
                    now: datetime, written: Counter, *, ignore: bool = False) -> list[tuple]:  # fmt: skip
        """Open cases, apply case updates, and build the outbox rows; returns the outbox rows."""
        sql = self.ops.sql
        new_cases: dict[str, dict[str, Any]] = {}
        events: list[list[Any]] = []  # [case_id, ts, kind, actor, from, to, detail]
        outbox: list[tuple] = []
        touched_ids = {d.case_id for d in fresh if d.kind == "case_update"}
        stored = {cid: c for cid, c in reads.cases.items() if cid in touched_ids}
        for d in fresh:
            at = d.ts
            if d.kind == "case_update":
                case = new_cases.get(d.case_id) or stored.get(d.case_id)
                if case is None or case["status"] == "closed":
                    continue
                written["case_updates"] += 1
                detail = {**d.detail, "event_id": d.event_id}
                if d.status == "handoff":
                    case["handoffs"] = int(d.detail.get("handoffs", (case["handoffs"] or 0) + 1))
                    case["updated_at"] = at
                    events.append([d.case_id, at, "handoff", d.detail.get("served_by"), None, None, detail])
                elif d.status == "resolved" and case["status"] not in ("resolved", "awaiting_approval"):
                    owner = d.detail.get("owner") or case["owner"]
                    events.append([d.case_id, at, "status", "engine", case["status"], "resolved", detail])
                    case.update(status="resolved", resolved_at=at, updated_at=at, owner=owner,
                                first_owner=case["first_owner"] or owner,
                                handoffs=int(d.detail.get("handoffs", case["handoffs"] or 0)))  # fmt: skip
                elif d.status == "resolved":
                    events.append([d.case_id, at, "moment", "engine", None, None,
                                   {**detail, "note": f"resolving moment while {case['status']}"}])  # fmt: skip
                continue
            if d.status != "fired":
                continue
            values = {**d.detail, "touchpoint": d.touchpoint, "outcome": d.outcome, "text": d.text,
                      "customer_id": d.customer_id, "playbook": d.playbook}  # fmt: skip
            mine = entries.get(d.decision_id, [])
            for i, a in enumerate(d.actions):
                if a["type"] == "compensate":
                    continue
                if a["type"] == "open_case" and d.case_id and d.case_id not in new_cases:
                    owner = d.employee_id if a.get("owner") == "employee" else None
                    pending = next((e for e in mine if e[3] == "pending_approval"), None)
                    status = "awaiting_approval" if pending else ("in_progress" if owner else "open")
                    new_cases[d.case_id] = {
                        "case_id": d.case_id, "playbook": d.playbook, "customer_id": d.customer_id,
                        "journey_id": d.journey_id, "status": status, "owner": owner, "first_owner": owner,
                        "team": a.get("team"), "priority": a.get("priority"),
                        "reason": _fill(a.get("reason") or d.playbook, values),
                        "trigger_event_ids": json.dumps([d.event_id] if d.event_id else []),
                        "compensation_cents": sum(e[2] for e in mine), "currency": mine[0][4] if mine else None,
                        "approval_entry_id": pending[0] if pending else None, "opened_at": at,
                        "sla_due_at": at + timedelta(hours=float(a.get("sla_hours") or 48)), "updated_at": at,
                        "resolved_at": None, "closed_at": None, "handoffs": 0, "decision_id": d.decision_id,
                    }  # fmt: skip
                    events.append([d.case_id, at, "opened", "engine", None, "open" if not owner else "in_progress",
                                   {"playbook": d.playbook, "owner": owner, "team": a.get("team"),
                                    "event_id": d.event_id}])  # fmt: skip
                    if pending:
                        events.append([d.case_id, at, "status", "engine", None, "awaiting_approval",
                                       {"entry_id": pending[0], "amount_cents": pending[2],
                                        "reason": "above the empowerment limit"}])  # fmt: skip
                payload = {
                    "type": a.get("event_type", f"playbook.{a['type']}"), "message_id": f"{d.decision_id}:{i}",
                    "decision_id": d.decision_id, "playbook": d.playbook, "action": a["type"],
                    "customer_id": d.customer_id, "journey_id": d.journey_id, "event_id": d.event_id,
                    "employee_id": d.employee_id, "case_id": d.case_id, "ts": at.isoformat(),
                    "text": _fill(a.get("template") or a.get("message") or a.get("reason") or "", values),
                    "channel": a.get("channel"),
                }  # fmt: skip
                outbox.append((
                    f"{d.decision_id}:{i}", d.decision_id, d.playbook, a["type"], a.get("url"),
                    json.dumps(payload, default=str), "pending" if a.get("url") else "recorded", 0, now, now,
                ))  # fmt: skip
        if new_cases:
            cols = list(next(iter(new_cases.values())))
            sql.insert_rows(con, "cases", cols, [tuple(c[k] for k in cols) for c in new_cases.values()], ignore=ignore)
            written["cases"] += len(new_cases)
        sql.update_cases(con, [c for cid, c in stored.items() if cid not in new_cases])
        if events:
            base = {cid: n for cid, n in reads.max_n.items() if cid not in new_cases}
            rows = []
            for e in events:
                base[e[0]] = n = base.get(e[0], 0) + 1
                rows.append((e[0], n, e[1], e[2], e[3], e[4], e[5], json.dumps(e[6], default=str)))
            sql.insert_rows(con, "case_events", ("case_id", "n", "ts", "kind", "actor", "from_status", "to_status",
                                                 "detail"), rows, ignore=ignore)  # fmt: skip
        return outbox


class LiveStream:
    """Live decisions for events pushed one at a time (e.g. by the API as it ingests them).

    :meth:`submit` evaluates the event at once and returns its decisions (microseconds; the decision is made
    and deterministic from here on); a writer thread fires (records) what was decided in batches every
    ``flush_every`` seconds, one transaction each (group commit), so the store's write latency never delays
    a decision. :meth:`close` (or leaving the ``with`` block) flushes what is left. A crash between a decision
    and its batch's commit loses nothing that matters: the events are in the store, the cursor is not moved,
    and the next live pass decides them again, identically.
    """

    def __init__(self, runner: PlaybookRunner, engine: Engine | None = None, *, flush_every: float = 0.05,
                 on_commit: Any = None) -> None:  # fmt: skip
        self.runner = runner
        if engine is None:
            engine, self.last_seq = runner.live_engine()
        else:
            self.last_seq = 0
        self.engine = engine
        self.flush_every = flush_every
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self._pending: list[Decision] = []
        self._stop = threading.Event()
        self.committed = 0
        self.flush_seconds: list[float] = []  # how long each group commit took
        self.errors: list[BaseException] = []
        self._writer = threading.Thread(target=self._loop, name="keymoments-live-writer", daemon=True)
        self._writer.start()

    def submit(self, event: tuple) -> list[Decision]:
        """Decide on one event (an engine tuple); its decisions are recorded by the next flush."""
        with self._lock:
            out = self.engine.evaluate(event)
            if event[0] and event[0] > self.last_seq:
                self.last_seq = event[0]
            if out:
                self._pending.extend(out)
        return out

    def advance(self, now: datetime | None = None) -> list[Decision]:
        """Fire the proactive triggers (absence, quiet sign-off) that fell due by ``now`` (default: the wall
        clock); call it on a timer so "no resolution within 48 h" fires even when no event arrives."""
        now = now or datetime.now(UTC)
        with self._lock:
            out = self.engine.advance(int(now.timestamp() * 1_000_000))
            if out:
                self._pending.extend(out)
        return out

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
            seq = self.last_seq
        if batch:
            t0 = time.perf_counter()
            self.runner.fire(batch, last_seq=seq or None)
            self.flush_seconds.append(time.perf_counter() - t0)
            self.committed += len(batch)
            if self.on_commit is not None:
                self.on_commit(batch, time.perf_counter())
        return len(batch)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_every):
            try:
                self.flush()
            except Exception as exc:  # keep deciding; surface the error on close
                self.errors.append(exc)

    def close(self) -> None:
        self._stop.set()
        self._writer.join()
        self.flush()
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
