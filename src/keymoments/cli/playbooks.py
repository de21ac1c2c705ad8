"""CLI commands: ``keymoments playbooks backtest | run | report | list | validate | approve``."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from keymoments.cli.common import (
    DbOption,
    JsonOption,
    console,
    echo_json,
    engine_options,
    open_analysis_store,
    open_store,
    print_table,
)

__all__ = ["register"]

app = typer.Typer(
    name="playbooks",
    help="Playbooks that act on moments: backtest them over history, run them live, report their uplift.",
    no_args_is_help=True,
)

FileArg = Annotated[
    str, typer.Argument(help="A playbook YAML file, or the name of a built-in playbook (see `playbooks list`).")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Override the file's seed (randomised firing).")]
_DEFAULT_DB = Path("keymoments.duckdb")


def _load(file: str):
    from keymoments.act.yaml_loader import load_playbooks

    return load_playbooks(file)


@app.command("validate")
def validate(file: FileArg, db: DbOption = _DEFAULT_DB, json_out: JsonOption = False) -> None:
    """Check a playbook file; errors name the line and column. Exit 0 when it is valid."""
    from keymoments.act.yaml_loader import PlaybookYAMLError

    try:
        pf = _load(file)
    except PlaybookYAMLError as exc:
        if json_out:
            echo_json({"ok": False, "error": str(exc).splitlines()[-1] if exc.errors else str(exc),
                       "errors": exc.errors, "status": 2})  # fmt: skip
            raise typer.Exit(2) from None
        raise
    info = {"ok": True, "file": file, "seed": pf.seed, "global_holdout": pf.global_holdout,
            "budgets": [b.name for b in pf.budgets],
            "playbooks": [{"name": p.name, "trigger": p.trigger.type, "actions": [a.type for a in p.actions],
                           "holdout": p.holdout.share, "enabled": p.enabled} for p in pf.playbooks]}  # fmt: skip
    if json_out:
        echo_json(info)
        return
    console.print(f"{file}: valid, {len(pf.playbooks)} playbook(s), {len(pf.budgets)} budget(s)")
    print_table(pd.DataFrame([{**p, "actions": ", ".join(p["actions"])} for p in info["playbooks"]]))


@app.command("list")
def list_(
    file: Annotated[str | None, typer.Argument(help="A playbook file to list; default: the built-in library.")] = None,
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
) -> None:
    """List built-in playbooks (or a file's), and the playbook runs recorded in the store."""
    from keymoments.act.library import library_names, load_library

    pf = _load(file) if file else load_library()
    rows = [{"name": p.name, "trigger": p.trigger.type, "actions": ", ".join(a.type for a in p.actions),
             "holdout": p.holdout.share, "description": p.description} for p in pf.playbooks]  # fmt: skip
    runs: list[dict] = []
    if Path(db).exists():
        store = open_store(db, read_only=True)
        try:
            if store.ops.kind != "embedded" or "playbook_runs" in store.tables():
                with store.ops.read() as con:
                    runs = store.ops.sql.list_runs(con)
        finally:
            store.close()
    if json_out:
        echo_json({"playbooks": rows, "library": library_names(), "runs": runs})
        return
    print_table(pd.DataFrame(rows), title="built-in playbooks" if not file else file)
    if runs:
        print_table(pd.DataFrame(runs), title=f"runs in {db}")


@app.command("backtest")
@engine_options
def backtest(
    file: FileArg,
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
    seed: SeedOption = None,
    record: Annotated[bool, typer.Option("--record", help="Store the decisions (for `playbooks report`).")] = False,
) -> None:
    """Replay the store's history through the playbooks, in event order; print what each would have done.
    With --engine spark the events are read on Spark and the playbooks run there per customer (the same
    decisions)."""
    from keymoments.act.runner import BACKTEST_BUDGET_PERIODS, PlaybookRunner
    from keymoments.exceptions import NotEnoughDataError

    pf = _load(file)
    store = open_analysis_store(db, read_only=not record)
    try:
        if store.count("events") == 0:
            raise NotEnoughDataError("No events in the store to replay; ingest events first (`keymoments ingest FILE`).")
        res = PlaybookRunner(store, pf, seed=seed, source=file).backtest(record=record)
    finally:
        store.close()
    if json_out:
        echo_json(res.to_dict())
        return
    console.print(f"backtest of {file} over {db}: {res.events:,} events in {res.seconds:.2f} s "
                  f"({res.events_per_second:,.0f} events/s), {len(res.decisions):,} decisions, seed {res.seed}"
                  + (f", recorded as {res.run_id}" if record else ""))  # fmt: skip
    console.print(f"budgets {BACKTEST_BUDGET_PERIODS} (live runs use the wall clock's period)")
    print_table(res.summary, title="per playbook")


@app.command("run")
def run(
    file: FileArg,
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
    seed: SeedOption = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep running: poll for new events.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls with --follow.")] = 2.0,
    deliver: Annotated[bool, typer.Option("--deliver", help="Also deliver the outbox's webhooks.")] = False,
    wall_clock: Annotated[
        bool, typer.Option("--wall-clock", help="Fire proactive triggers that fell due by now, not by the latest event.")
    ] = False,
    secret: Annotated[
        str | None, typer.Option("--secret", envvar="KM_WEBHOOK_SECRET", help="HMAC secret that signs webhooks.")
    ] = None,
) -> None:
    """Process the events that arrived since the last run (API or files), with the same engine as backtest."""
    from keymoments.act.outbox import OutboxWorker
    from keymoments.act.runner import PlaybookRunner

    pf = _load(file)
    if deliver and not secret:
        from keymoments.exceptions import ConfigError

        raise ConfigError("--deliver needs a webhook secret to sign requests: set KM_WEBHOOK_SECRET or pass --secret.")
    store = open_store(db)
    runner = PlaybookRunner(store, pf, seed=seed, source=file)
    worker = OutboxWorker(store, secret=secret or "") if deliver else None
    total = {"events": 0, "decisions": 0, "delivered": 0, "retried": 0, "dead": 0}
    last = None
    try:
        engine, seq = runner.live_engine()
        while True:
            res = runner.run_live(engine=engine, last_seq=seq, now=datetime.now(UTC) if wall_clock else None)
            seq = res.last_seq
            total["events"] += res.events
            total["decisions"] += len(res.decisions)
            if worker is not None:
                rep = worker.deliver_due()
                total["delivered"] += rep.delivered
                total["retried"] += rep.retried
                total["dead"] += rep.dead
            last = res
            if not follow:
                break
            if res.events and not json_out:
                console.print(f"{datetime.now(UTC):%H:%M:%S} {res.events} events, {len(res.decisions)} decisions")
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            worker.close()
        store.close()
    out = {**(last.to_dict() if last else {}), **total}
    if json_out:
        echo_json(out)
        return
    console.print(f"live run {runner.live_run_id}: {total['events']:,} new events, {total['decisions']:,} decisions"
                  + (f"; webhooks delivered {total['delivered']}, retrying {total['retried']}, dead {total['dead']}"
                     if deliver else ""))  # fmt: skip
    if last and last.decisions:
        print_table(pd.DataFrame(out["by_playbook"]), title="decisions")
    if not deliver and os.environ.get("KM_WEBHOOK_SECRET") is None:
        console.print("webhooks wait in the outbox; deliver them with --deliver (and KM_WEBHOOK_SECRET).")


@app.command("report")
def report(
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
    file: Annotated[str | None, typer.Option("--file", help="The playbook file (holdout shares, measures, budgets).")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="A run id; default: the live run, else the latest backtest.")
    ] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="Measure uplift on this outcome.")] = None,
) -> None:
    """Per playbook: what fired, to whom, cost and budgets, cases, sample-ratio check, and (live runs only) the
    uplift on outcomes observed after the decisions, with its CI. A backtest shows no uplift: it took no action."""
    from keymoments.act.report import playbook_report

    pf = _load(file) if file else None
    store = open_store(db, read_only=True)
    try:
        rep = playbook_report(store, pf, run_id=run_id, outcome=outcome)
    finally:
        store.close()
    if json_out:
        echo_json(rep)
        return
    if rep["run_id"] is None:
        console.print(rep["notes"][0])
        return
    live = rep["mode"] == "live"
    rows = []
    for r in rep["playbooks"]:
        row = {"playbook": r["playbook"], "fired" if live else "would fire": r["fired"], "held_out": r["held_out"],
               "blocked": r["blocked"], "customers": r["customers"], "approvals": r["approvals_needed"],
               "cost": r["cost"], "budget": ", ".join(r["budgets"]),
               "SRM ok": "yes" if r["srm"]["ok"] else "NO", "predictability": r.get("predictability")}  # fmt: skip
        if live:
            up = r.get("uplift")
            row["measure"] = "" if not r["measure"] else f"{r['measure']['outcome']} {r['measure']['window']}"
            row["uplift"] = None if not up else up["uplift"]
            row["95% CI"] = "" if not up or up["ci_low"] != up["ci_low"] else f"[{up['ci_low']:+.3f}, {up['ci_high']:+.3f}]"
            row["n (treat/ctrl)"] = "" if not up else f"{up['n_treatment']}/{up['n_control']}"
        rows.append(row)
    title = f"playbooks, live run {rep['run_id']}" if live else f"playbooks, backtest {rep['run_id']}: what would have fired"
    print_table(pd.DataFrame(rows), title=title)
    if rep["cases"]:
        print_table(pd.DataFrame(rep["cases"]), title="cases")
    if rep["budgets"]:
        budgets = pd.DataFrame(rep["budgets"])
        if "playbooks" in budgets:
            budgets["playbooks"] = budgets["playbooks"].map(", ".join)
        print_table(budgets, title="budgets" if live else "budgets: what the backtest would spend")
    if rep["outbox"]:
        console.print("outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(rep["outbox"].items())))
    if live:
        for r in rep["playbooks"]:
            if r.get("uplift_refused"):
                console.print(f"no uplift for {r['playbook']}: {r['uplift_refused']}", soft_wrap=True)
    for n in rep["notes"]:
        console.print(f"note: {n}", soft_wrap=True)


@app.command("schema")
def schema(db: DbOption = _DEFAULT_DB, json_out: JsonOption = False) -> None:
    """The playbook YAML reference: every trigger, condition and action with its fields, from the models."""
    from pydantic import BaseModel

    from keymoments.act import models as m

    if json_out:
        echo_json(m.PlaybookFile.model_json_schema())
        return
    sections = [
        ("file", [m.PlaybookFile, m.BudgetPool]),
        ("playbook", [m.Playbook, m.Governance, m.Holdout, m.Measure]),
        ("triggers", [m.EventTrigger, m.CrisisTrigger, m.GoodNewsTrigger, m.JourneyEndTrigger, m.MilestoneTrigger,
                      m.AbsenceTrigger]),
        ("conditions", [m.FieldCondition, m.HistoryCondition, m.JourneyCondition]),
        ("actions", [m.OpenCaseAction, m.CompensateAction, m.NotifyAction, m.RecognizeAction, m.WebhookAction]),
    ]  # fmt: skip
    for title, models in sections:
        console.print(f"[bold]{title}[/bold]")
        for model in models:
            assert issubclass(model, BaseModel)
            tag = model.model_fields.get("type")
            name = f"type: {tag.annotation.__args__[0]}" if tag is not None else model.__name__
            console.print(f"  [bold]{name}[/bold]: {(model.__doc__ or '').strip().splitlines()[0]}")
            for fname, f in model.model_fields.items():
                if fname == "type":
                    continue
                if f.is_required():
                    default = "required"
                else:
                    value = f.get_default(call_default_factory=True)
                    shown = "see below" if isinstance(value, BaseModel) else repr(value)
                    default = f"default {shown}"
                console.print(f"    {fname} ({default}): {f.description}", soft_wrap=True)


@app.command("cases")
def cases(
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
    status: Annotated[str | None, typer.Option("--status", help="open, in_progress, awaiting_approval, resolved, closed.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team's queue.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most rows to show.")] = 50,
) -> None:
    """The frontline's queue: cases opened by playbooks, most urgent first, with owner, reason and SLA."""
    from keymoments.act.cases import CaseBook

    store = open_store(db, read_only=True)
    try:
        df = CaseBook(store).list(status)
    finally:
        store.close()
    if team:
        df = df[df["team"] == team]
    rank = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
    df = df.assign(_r=df["priority"].map(rank).fillna(4)).sort_values(["_r", "sla_due_at"]).drop(columns="_r")
    cols = ["case_id", "playbook", "customer_id", "status", "priority", "team", "owner", "reason",
            "compensation_cents", "sla_due_at", "handoffs"]  # fmt: skip
    df = df[cols].head(limit)
    if json_out:
        echo_json({"cases": df})
        return
    print_table(df, title=f"cases ({status or 'all'})")


@app.command("approve")
def approve(
    entry_id: Annotated[str, typer.Argument(help="The ledger entry waiting for approval.")],
    file: Annotated[str, typer.Option("--file", help="The playbook file that declares the budget.")],
    by: Annotated[str, typer.Option("--by", help="Who approves.")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead: the money goes back to the pool.")] = False,
    db: DbOption = _DEFAULT_DB,
    json_out: JsonOption = False,
) -> None:
    """Approve (or reject) a compensation above the empowerment limit."""
    from keymoments.act.budgets import Ledger

    store = open_store(db)
    try:
        ledger = Ledger(store, _load(file))
        e = ledger.reject(entry_id, by=by) if reject else ledger.approve(entry_id, by=by)
    finally:
        store.close()
    if json_out:
        echo_json({"entry_id": e.entry_id, "status": e.status, "amount": e.amount_cents / 100, "pool": e.pool})
        return
    console.print(f"{e.entry_id}: {e.status} ({e.amount_cents / 100:.2f} from {e.pool})")


def register(main: typer.Typer) -> None:
    """Add the ``playbooks`` sub-app to the main app."""
    main.add_typer(app, name="playbooks")
