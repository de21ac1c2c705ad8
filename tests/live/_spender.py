"""A spending process of the contention test: ``python _spender.py URL SCHEMA N START_AT OUT.json``.

Waits until the wall clock reaches START_AT (so every process starts together), then tries N spends of 1.00
from the global pool ``contended`` and writes how many were approved and refused."""

from __future__ import annotations

import json
import os
import sys
import time

from keymoments.act.budgets import Ledger
from keymoments.act.models import BudgetPool
from keymoments.exceptions import BudgetError
from keymoments.store.postgres import PostgresOps

url, schema, n, start_at, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ops = PostgresOps(url, schema=schema, migrate=False, max_size=2)
ledger = Ledger(ops, [BudgetPool(name="contended", period="total", amount=500)])
time.sleep(max(0.0, start_at - time.time()))
ok = refused = 0
for i in range(n):
    try:
        ledger.spend("contended", 100, customer_id=f"p{os.getpid()}-{i}", actor=f"worker-{os.getpid()}")
        ok += 1
    except BudgetError:
        refused += 1
ops.close()
with open(out, "w") as fh:
    json.dump({"ok": ok, "refused": refused}, fh)
