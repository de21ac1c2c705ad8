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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from keymoments.act.budgets import Ledger
from keymoments.act.cases import _fill, apply_case_update, open_case_row
from keymoments.act.engine import Decision, Engine
from keymoments.act.models import PlaybookFile
from keymoments.exceptions import BudgetError
from keymoments.store import act_tables as sql
from keymoments.store.store import Store

__all__ = ["BacktestResult", "LiveResult", "PlaybookRunner", "file_hash", "summarise"]

SUMMARY_COLUMNS = [
    "playbook", "triggered", "fired", "held_out", "blocked", "budget_blocks", "approvals_needed", "cases_opened",
    "cases_resolved", "handoffs", "cost", "customers",
]  # fmt: skip


def file_hash(file: PlaybookFile) -> str:
    return hashlib.sha256(file.model_dump_json().encode()).hexdigest()[:16]


def summarise(decisions: list[Decision], file: PlaybookFile) -> pd.DataFrame:
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
    """What a backtest decided: the decisions, a per-playbook ``summary`` and the run's figures."""

    run_id: str
    events: int
    seconds: float
    decisions: list[Decision]
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
            "decisions": len(self.decisions), "playbooks": self.summary.to_dict(orient="records"),
        }  # fmt: skip

    def print_summary(self) -> None:
        print(f"backtest {self.run_id}: {self.events} events, {len(self.decisions)} decisions, "
              f"{self.events_per_second:,.0f} events/s")
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
            "last_seq": self.last_seq, "written": self.written,
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

    def __init__(self, store: Store, file: PlaybookFile, *, seed: int | None = None, source: str | None = None) -> None:
        self.store = store
        self.file = file
        self.seed = file.seed if seed is None else seed
        self.source = source
        self.hash = file_hash(file)
        self.ledger = Ledger(store, file)
        self.live_run_id = f"live-{self.hash}"

    # -- backtest ------------------------------------------------------------------------------------------
    def backtest(self, *, record: bool = False, run_id: str | None = None) -> BacktestResult:
        import time

        engine = Engine(self.file, seed=self.seed)
        cur = self.store.cursor()
        t0 = time.perf_counter()
        n = 0
        decisions: list[Decision] = []
        ev = engine.evaluate
        try:
            for chunk in sql.iter_events(cur, order="ts"):
                n += len(chunk)
                for e in chunk:
                    d = ev(e)
                    if d:
                        decisions.extend(d)
        finally:
            cur.close()
        decisions.extend(engine.advance(engine.clock))
        seconds = time.perf_counter() - t0
        run_id = run_id or f"bt-{self.hash}-{self.seed}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        result = BacktestResult(run_id, n, seconds, decisions, summarise(decisions, self.file), self.seed)
        if record:
            self._record_backtest(result)
        return result

    def _record_backtest(self, result: BacktestResult) -> None:
        now = datetime.now(UTC)
        rows = [_decision_row(d, result.run_id, "backtest", now) for d in result.decisions]
        df = pd.DataFrame(rows, columns=list(sql._DECISION_COLS))
        holdouts = self._holdout_rows(result.decisions)
        with self.store.write() as con:
            sql.insert_run(con, {
                "run_id": result.run_id, "mode": "backtest", "source": self.source, "file_hash": self.hash,
                "seed": self.seed, "started_at": now, "finished_at": now, "events": result.events,
                "decisions": len(result.decisions), "last_seq": None,
            })  # fmt: skip
            if len(df):
                sql.insert_decisions_frame(con, df)
            sql.upsert_holdouts(con, holdouts)
        result.recorded = True

    def _holdout_rows(self, decisions: list[Decision]) -> list[tuple]:
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
        cur = self.store.cursor()
        try:
            run = sql.get_run(cur, self.live_run_id)
            last = int(run["last_seq"]) if run and run["last_seq"] is not None else 0
            engine = Engine(self.file, seed=self.seed)
            if last:
                ev = engine.evaluate
                for chunk in sql.iter_events(cur, order="seq", upto_seq=last):
                    for e in chunk:
                        ev(e)
        finally:
            cur.close()
        return engine, last

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
            for chunk in sql.iter_events(cur, order="seq", after_seq=last_seq, chunk=batch):
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
            with self.store.write() as con:
                self._touch_run(con, last_seq)
        return LiveResult(self.live_run_id, total, fired, dict(written), last_seq)

    def _touch_run(self, con: duckdb.DuckDBPyConnection, last_seq: int, added: int = 0) -> None:
        run = sql.get_run(con, self.live_run_id)
        now = datetime.now(UTC)
        sql.insert_run(con, {
            "run_id": self.live_run_id, "mode": "live", "source": self.source, "file_hash": self.hash,
            "seed": self.seed, "started_at": run["started_at"] if run else now, "finished_at": now,
            "events": None, "decisions": (run["decisions"] or 0) + added if run else added, "last_seq": last_seq,
        })  # fmt: skip

    # -- fire: record decisions and their effects ------------------------------------------------------------
    def fire(self, decisions: list[Decision], *, last_seq: int | None = None,
             con: duckdb.DuckDBPyConnection | None = None) -> Counter:  # fmt: skip
        """Record decisions with their cases, ledger entries and outbox messages in one transaction."""
        if con is None:
            with self.store.write() as c:
                return self.fire(decisions, last_seq=last_seq, con=c)
        written: Counter = Counter()
        now = datetime.now(UTC)
        run_id = self.live_run_id
        fresh_ids = set(d.decision_id for d in decisions) - sql.existing_decision_ids(
            con, run_id, [d.decision_id for d in decisions]
        )
        fresh = [d for d in decisions if d.decision_id in fresh_ids]
        outbox: list[tuple] = []
        currency = {b.name: b.currency for b in self.file.budgets}
        for d in fresh:
            at = d.ts
            if d.kind == "case_update":
                apply_case_update(con, d.case_id, d.status, at, d.detail, d.event_id)
                written["case_updates"] += 1
                continue
            if d.status != "fired":
                continue
            values = {**d.detail, "touchpoint": d.touchpoint, "outcome": d.outcome, "text": d.text,
                      "customer_id": d.customer_id, "playbook": d.playbook}
            entries = []
            for i, a in enumerate(d.actions):
                if a["type"] == "compensate":
                    cents = int(round(float(a["amount"]) * 100))
                    try:
                        entry = self.ledger.request(
                            con, a["budget"], cents, scope_key=d.budget_key or "*", at=at,
                            entry_id=f"le-{d.decision_id}-{i}", case_id=d.case_id, decision_id=d.decision_id,
                            customer_id=d.customer_id, actor=d.employee_id or "engine", note=a.get("kind"),
                        )  # fmt: skip
                        entries.append(entry)
                        written["ledger"] += 1
                    except BudgetError as exc:
                        d.budget_blocked = True
                        d.cost_cents = max(0, d.cost_cents - cents)
                        d.detail["budget_error"] = str(exc)
                        written["budget_blocked"] += 1
            for i, a in enumerate(d.actions):
                if a["type"] == "open_case" and d.case_id:
                    owner = d.employee_id if a.get("owner") == "employee" else None
                    cur_code = next((currency[e.pool] for e in entries), None)
                    if open_case_row(con, case_id=d.case_id, decision_id=d.decision_id, playbook=d.playbook,
                                     customer_id=d.customer_id, journey_id=d.journey_id, event_id=d.event_id, at=at,
                                     action=a, owner=owner, values=values, currency=cur_code):  # fmt: skip
                        written["cases"] += 1
                    comp = sum(e.amount_cents for e in entries)
                    pending = [e for e in entries if e.needs_approval]
                    if comp:
                        sql.update_case(con, d.case_id, compensation_cents=comp)
                    if pending:
                        sql.update_case(con, d.case_id, status="awaiting_approval", approval_entry_id=pending[0].entry_id)
                        sql.add_case_event(con, d.case_id, at, "status", "engine", None, "awaiting_approval",
                                           {"entry_id": pending[0].entry_id, "amount_cents": pending[0].amount_cents,
                                            "reason": "above the empowerment limit"})
                if a["type"] == "compensate":
                    continue
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
        sql.insert_decisions(con, [_decision_row(d, run_id, "live", now) for d in fresh])
        sql.upsert_holdouts(con, self._holdout_rows(fresh))
        sql.insert_outbox(con, outbox)
        written["decisions"] += len(fresh)
        written["outbox"] += sum(1 for o in outbox if o[6] == "pending")
        if last_seq is not None:
            self._touch_run(con, last_seq, len(fresh))
        return written
