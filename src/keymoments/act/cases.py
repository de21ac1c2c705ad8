"""Cases: what the frontline acts on. open -> in progress -> awaiting approval -> resolved / closed.

A case has an owner (the employee on the triggering moment, or a team queue), a reason, the moments that
triggered it, compensation, an SLA and a timeline (``case_events``: opened, status changes, assignments,
handoffs, approvals, notes). Owner continuity ("going the distance": one person stays with the customer until
they are happy again) is measured as the share of resolved cases whose owner is still their first owner, and
the mean number of handoffs.

Transitions are checked where they are written: inside the operational store's transaction with the case's
row locked (``sql.lock_case``), and written as a compare-and-set on the status the check saw, so of two agents
who move one case at once the second gets :class:`~keymoments.exceptions.ConflictError` (HTTP 409) instead of
overwriting the first. On PostgreSQL a trigger also refuses any status change ``TRANSITIONS`` forbids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from keymoments.exceptions import ConfigError, ConflictError, NotFoundError
from keymoments.store import act_tables
from keymoments.store.ops import OperationalStore, ops_of
from keymoments.store.store import Store

__all__ = ["CASE_STATUSES", "TRANSITIONS", "CaseBook", "on_approval"]

CASE_STATUSES = ("open", "in_progress", "awaiting_approval", "resolved", "closed")

#: Status changes a person may make. A case enters awaiting_approval only with a spend above the empowerment
#: limit, and leaves it only when an admin approves or rejects that spend (back to in_progress), so no one can
#: resolve or close a case whose money is still pending, nor park a case there with nothing to approve.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "resolved", "closed"}),
    "in_progress": frozenset({"resolved", "closed"}),
    "awaiting_approval": frozenset(),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
}


#: ``expected_owner`` not given: assign whoever owns the case now.
_ANY: Any = object()


def _owned(owner: str | None) -> str:
    return f"owned by {owner}" if owner else "unassigned"


class _Missing(dict):
    """A format map that leaves unknown fields as they were written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, values: dict[str, Any]) -> str:
    try:
        return template.format_map(_Missing({k: ("" if v is None else v) for k, v in values.items()}))
    except (ValueError, IndexError):
        return template


def on_approval(con: Any, case_id: str, *, approved: bool, by: str, sql: Any = act_tables) -> None:
    """A manager settled one of the case's reserved spends: the case goes back to in progress, or waits on its
    next reserved spend if it has one. Its compensation total is the ledger's (see ``Ledger._settle``): a
    rejected spend leaves what was already spent on the case.

    ``sql``: the operational store's table functions (``ops.sql``) that ``con`` belongs to."""
    case = sql.lock_case(con, case_id)
    if case is None:
        return
    now = datetime.now(UTC)
    to = case["status"]
    if case["status"] == "awaiting_approval":
        waiting = sql.pending_for_case(con, case_id)
        if waiting:
            sql.update_case(con, case_id, approval_entry_id=waiting[0], updated_at=now)
        else:
            to = "in_progress"
            sql.update_case(con, case_id, status=to, updated_at=now)
    sql.add_case_event(con, case_id, now, "approval", by, case["status"], to, {"approved": approved})


