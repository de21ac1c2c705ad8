"""``keymoments playbooks report``: what the playbooks did and what it was worth.

Per playbook: decisions by status, the customers and their arms with the sample-ratio check, cost, budget
blocks, approvals needed; cases with owner continuity and SLA breaches; how predictable its delights are.

A **live** run took actions, so each playbook also gets its uplift on its ``measure`` (outcomes observed after
the customer's first decision, within the playbook's window) with its interval, or the one-line reason it is
refused. A **backtest** took none: it reports what would have fired, to whom, at what cost and against which
budget, and never an uplift (its treated and held-out customers were treated alike).
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from keymoments.act.cases import CaseBook
from keymoments.act.engine import period_id, period_start
from keymoments.act.models import DEFAULT_WINDOW, PlaybookFile, format_window
from keymoments.act.surprise import predictability
from keymoments.act.uplift import uplift_of
from keymoments.exceptions import KeymomentsWarning, NotFoundError, UpliftRefusedError
from keymoments.store.store import Store

__all__ = ["BACKTEST_NOTE", "playbook_report"]

#: What a backtest's report says in place of an uplift.
BACKTEST_NOTE = ("a backtest takes no action, so it has no uplift (treated and held-out customers were treated "
                 "alike); run the playbooks live (`keymoments playbooks run`) to measure it")  # fmt: skip


def _pick_run(store: Store, run_id: str | None, file: PlaybookFile | None) -> dict[str, Any] | None:
    """The run asked for; else the file's live run, the latest live run, the latest backtest, in that order."""
    sql = store.ops.sql
    with store.ops.read() as cur:
        if run_id:
            run = sql.get_run(cur, run_id)
            if run is None:
                raise NotFoundError(f"No playbook run {run_id!r} in the store; see `keymoments playbooks list`.")
            return run
        if file is not None:
            from keymoments.act.runner import file_hash

            run = sql.get_run(cur, f"live-{file_hash(file)}")
            if run is not None:
                return run
        chosen = sql.latest_run_id(cur, "live") or sql.latest_run_id(cur)
        return sql.get_run(cur, chosen) if chosen else None


def playbook_report(
    store: Store, file: PlaybookFile | None = None, *, run_id: str | None = None, outcome: str | None = None
) -> dict[str, Any]:
    """The report as a JSON-ready dict (``run_id``, ``mode``, ``playbooks``, ``budgets``, ``cases``, ``outbox``,
    ``notes``). Default run: the file's live run, else the latest live run, else the latest backtest."""
    run = _pick_run(store, run_id, file)
    if run is None:
        return {"run_id": None, "mode": None, "playbooks": [], "budgets": [], "outbox": {}, "cases": [],
                "notes": ["No playbook run in the store yet: run `keymoments playbooks run FILE` (live), or "
                          "`keymoments playbooks backtest FILE --record` to see what would have fired."]}  # fmt: skip
    run_id, live = run["run_id"], run["mode"] == "live"
    notes: list[str] = [] if live else [f"{run_id}: {BACKTEST_NOTE}."]
    file, note = _run_file(run, file)
    if note:
        notes.append(note)
    sql = store.ops.sql
    with store.ops.read() as cur:
        dec = sql.decisions_frame(cur, run_id)
        holdouts = {r[0]: (r[3], r[4]) for r in sql.holdout_counts(cur)}
        outbox = sql.outbox_counts(cur) if live else {}
    outcomes = set(store.outcome_names())
    specs = {p.name: p for p in file.playbooks} if file else {}
    rows = []
    for name in list(specs) if specs else sorted(dec["playbook"].unique()):
        d = dec[dec["playbook"] == name]
        fire = d[d["kind"] == "fire"]
        row = _counts(name, d, fire)
        share, gshare = holdouts.get(name, (None, None))
        if name in specs:
            share, gshare = specs[name].holdout.share, file.global_holdout if file else 0.0
        row["srm"] = _srm(fire, share or 0.0, gshare or 0.0)
        measure = specs[name].measure if name in specs else None
        no_holdout = name in specs and share == 0 and not gshare
        out_name = outcome or (measure.outcome if measure else None)
        if name not in specs and not out_name:  # without the file: the usual outcome, if the store has it
            out_name = "retained" if "retained" in outcomes else None
        window = measure.window if measure else DEFAULT_WINDOW
        row["measure"] = {"outcome": out_name, "window": format_window(window)} if out_name else None
        row["uplift"], row["uplift_refused"] = None, None
        if not live:
            row["uplift_refused"] = BACKTEST_NOTE
        elif no_holdout:
            row["uplift_refused"] = "no holdout: the playbook acts on everyone it triggers for, so there is no control"
        elif out_name and out_name not in outcomes:
            row["uplift_refused"] = f"outcome {out_name!r} is not in the store; load it with `keymoments ingest-outcomes`"
        elif out_name and len(fire) and share is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", KeymomentsWarning)
                try:
                    up = uplift_of(store, name, out_name, share=share or 0.0, global_share=gshare or 0.0,
                                   window=window, run_id=run_id)  # fmt: skip
                    row["uplift"] = up.to_dict()
                except UpliftRefusedError as exc:
                    row["uplift_refused"] = str(exc)
            notes += [f"{name}: {w.message}" for w in caught]
        if len(fire):
            pr = predictability(fire.to_dict(orient="records"), name, warn=False)
            row["predictability"] = pr.predictability if pr.customers_measured else None
        rows.append(row)
    return {
        "run_id": run_id,
        "mode": run["mode"],
        "playbooks": rows,
        "cases": CaseBook(store).continuity().to_dict(orient="records") if live else [],
        "budgets": _balances(store) if live else _would_spend(dec, file),
        "outbox": outbox,
        "notes": notes,
    }


