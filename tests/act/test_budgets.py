"""Budgets: money in cents, empowerment limits, approvals, never below zero (threads and processes)."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.act.budgets import Ledger, locked_store
from keymoments.act.models import BudgetPool, to_cents
from keymoments.exceptions import BudgetError, ConflictError
from keymoments.store import act_tables as sql
from keymoments.store.store import Store

POOL = BudgetPool(name="pret", scope="employee", period="week", amount=100, empowerment_limit=20)


def _check_books(store: Store) -> None:
    """remaining = amount - approved - reserved, and never below zero, for every pool."""
    bal = Ledger(store, [POOL]).balances()
    for r in bal.itertuples():
        assert r.remaining_cents >= 0
        assert r.remaining_cents == r.amount_cents - r.spent_cents - r.reserved_cents


def test_money_is_cents_rounded_half_up():
    assert to_cents("12.345") == 1235
    assert to_cents(0.1 + 0.2) == 30
    assert to_cents(2000) == 200000


def test_within_limit_auto_approves_above_waits_for_a_manager(store):
    ledger = Ledger(store, [POOL])
    a = ledger.spend("pret", 1500, scope_key="ann")
    b = ledger.spend("pret", 5000, scope_key="ann")
    assert (a.status, b.status) == ("approved", "pending_approval")
    assert ledger.remaining("pret", "ann") == 3500  # the reservation holds the money
    assert ledger.remaining("pret", "bob") == 10000  # every employee has their own pool
    with pytest.raises(BudgetError, match="has 35.00 USD left of 100.00"):
        ledger.spend("pret", 4000, scope_key="ann")
    ledger.reject(b.entry_id, by="manager")
    assert ledger.remaining("pret", "ann") == 8500
    c = ledger.spend("pret", 4000, scope_key="ann")
    assert ledger.approve(c.entry_id, by="manager").status == "approved"
    with pytest.raises(ConflictError, match="is approved by manager, not pending approval"):
        ledger.approve(c.entry_id, by="manager")
    assert ledger.remaining("pret", "ann") == 4500
    _check_books(store)


def test_the_check_constraint_is_a_backstop(store):
    ledger = Ledger(store, [POOL])
    e = ledger.spend("pret", 100, scope_key="ann")
    with pytest.raises(duckdb.ConstraintException):
        with store.write() as con:  # a writer that skipped the check still cannot commit an overdraft
            sql.take_from_pool(con, "pret", "ann", e.period_start, 10**6)
    assert ledger.remaining("pret", "ann") == 9900


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6000), st.sampled_from(["approve", "reject", "keep"])), max_size=30))
def test_property_pool_never_negative(ops):
    store = Store(":memory:")
    ledger = Ledger(store, [POOL])
    for cents, then in ops:
        try:
            e = ledger.spend("pret", cents, scope_key="x")
        except BudgetError:
            continue
        if e.needs_approval and then != "keep":
            getattr(ledger, then)(e.entry_id, by="m")
    _check_books(store)
    store.close()


def test_many_threads_never_overdraw(store):
    ledger = Ledger(store, [POOL])
    ok, refused = [], []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(25):
            cents = r.randint(50, 900)
            try:
                e = ledger.spend("pret", cents, scope_key="shared")
                with lock:
                    ok.append(e.amount_cents)
            except BudgetError:
                with lock:
                    refused.append(cents)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused, "the pool should have run out"
    assert sum(ok) <= 10000
    assert ledger.remaining("pret", "shared") == 10000 - sum(ok)
    assert min(refused) > ledger.remaining("pret", "shared")  # refused only what truly did not fit
    _check_books(store)


def _process_worker(path: str, seed: int, n: int, q) -> None:  # pragma: no cover - runs in a child process
    r = random.Random(seed)
    spent = refused = 0
    for _ in range(n):
        cents = r.randint(300, 2000)
        with locked_store(path) as s:
            try:
                Ledger(s, [POOL]).spend("pret", cents, scope_key="shared")
                spent += cents
            except BudgetError:
                refused += 1
    q.put((spent, refused))


def test_several_processes_on_one_file_never_overdraw(tmp_path):
    path = str(tmp_path / "shared.duckdb")
    Store(path).close()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(path, i, 8, q)) for i in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    spent = sum(r[0] for r in results)
    assert sum(r[1] for r in results) > 0, "the pool should have run out"
    with locked_store(path) as s:
        assert Ledger(s, [POOL]).remaining("pret", "shared") == 10000 - spent
        assert s.count("ledger") == 24 - sum(r[1] for r in results)
        _check_books(s)
