"""CLI commands: ``serve`` (REST API and dashboard), ``report`` (self-contained HTML) and ``keys`` (API keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keymoments.cli.common import (
    DbOption,
    JsonOption,
    analysis_engine,
    echo_json,
    engine_options,
    filter_options,
    open_analysis_store,
    open_store,
)

__all__ = ["build_serve_app", "register"]

JourneyOption = Annotated[
    Path | None, typer.Option("--journey", help="journey.yaml: touchpoint order, crisis and good-news outcomes.")
]

keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("serve")(serve)
    app.command("report")(report)
    app.add_typer(keys_app, name="keys")


@engine_options
def serve(
    db: DbOption = Path("keymoments.duckdb"),
    host: Annotated[str, typer.Option("--host", help="Address to bind.", envvar="KM_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", envvar="KM_PORT")] = 8000,
    journey: JourneyOption = None,
    bootstrap_key: Annotated[
        bool, typer.Option("--admin-key/--no-admin-key", help="Create and print an admin key when the store has none.")
    ] = True,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="API processes. More than one needs KM_DATABASE_URL (they share the "
                     "operational store) and KM_BROKER (posted events go to the stream); they read the DuckDB file "
                     "read-only."),
    ] = 1,
) -> None:
    """The REST API (/api/v1, OpenAPI at /openapi.json) and the dashboard (/), on one process that owns the store
    (or several with --workers, sharing PostgreSQL). With --engine spark every analysis reads the events on Spark
    and posted batches are appended to the Parquet dataset; keys, cases and budgets stay in the store."""
    import uvicorn

    from keymoments.config import Settings

    if workers > 1:
        if analysis_engine() == "spark":
            from keymoments.exceptions import ConfigError

            raise ConfigError(
                "--workers above 1 is for the DuckDB engine: with --engine spark one process drives Spark, which "
                "spreads each analysis over the cluster's executors. Serve with --workers 1."
            )
        _serve_many(db, host, port, journey, bootstrap_key, workers)
        return
    settings = Settings(db=db, host=host, port=port)
    app = build_serve_app(settings, journey=journey, bootstrap_key=bootstrap_key)
    where = " (events on Spark)" if app.state.km.engine == "spark" else ""
    typer.echo(f"keymoments on http://{host}:{port}/{where}  (API: /api/v1, docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def build_serve_app(settings: Any, *, journey: Path | None = None, bootstrap_key: bool = True) -> Any:
    """The app ``serve`` runs (one process): the store at ``settings.db`` opened for serving, on the engine the
    command names (:func:`~keymoments.cli.common.open_analysis_store`), with a first admin key when it has none."""
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key, list_keys

    if settings.broker and analysis_engine() == "spark":
        from keymoments.exceptions import ConfigError

        raise ConfigError(
            "KM_BROKER with --engine spark: posted events would go to the stream, whose worker writes the DuckDB "
            "store, not the Spark dataset the analyses read. Unset KM_BROKER (posted batches are then appended to "
            "the dataset) or serve the DuckDB store."
        )
    # the server ingests batches from memory only: SQL it runs can never read or write a file
    store = open_analysis_store(settings.db, serving=True)
    try:
        if bootstrap_key and not [k for k in list_keys(store) if k["role"] == "admin" and k["revoked_at"] is None]:
            _, key = create_key(store, "admin", name="first admin (keymoments serve)")
            typer.echo(f"No admin key yet; created one (shown once, store it now):\n  {key}")
        return create_app(store, settings, journey=journey, close_store=True, warm=("journey",))
    except BaseException:
        store.close()
        raise


def _serve_many(db: Path, host: str, port: int, journey: Path | None, bootstrap_key: bool, workers: int) -> None:
    """``serve --workers N``: N uvicorn processes, each building its app with ``serve.app.app_from_env``."""
    import os

    import uvicorn

    from keymoments.config import Settings
    from keymoments.exceptions import ConfigError
    from keymoments.serve.auth import create_key, list_keys

    settings = Settings(db=db, host=host, port=port)
    if not settings.database_url or not settings.broker:
        raise ConfigError(
            "--workers above 1 needs KM_DATABASE_URL (the processes share the operational store on PostgreSQL) and "
            "KM_BROKER (posted events go to the stream that `keymoments worker` consumes): DuckDB lets one process "
            "write a file."
        )
    with open_store(db, must_exist=False) as store:  # created and migrated once, then read-only in every process
        if bootstrap_key and not [k for k in list_keys(store) if k["role"] == "admin" and k["revoked_at"] is None]:
            _, key = create_key(store, "admin", name="first admin (keymoments serve)")
            typer.echo(f"No admin key yet; created one (shown once, store it now):\n  {key}")
    os.environ["KM_DB"] = str(db)
    if journey is not None:
        os.environ["KM_JOURNEY"] = str(journey)
    typer.echo(f"keymoments on http://{host}:{port}/ with {workers} processes (API: /api/v1, docs: /docs)")
    uvicorn.run("keymoments.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning")  # fmt: skip


@filter_options
def report(
    filters: dict[str, Any],
    db: DbOption = Path("keymoments.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="Where the HTML report goes.")] = Path("report.html"),
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="The outcome to explain (default: retained, or the first yes/no one).")
    ] = None,
    journey: JourneyOption = None,
    title: Annotated[str, typer.Option("--title", help="The report's title.")] = "Customer journey report",
) -> None:
    """Write one self-contained HTML report (charts inline, plotly.js embedded once, no network needed); the
    filters apply to every section. With --engine spark every section reads the events on Spark."""
    from keymoments.present import show_progress
    from keymoments.serve.report import write_report

    with show_progress(), open_analysis_store(db) as store:
        path = write_report(store, out, outcome=outcome, journey=journey, title=title, filters=filters)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="admin, analyst or agent.")],
    db: DbOption = Path("keymoments.duckdb"),
    name: Annotated[str | None, typer.Option("--name", help="Who or what holds the key.")] = None,
    employee_id: Annotated[str | None, typer.Option("--employee-id", help="An agent's employee id.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; it is printed once (only its SHA-256 hash is stored)."""
    from keymoments.serve.auth import create_key

    with open_store(db, must_exist=False) as store:
        key_id, key = create_key(store, role, name=name, employee_id=employee_id)
    if as_json:
        echo_json({"key_id": key_id, "key": key, "role": role})
    else:
        typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after km_), or the key itself.")],
    db: DbOption = Path("keymoments.duckdb"),
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from keymoments.serve.auth import revoke_key

    with open_store(db) as store:
        revoke_key(store, key_id)
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(db: DbOption = Path("keymoments.duckdb"), as_json: JsonOption = False) -> None:
    """List API keys: id, role, holder, created, last used, revoked (never the keys)."""
    import pandas as pd

    from keymoments.cli.common import print_table
    from keymoments.serve.auth import list_keys

    with open_store(db, read_only=True) as store:
        rows = list_keys(store)
    if as_json:
        echo_json(rows)
    else:
        print_table(pd.DataFrame(rows, columns=["key_id", "role", "name", "employee_id", "created_at", "last_used_at", "revoked_at"]))
