"""What the case, budget and playbook routes and pages share: the case book with the caller's limits applied.

An **agent** works their own cases and unassigned ones (taking one assigns it to them), spends from budgets
within the pools' empowerment limits (above the limit the spend is reserved and waits for an admin), and may
not approve; an **admin** may do everything. Every write goes through the store's single writer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from keymoments.exceptions import ConfigError, ConflictError, NotFoundError, PermissionDeniedError
from keymoments.money import to_cents
from keymoments.present import to_jsonable
from keymoments.serve.auth import Principal
from keymoments.store.scores import text_tags

__all__ = ["UNSEEN", "CaseDesk"]

#: The caller did not say which owner it saw (``CaseDesk.assign``'s ``expected_owner``).
UNSEEN: Any = object()


class CaseDesk:
    """Case operations on behalf of one caller."""

    def __init__(self, state: Any, principal: Principal) -> None:
        from keymoments.act.budgets import Ledger
        from keymoments.act.cases import CaseBook

        self.state = state
        self.p = principal
        self.book = CaseBook(state.store)
        self._ledger_cls = Ledger

    # -- reading ---------------------------------------------------------------------------------------------
    def list(self, *, status: str | None = None, owner: str | None = None, playbook: str | None = None,
             customer_id: str | None = None, mine: bool = False, limit: int = 100, offset: int = 0) -> dict[str, Any]:  # fmt: skip
        df = self.book.list(status)
        if owner:
            df = df[df["owner"] == owner]
        if mine and self.p.employee_id:
            df = df[(df["owner"] == self.p.employee_id) | df["owner"].isna()]
        if playbook:
            df = df[df["playbook"] == playbook]
        if customer_id:
            df = df[df["customer_id"] == customer_id]
        counts = {str(k): int(v) for k, v in df["status"].value_counts().items()} if len(df) else {}
        df = df.sort_values(["sla_due_at", "opened_at"], kind="stable") if len(df) else df
        page = df.iloc[offset : offset + limit]
        return {"total": len(df), "counts": counts, "cases": [_case_json(r) for r in page.to_dict(orient="records")]}

    def get(self, case_id: str, *, with_journey: bool = True) -> dict[str, Any]:
        case = self.book.get(case_id)
        out = _case_json(case)
        out["timeline"] = to_jsonable(case.get("timeline", []))
        if case.get("approval_entry_id"):
            out["approval"] = self._ledger_entry(case["approval_entry_id"])
        out["ledger"] = self._ledger_for_case(case_id)
        if with_journey:
            out["journey"] = self._journey(case.get("customer_id"), case.get("journey_id"))
            if self.state.engine == "spark":  # the text's tags stay in the scratch store a batch was staged in
                out["journey_note"] = ("Emotions and touchpoints inferred from the text are not shown: the events "
                                       "are on Spark, which keeps their valence but not the text's tags.")  # fmt: skip
        return out

    def _journey(self, customer_id: str | None, journey_id: str | None) -> list[dict[str, Any]]:
        """The customer's events (this journey first, then their others), with emotions."""
        if not customer_id:
            return []
        t = self.state.store.events()
        cols = ["event_id", "journey_id", "ts", "touchpoint", "stage", "channel", "outcome", "rating", "valence",
                "text", "employee_id", "value"]  # fmt: skip
        t = t.filter(t.customer_id == customer_id)
        df = t.order_by([t.ts, t.seq]).select(*cols).limit(300).to_pandas()
        if df.empty:  # e.g. the events live elsewhere (a worker's stream) or were never ingested here
            return []
        df["this_journey"] = df["journey_id"] == journey_id
        tags = text_tags(self.state.store, df["event_id"].tolist())  # the emotion an agent routes on
        df = df.merge(tags, on="event_id", how="left")
        df["touchpoint_inferred"] = df["touchpoint_inferred"].astype("boolean").fillna(False).astype(bool)
        return to_jsonable(df)

    def _ledger_entry(self, entry_id: str) -> dict[str, Any] | None:
        ops = self.state.store.ops
        with ops.read() as con:
            df = ops.sql.ledger_frame(con, entry_id=entry_id)
        return to_jsonable(df.iloc[0].to_dict()) if len(df) else None

    def _ledger_for_case(self, case_id: str) -> list[dict[str, Any]]:
        ops = self.state.store.ops
        with ops.read() as con:
            return to_jsonable(ops.sql.ledger_frame(con, case_id=case_id, newest_first=False))

    # -- working ---------------------------------------------------------------------------------------------
    def _check_mine(self, case_id: str) -> dict[str, Any]:
        case = self.book.get(case_id)
        self._check_owner(case)
        return case

    def _check_owner(self, case: dict[str, Any]) -> None:
        if self.p.role == "agent":
            me = self.p.employee_id
            if case["owner"] is not None and case["owner"] != me:
                raise PermissionDeniedError(
                    f"Case {case['case_id']!r} belongs to {case['owner']}; an agent works their own cases and unassigned ones."
                )

    def assign(self, case_id: str, owner: str | None, expected_owner: Any = UNSEEN) -> dict[str, Any]:
        """Assign the case (an agent takes it). ``expected_owner`` (a string or None), when the caller says
        which owner it saw: if the case has another now, 409 before anything else is judged; the owner read
        here is checked again in the writing transaction either way, so of two agents taking one case at once
        the second gets 409."""
        case = self.book.get(case_id)
        if expected_owner is not UNSEEN and case["owner"] != expected_owner:
            raise ConflictError(
                f"Case {case_id!r} was {'owned by ' + expected_owner if expected_owner else 'unassigned'} but someone "
                f"else just gave it to {case['owner'] or 'nobody'}; reload it."
            )
        self._check_owner(case)
        if self.p.role == "agent":
            if owner not in (None, self.p.employee_id):
                raise PermissionDeniedError("An agent may take a case for themselves, not assign it to others.")
            owner = self.p.employee_id
        if not owner:
            raise ConfigError("Say who gets the case: {\"owner\": \"E123\"}.")
        # checked again in the writing transaction: if the owner changed since this read, 409
        self.book.assign(case_id, owner, actor=self.p.actor, expected_owner=case["owner"])
        return self.get(case_id)

    def transition(self, case_id: str, to: str, note: str | None = None, expected: str | None = None) -> dict[str, Any]:
        """Move the case. The move is checked against the status read here (or ``expected``, the status the
        caller saw) inside the writing transaction: if someone moved the case meanwhile, 409."""
        case = self._check_mine(case_id)
        if expected is not None and case["status"] != expected:
            raise ConflictError(
                f"Case {case_id!r} was {expected} but someone else just moved it to {case['status']}; reload it."
            )
        if self.p.role == "agent" and case["owner"] is None:
            self.book.assign(case_id, self.p.employee_id or self.p.actor, actor=self.p.actor, expected_owner=None)
            case = self.book.get(case_id)
        self.book.transition(case_id, to, actor=self.p.actor, note=note, expected=case["status"])
        return self.get(case_id)

    def compensate(self, case_id: str, pool: str, amount: Any, note: str | None = None) -> dict[str, Any]:
        """Spend from a budget pool for this case: within the empowerment limit it is spent at once; above it,
        reserved and the case waits for approval.

        The case is read again and the spend, the case's compensation total (the ledger's sum for the case) and
        its timeline are written in one transaction: concurrent spends on one case all count, and a spend that
        fails leaves nothing behind."""
        cents = to_cents(amount, positive=True)  # finite, one cent to MAX_AMOUNT, else a clean 4xx
        case = self._check_mine(case_id)
        ledger = self._ledger_cls(self.state.store, self.state.playbooks())
        scope_key = self._scope_key(ledger, pool, case)
        ops = ledger.ops
        ops.transact(lambda con: self._spend(con, ops.sql, ledger, case_id, pool, cents, scope_key, note))
        return self.get(case_id)

    def _spend(self, con: Any, sql: Any, ledger: Any, case_id: str, pool: str, cents: int, scope_key: str,
               note: str | None) -> None:  # fmt: skip
        from datetime import UTC, datetime

        case = sql.get_case(con, case_id)  # as of this transaction, not as of the read above
        if case is None:
            raise NotFoundError(f"Case {case_id!r} does not exist.")
        self._check_owner(case)
        if case["status"] in ("resolved", "closed"):
            raise ConfigError(f"Case {case_id!r} is {case['status']}; reopen it (in_progress) before spending on it.")
        now = datetime.now(UTC)
        entry = ledger.request(con, pool, cents, scope_key=scope_key, case_id=case_id, customer_id=case["customer_id"],
                               actor=self.p.actor, note=note or "compensation from the case queue")  # fmt: skip
        seen = case
        case = sql.lock_case(con, case_id)  # after the pool's row: every writer locks in that order
        if case["status"] in ("resolved", "closed"):  # moved by someone else since the read above
            raise ConflictError(f"Case {case_id!r} was {case['status']} meanwhile; nothing was spent.")
        if case["owner"] != seen["owner"]:
            raise ConflictError(f"Case {case_id!r} was given to {case['owner']} meanwhile; nothing was spent.")
        fields: dict[str, Any] = {"updated_at": now}  # compensation_cents: set from the ledger by request()
        to = case["status"]
        if entry.needs_approval:
            fields["status"] = to = "awaiting_approval"
            if case["status"] != "awaiting_approval" or not case["approval_entry_id"]:
                fields["approval_entry_id"] = entry.entry_id  # the oldest waiting spend is the one shown
        sql.update_case(con, case_id, **fields)
        sql.add_case_event(con, case_id, now, "approval" if entry.needs_approval else "note", self.p.actor,
                           case["status"], to, {"spend_cents": cents, "pool": pool, "ledger": entry.status,
                                                "entry_id": entry.entry_id})  # fmt: skip

    def _scope_key(self, ledger: Any, pool_name: str, case: dict[str, Any]) -> str:
        pool = ledger.pool(pool_name)
        if pool.scope == "global":
            return "*"
        if pool.scope == "employee":
            return case.get("owner") or self.p.employee_id or "*"
        if pool.scope == "team":
            return case.get("team") or "*"
        t = self.state.store.events()  # location: the case's triggering journey's location
        loc = t.filter((t.journey_id == case.get("journey_id")) & t.location_id.notnull()).select("location_id").limit(1)
        df = loc.to_pandas()
        return str(df["location_id"].iloc[0]) if len(df) else "*"

    def approve(self, case_id: str, approved: bool = True) -> dict[str, Any]:
        if self.p.role != "admin":
            raise PermissionDeniedError("Only an admin (a manager) approves spends above the empowerment limit.")
        case = self.book.get(case_id)
        entry = case.get("approval_entry_id")
        if not entry:
            raise NotFoundError(f"Case {case_id!r} has no spend waiting for approval.")
        ledger = self._ledger_cls(self.state.store, self.state.playbooks())
        (ledger.approve if approved else ledger.reject)(entry, by=self.p.actor)
        return self.get(case_id)


def _case_json(row: dict[str, Any]) -> dict[str, Any]:
    import json

    out = {k: v for k, v in row.items() if k != "timeline"}
    tids = out.get("trigger_event_ids")
    if isinstance(tids, str):
        try:
            out["trigger_event_ids"] = json.loads(tids)
        except ValueError:
            pass
    cents = out.get("compensation_cents")
    out["compensation"] = None if cents is None or pd.isna(cents) else float(cents) / 100
    return to_jsonable(out)
