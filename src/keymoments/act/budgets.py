"""Budgets as money that is never overspent: pools, a ledger of spends and reservations, empowerment limits.

A pool (:class:`~keymoments.act.models.BudgetPool`) is refilled each period per scope key (one per employee,
location or team, or one global). Every request writes one ledger entry:

* within the empowerment limit it is **approved** at once and spent (Ritz-Carlton's $2,000 per guest);
* above the limit it is **reserved** (``pending_approval``): the money is held so approvals can never overdraw
  the pool, and waits for a manager, who approves (spent) or rejects it (released back to the pool);
* when the pool cannot cover it, :class:`~keymoments.exceptions.BudgetError` is raised and nothing is written.

The empowerment limit holds **per case and per customer per period**, not per spend: a spend is approved at
once only while everything spent or reserved from the pool on its case (in any period), and on its customer in
the pool's current period, stays within the limit; three $1,500 spends on one case against a $2,000 limit are
one approval and two reservations. The sums are read in the same transaction that writes the spend.

Live spends draw from the period of the **wall clock** when they are decided, never from an event's
timestamp (an event dated 1900 or 9999 cannot open a pool of its own); back-tests simulate pools in event
time (:class:`~keymoments.act.engine.Engine`), and say so.

Never below zero and never a lost spend, also under concurrency: the check and the update run in one
transaction of the operational store (``store/ops.py``) with the pool's row locked (``sql.lock_pool``) and the
case's and customer's spends serialised (``sql.lock_limits``, so the empowerment limits sum what is really there), and
``budgets.remaining_cents`` has ``CHECK (remaining_cents >= 0)`` as a backstop, so even a writer that skipped
the check could not commit an overdraft. The rules here are written once and run on either backend:

* embedded (DuckDB): the store's single writer serialises transactions. DuckDB lets one process open a file
  for writing, so several *processes* share a pool through :func:`locked_store`, which holds an exclusive file
  lock (``<db>.lock``, ``fcntl.flock``) while it opens, writes and closes the store (or they go through one
  server process, e.g. ``keymoments serve``);
* PostgreSQL (``KM_DATABASE_URL``): any number of API and worker processes; ``lock_pool`` is
  ``SELECT … FOR UPDATE``, so a second spender waits for the first to commit and then sees what is left.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keymoments.act.engine import period_id, period_start
from keymoments.act.models import BudgetPool, PlaybookFile
from keymoments.events import did_you_mean
from keymoments.exceptions import BudgetError, ConfigError, ConflictError, NotFoundError
from keymoments.money import MAX_CENTS
from keymoments.store.ops import OperationalStore, ops_of
from keymoments.store.store import Store

__all__ = ["LedgerEntry", "Ledger", "locked_store"]


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry: ``approved`` (spent), ``pending_approval`` (reserved) or ``rejected`` (released)."""

    entry_id: str
    pool: str
    scope_key: str
    period_start: datetime
    amount_cents: int
    status: str

    @property
    def needs_approval(self) -> bool:
        return self.status == "pending_approval"