def _run_file(run: dict[str, Any], file: PlaybookFile | None) -> tuple[PlaybookFile | None, str | None]:
    """The playbook file the run was made with (its holdout shares, measures and budgets): ``file`` when its
    hash is the run's, else the run's source when it still loads to the same hash, else ``file`` with a note."""
    from keymoments.act.runner import file_hash

    if file is not None and file_hash(file) == run.get("file_hash"):
        return file, None
    found = _load_source(run)
    if found is not None and file_hash(found) == run.get("file_hash"):
        return found, None
    if file is not None:
        return file, (f"{run['run_id']} was made with another version of the playbook file (hash {run.get('file_hash')}); "
                      "its holdout shares and measures are taken from the file given")  # fmt: skip
    return None, None


def _load_source(run: dict[str, Any]) -> PlaybookFile | None:
    """The run's playbook file loaded again from its ``source`` (a path, a built-in name or 'library')."""
    from keymoments.act.library import load_library
    from keymoments.act.yaml_loader import load_playbooks

    src = run.get("source")
    try:
        if src == "library":
            return load_library(seed=int(run.get("seed") or 0))
        return load_playbooks(src) if src else None
    except Exception:  # noqa: BLE001 - the file moved or changed: the caller falls back
        return None


def _counts(name: str, d: pd.DataFrame, fire: pd.DataFrame) -> dict[str, Any]:
    """What fired (or would have), to how many customers, at what cost, from which budgets."""
    first = fire.sort_values(["ts", "seq"]).drop_duplicates("customer_id")
    return {
        "playbook": name,
        "triggered": len(fire),
        "fired": int((fire["status"] == "fired").sum()),
        "held_out": int((fire["status"] == "held_out").sum()),
        "blocked": int((fire["status"] == "blocked").sum()),
        "budget_blocks": int(fire["budget_blocked"].fillna(False).sum()),
        "approvals_needed": int(fire["needs_approval"].fillna(False).sum()),
        "cost": float(fire["cost_cents"].fillna(0).sum()) / 100,
        "budgets": sorted(fire["budget"].dropna().unique().tolist()),
        "customers": int(fire["customer_id"].nunique()),
        "customers_acted_on": int(fire.loc[fire["status"] == "fired", "customer_id"].nunique()),
        "arms": {str(k): int(v) for k, v in first["arm"].value_counts().items()},
        "first_decision": first["ts"].min() if len(first) else None,
        "last_decision": fire["ts"].max() if len(fire) else None,
        "cases_resolved": int(((d["kind"] == "case_update") & (d["status"] == "resolved")).sum()),
    }


def _srm(fire: pd.DataFrame, share: float, global_share: float) -> dict[str, Any]:
    from keymoments.act.holdouts import sample_ratio_check

    first = fire.sort_values(["ts", "seq"]).drop_duplicates("customer_id")
    counts = {str(k): int(v) for k, v in first["arm"].value_counts().items()}
    return sample_ratio_check(counts, share=share, global_share=global_share).to_dict()


def _balances(store: Store) -> list[dict[str, Any]]:
    """Live: per pool, what the ledger says was spent and reserved, and what is left."""
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


def _would_spend(dec: pd.DataFrame, file: PlaybookFile | None) -> list[dict[str, Any]]:
    """Backtest: per pool, what the playbooks would have spent, how often the pool would have run dry, and
    (with the file) the pool's amount per key and period and the largest share of it one key and period took
    (``peak_use``, at ``peak_key`` in the period from ``peak_period_start``)."""
    fire = dec[(dec["kind"] == "fire") & dec["budget"].notna()] if len(dec) else dec
    if fire.empty:
        return []
    pools = {b.name: b for b in file.budgets} if file else {}
    out = []
    for pool, g in fire.groupby("budget"):
        row: dict[str, Any] = {
            "pool": pool, "would_spend": float(g["cost_cents"].fillna(0).sum()) / 100,
            "spends": int((g["cost_cents"].fillna(0) > 0).sum()), "budget_blocks": int(g["budget_blocked"].fillna(False).sum()),
            "keys": int(g["budget_key"].nunique()), "playbooks": sorted(g["playbook"].unique().tolist()),
        }  # fmt: skip
        spec = pools.get(str(pool))
        if spec is not None:
            epoch = pd.Timestamp(0, tz="UTC")
            ts_us = (pd.to_datetime(g["ts"], utc=True) - epoch) // pd.Timedelta(microseconds=1)
            pid = [period_id(spec.period, int(t)) for t in ts_us]
            per = g.assign(_pid=pid).groupby(["budget_key", "_pid"])["cost_cents"].sum()
            peak_key, peak_pid = per.idxmax()
            row.update(period=spec.period, scope=spec.scope, currency=spec.currency,
                       amount_per_period=float(spec.amount), periods=len(set(pid)),
                       peak_use=float(per.max()) / spec.amount_cents, peak_key=peak_key,
                       peak_period_start=period_start(spec.period, int(peak_pid)).isoformat())  # fmt: skip
        out.append(row)
    return out
