"""``keymoments playbooks report``: what the playbooks did and what it was worth.

Per playbook: decisions by status, cost, budget blocks, approvals needed; cases with owner continuity and SLA
breaches; the sample-ratio check and the uplift on its outcome with its interval; how predictable its
delights are. Plus budget balances and the outbox's delivery state.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from keymoments.act.cases import CaseBook
from keymoments.act.models import PlaybookFile
from keymoments.act.surprise import predictability
from keymoments.act.uplift import uplift_of
from keymoments.exceptions import KeymomentsWarning, NotFoundError
from keymoments.store.store import Store

__all__ = ["playbook_report"]


def _pick_run(store: Store, run_id: str | None) -> str | None:
    sql = store.ops.sql
    with store.ops.read() as cur:
        if run_id:
            if sql.get_run(cur, run_id) is None:
                raise NotFoundError(f"No playbook run {run_id!r} in the store; see `keymoments playbooks list`.")
            return run_id
        return sql.latest_run_id(cur, "live") or sql.latest_run_id(cur)


def playbook_report(
    store: Store, file: PlaybookFile | None = None, *, run_id: str | None = None, outcome: str | None = None
) -> dict[str, Any]:
    """The report as a JSON-ready dict (``playbooks``, ``budgets``, ``outbox``, ``run_id``, ``notes``)."""
    run_id = _pick_run(store, run_id)
    notes: list[str] = []
    if run_id is None:
        return {"run_id": None, "playbooks": [], "budgets": [], "outbox": {}, "cases": [],
                "notes": ["No playbook run in the store yet: run `keymoments playbooks backtest FILE --record` "
                          "or `keymoments playbooks run FILE`."]}  # fmt: skip
    sql = store.ops.sql
    with store.ops.read() as cur:
        dec = sql.decisions_frame(cur, run_id)
        holdouts = {r[0]: (r[3], r[4]) for r in sql.holdout_counts(cur)}
        outbox = sql.outbox_counts(cur)
    outcomes = set(store.outcome_names())
    specs = {p.name: p for p in file.playbooks} if file else {}
    rows = []
    names = list(specs) if specs else sorted(dec["playbook"].unique())
    for name in names:
        d = dec[dec["playbook"] == name]
        fire = d[d["kind"] == "fire"]
        row: dict[str, Any] = {
            "playbook": name,
            "triggered": len(fire),
            "fired": int((fire["status"] == "fired").sum()),
            "held_out": int((fire["status"] == "held_out").sum()),
            "blocked": int((fire["status"] == "blocked").sum()),
            "budget_blocks": int(fire["budget_blocked"].fillna(False).sum()),
            "approvals_needed": int(fire["needs_approval"].fillna(False).sum()),
            "cost": float(fire["cost_cents"].fillna(0).sum()) / 100,
            "customers": int(fire["customer_id"].nunique()),
            "cases_resolved": int(((d["kind"] == "case_update") & (d["status"] == "resolved")).sum()),
        }
        share, gshare = holdouts.get(name, (None, None))
        if name in specs:
            share, gshare = specs[name].holdout.share, file.global_holdout if file else 0.0
        out_name = outcome or (specs[name].outcome if name in specs else None) or ("retained" if "retained" in outcomes else None)
        if out_name and out_name in outcomes and share is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", KeymomentsWarning)
                up = uplift_of(store, name, out_name, share=share or 0.0, global_share=gshare or 0.0, run_id=run_id)
            row["uplift"] = up.to_dict()
            notes += [f"{name}: {w.message}" for w in caught]
        elif out_name:
            row["uplift"] = None
            notes.append(f"{name}: outcome {out_name!r} is not in the store; load it with `keymoments ingest-outcomes`.")
        if len(fire):
            pr = predictability(fire.to_dict(orient="records"), name, warn=False)
            row["predictability"] = pr.predictability if pr.customers_measured else None
        rows.append(row)
    cases = CaseBook(store).continuity()
    ledger = _balances(store)
    return {
        "run_id": run_id,
        "playbooks": rows,
        "cases": cases.to_dict(orient="records"),
        "budgets": ledger,
        "outbox": outbox,
        "notes": notes,
    }


def _balances(store: Store) -> list[dict[str, Any]]:
    with store.ops.read() as cur:
        df = store.ops.sql.budget_balances(cur)
    if df.empty:
        return []
    g = df.groupby("pool", as_index=False).agg(
        keys=("scope_key", "nunique"), amount=("amount_cents", "sum"), remaining=("remaining_cents", "sum"),
        spent=("spent_cents", "sum"), reserved=("reserved_cents", "sum"), pending=("pending", "sum"),
    )  # fmt: skip
    for c in ("amount", "remaining", "spent", "reserved"):
        g[c] = g[c] / 100
    return pd.DataFrame(g).to_dict(orient="records")