class CaseBook:
    """The frontline's view of cases: list, look up, move through the lifecycle, assign, measure continuity."""

    def __init__(self, store: Store | OperationalStore) -> None:
        self.store = store
        self.ops = ops_of(store)

    def get(self, case_id: str) -> dict[str, Any]:
        sql = self.ops.sql
        with self.ops.read() as cur:
            case = sql.get_case(cur, case_id)
            if case is None:
                raise NotFoundError(f"Case {case_id!r} does not exist.")
            case["timeline"] = sql.case_timeline(cur, case_id)
            return case

    def list(self, status: str | None = None) -> pd.DataFrame:
        if status is not None and status not in CASE_STATUSES:
            raise ConfigError(f"Unknown case status {status!r}; use one of {list(CASE_STATUSES)}.")
        with self.ops.read() as cur:
            return self.ops.sql.cases_frame(cur, status)

    def transition(self, case_id: str, to: str, *, actor: str, note: str | None = None,
                   expected: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Move a case to another status; refuses moves the lifecycle does not allow.

        ``expected``: the status the caller saw (an agent's screen); if another writer moved the case since,
        :class:`ConflictError` says so instead of applying a move the caller did not mean."""
        if to not in CASE_STATUSES:
            raise ConfigError(f"Unknown case status {to!r}; use one of {list(CASE_STATUSES)}.")
        self.ops.transact(lambda con: self._transition(con, case_id, to, actor, note, expected))
        return self.get(case_id)

    def _transition(self, con: Any, case_id: str, to: str, actor: str, note: str | None, expected: str | None) -> None:
        sql = self.ops.sql
        now = datetime.now(UTC)
        case = sql.lock_case(con, case_id)
        if case is None:
            raise NotFoundError(f"Case {case_id!r} does not exist.")
        frm = case["status"]
        if expected is not None and frm != expected:
            raise ConflictError(
                f"Case {case_id!r} was {expected} but someone else just moved it to {frm}; reload it before changing it."
            )
        if frm == "awaiting_approval":
            raise ConfigError(
                f"Case {case_id!r} is awaiting approval of a spend; an admin approves or rejects it first "
                "(which moves the case back to in_progress)."
            )
        if to == "awaiting_approval":
            raise ConfigError(
                f"Case {case_id!r} cannot be moved to awaiting_approval by hand; it goes there by itself when "
                "a spend on it is above the empowerment limit."
            )
        if to not in TRANSITIONS[frm]:
            raise ConfigError(
                f"Case {case_id!r} is {frm}; it can move to {sorted(TRANSITIONS[frm]) or 'nothing'}, not {to!r}."
            )
        fields: dict[str, Any] = {"status": to, "updated_at": now}
        if to == "resolved":
            fields["resolved_at"] = now
        if to == "closed":
            fields["closed_at"] = now
        if not sql.set_case_status(con, case_id, frm, fields):  # the database's own check (compare-and-set)
            raise ConflictError(f"Case {case_id!r} was moved by someone else while this move was checked; reload it.")
        sql.add_case_event(con, case_id, now, "status", actor, frm, to, {"note": note} if note else {})

    def assign(self, case_id: str, owner: str, *, actor: str, expected_owner: Any = _ANY) -> dict[str, Any]:
        """Give the case to ``owner``; a change of owner after the first one counts as a handoff.

        ``expected_owner``: the owner the caller saw (None: unassigned). If another writer changed the owner
        since, :class:`ConflictError` (409) says so: of two agents taking one case at once, the second is told
        instead of taking it from the first. The write is a compare-and-set on the owner (and status) read
        under the case's lock, so the database refuses it too if anything moved in between."""
        self.ops.transact(lambda con: self._assign(con, case_id, owner, actor, expected_owner))
        return self.get(case_id)

    def _assign(self, con: Any, case_id: str, owner: str, actor: str, expected_owner: Any) -> None:
        now = datetime.now(UTC)
        sql = self.ops.sql
        case = sql.lock_case(con, case_id)
        if case is None:
            raise NotFoundError(f"Case {case_id!r} does not exist.")
        if expected_owner is not _ANY and case["owner"] != expected_owner:
            raise ConflictError(
                f"Case {case_id!r} was {_owned(expected_owner)} but someone else just gave it to {case['owner'] or 'nobody'}; "
                "reload it before taking it."
            )
        if case["owner"] == owner:
            return
        fields: dict[str, Any] = {"owner": owner, "updated_at": now}
        if case["owner"] is not None:
            fields["handoffs"] = int(case["handoffs"] or 0) + 1
        else:
            fields["first_owner"] = owner
        if case["status"] == "open":
            fields["status"] = "in_progress"
        if not sql.set_case(con, case_id, {"owner": case["owner"], "status": case["status"]}, fields):
            raise ConflictError(f"Case {case_id!r} was changed by someone else while it was assigned; reload it.")
        sql.add_case_event(con, case_id, now, "assigned", actor, detail={"from": case["owner"], "to": owner})

    def continuity(self) -> pd.DataFrame:
        """Per playbook: cases, resolved, owner continuity (resolved by their first owner), mean handoffs, SLA breaches."""
        with self.ops.read() as cur:
            rows = self.ops.sql.case_stats(cur)
        df = pd.DataFrame(rows, columns=["playbook", "cases", "resolved", "kept_owner", "mean_handoffs", "sla_breaches"])
        df["owner_continuity"] = df["kept_owner"] / df["resolved"].where(df["resolved"] > 0)
        return df