class Ledger:
    """Spend from budget pools through the store's ledger.

    >>> from keymoments.act.models import BudgetPool, PlaybookFile
    >>> store = Store(":memory:")
    >>> ledger = Ledger(store, [BudgetPool(name="recovery", amount=100, empowerment_limit=40)])
    >>> ledger.spend("recovery", 3000).status
    'approved'
    >>> ledger.spend("recovery", 5000).status
    'pending_approval'
    >>> ledger.remaining("recovery")
    2000
    """

    def __init__(self, store: Store | OperationalStore, pools: PlaybookFile | list[BudgetPool]) -> None:
        self.store = store
        self.ops = ops_of(store)
        items = pools.budgets if isinstance(pools, PlaybookFile) else pools
        self.pools: dict[str, BudgetPool] = {p.name: p for p in items}

    def pool(self, name: str) -> BudgetPool:
        try:
            return self.pools[name]
        except KeyError:
            raise NotFoundError(
                f"Budget pool {name!r} is not declared; declared pools: {sorted(self.pools)}.{did_you_mean(name, self.pools)}"
            ) from None

    def _period(self, pool: BudgetPool, at: datetime | None = None) -> datetime:
        """The start of the pool's period at ``at`` (default: the wall clock now, the one live spends use)."""
        at = at or datetime.now(UTC)
        us = int(at.timestamp() * 1_000_000)
        return period_start(pool.period, period_id(pool.period, us))

    # -- requests ------------------------------------------------------------------------------------------
    def request(
        self,
        con: Any,
        pool_name: str,
        cents: int,
        *,
        scope_key: str = "*",
        at: datetime | None = None,
        entry_id: str | None = None,
        case_id: str | None = None,
        decision_id: str | None = None,
        customer_id: str | None = None,
        actor: str | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        """Inside an open write transaction: approve or reserve ``cents``; raise BudgetError if it cannot be covered.

        The spend draws from the pool's period at the wall clock (``at`` only simulates another time, for
        tests and back-fills). It is approved when, with what the ledger already holds for ``case_id`` and for
        ``customer_id`` in this period, it stays within the empowerment limit; otherwise it is reserved.
        An ``entry_id`` that is already in the ledger returns that entry (replays are idempotent).

        ``con`` is a write transaction of this ledger's operational store (``ledger.ops.write()``)."""
        sql = self.ops.sql
        if isinstance(cents, bool) or not isinstance(cents, int) or not 0 < cents <= MAX_CENTS:
            raise ConfigError(f"A spend must be a whole number of cents from 1 to {MAX_CENTS}; got {cents!r}.")
        pool = self.pool(pool_name)
        key = scope_key if pool.scope != "global" else "*"
        start = self._period(pool, at)
        replayable = entry_id is not None
        entry_id = entry_id or _new_id(pool_name, key, cents)
        old = sql.get_ledger(con, entry_id) if replayable else None
        if old is not None:
            return LedgerEntry(entry_id, old["pool"], old["scope_key"], old["period_start"], old["amount_cents"], old["status"])
        sql.ensure_pool(con, pool.name, key, pool.period, start, pool.amount_cents, pool.currency, pool.limit_cents)
        amount, remaining, _cur, limit = sql.lock_pool(con, pool.name, key, start)  # held to the commit
        sql.lock_limits(con, case_id=case_id, customer_id=customer_id)  # the case's and customer's sums hold still
        old = sql.get_ledger(con, entry_id) if replayable else None  # again under the lock: a racing replay
        if old is not None:
            return LedgerEntry(entry_id, old["pool"], old["scope_key"], old["period_start"], old["amount_cents"], old["status"])
        if cents > remaining:
            raise BudgetError(
                f"Budget {pool.name!r} ({key}, {pool.period} from {start:%Y-%m-%d}) has {remaining / 100:.2f} "
                f"{pool.currency} left of {amount / 100:.2f}; a spend of {cents / 100:.2f} would overdraw it."
            )
        used = 0 if limit is None else sql.limit_usage(con, pool.name, start, case_id=case_id, customer_id=customer_id)
        status = "pending_approval" if limit is not None and used + cents > limit else "approved"
        sql.take_from_pool(con, pool.name, key, start, cents)  # CHECK (remaining_cents >= 0) is the backstop
        sql.insert_ledger(
            con,
            {
                "entry_id": entry_id, "pool": pool.name, "scope_key": key, "period_start": start,
                "amount_cents": cents, "status": status, "case_id": case_id, "decision_id": decision_id,
                "customer_id": customer_id, "actor": actor, "note": note, "created_at": datetime.now(UTC),
                "settled_at": datetime.now(UTC) if status == "approved" else None,
                "settled_by": "auto (within empowerment limit)" if status == "approved" else None,
            },
        )  # fmt: skip
        if case_id:
            sql.refresh_case_compensation(con, [case_id])
        return LedgerEntry(entry_id, pool.name, key, start, cents, status)

    def spend(self, pool_name: str, cents: int, **kwargs: Any) -> LedgerEntry:
        """:meth:`request` in its own transaction."""
        return self.ops.transact(lambda con: self.request(con, pool_name, cents, **kwargs))

    def approve(self, entry_id: str, by: str) -> LedgerEntry:
        """A manager approves a reservation above the empowerment limit: it becomes a spend."""
        return self._settle(entry_id, "approved", by)

    def reject(self, entry_id: str, by: str) -> LedgerEntry:
        """A manager rejects a reservation: the money goes back to the pool."""
        return self._settle(entry_id, "rejected", by)

    def _settle(self, entry_id: str, status: str, by: str) -> LedgerEntry:
        return self.ops.transact(lambda con: self._settle_in(con, entry_id, status, by))

    def _settle_in(self, con: Any, entry_id: str, status: str, by: str) -> LedgerEntry:
        sql = self.ops.sql
        e = sql.get_ledger(con, entry_id)
        if e is None:
            raise NotFoundError(f"Ledger entry {entry_id!r} does not exist.")
        sql.lock_pool(con, e["pool"], e["scope_key"], e["period_start"])  # the pool's row first, as spends do
        e = sql.get_ledger(con, entry_id)  # again under the lock: a racing manager may have settled it
        if e["status"] != "pending_approval":  # settled already, perhaps by a manager a moment ago: 409
            raise ConflictError(
                f"Ledger entry {entry_id!r} is {e['status']}{' by ' + str(e['settled_by']) if e.get('settled_by') else ''}, "
                f"not pending approval; nothing to {status[:-1]}e."
            )
        if status == "rejected":
            sql.give_back_to_pool(con, e["pool"], e["scope_key"], e["period_start"], e["amount_cents"])
        sql.settle_ledger(con, entry_id, status, by, datetime.now(UTC))
        if e["case_id"]:
            sql.refresh_case_compensation(con, [e["case_id"]])
            from keymoments.act.cases import on_approval

            on_approval(con, e["case_id"], approved=status == "approved", by=by, sql=sql)
        return LedgerEntry(entry_id, e["pool"], e["scope_key"], e["period_start"], e["amount_cents"], status)

    # -- reading ---------------------------------------------------------------------------------------------
    def remaining(self, pool_name: str, scope_key: str = "*", at: datetime | None = None) -> int:
        """Cents left in a pool for a key and period (the full amount when nothing was spent yet)."""
        pool = self.pool(pool_name)
        with self.ops.read() as cur:
            row = self.ops.sql.pool_row(cur, pool.name, scope_key if pool.scope != "global" else "*", self._period(pool, at))
        return pool.amount_cents if row is None else int(row[1])

    def balances(self) -> Any:
        """Every pool, key and period with amount, remaining, spent, reserved and pending approvals (DataFrame)."""
        with self.ops.read() as cur:
            return self.ops.sql.budget_balances(cur)

    def pending(self) -> Any:
        with self.ops.read() as cur:
            return self.ops.sql.pending_approvals(cur)


_counter = 0


def _new_id(*parts: object) -> str:
    global _counter
    _counter += 1
    raw = f"{os.getpid()}:{datetime.now(UTC).timestamp()}:{_counter}:" + ":".join(map(str, parts))
    return "le-" + hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


@contextmanager
def locked_store(path: str | Path, *, timeout: float | None = None) -> Iterator[Store]:
    """Open the store at ``path`` while holding an exclusive lock on ``<path>.lock``.

    DuckDB allows one writing process per file; processes that share a store (and its budget pools) each wrap
    their short write sessions in this, so they take turns instead of failing to open the file.
    ``timeout`` is accepted for symmetry and ignored: ``flock`` waits until the lock is free.
    """
    lock_path = Path(f"{path}.lock")
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            store = Store(path)
            try:
                yield store
            finally:
                store.close()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
