"""CLI commands of live operations on the event stream: ``keymoments worker --from nats://HOST:PORT/SUBJECT``
decides on it; ``keymoments ingest-stream --from …`` writes its events into the DuckDB store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from keymoments.cli.common import DbOption, echo_json, open_store

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("worker")(worker)
    app.command("ingest-stream")(ingest_stream)


def worker(
    source: Annotated[str, typer.Option("--from", help="The event stream: nats://HOST:PORT/SUBJECT.", envvar="KM_BROKER")],
    playbooks: Annotated[
        str | None, typer.Option("--playbooks", help="A playbook YAML file or built-in name (default: the built-in library).")
    ] = None,
    partitions: Annotated[
        int, typer.Option("--partitions", help="Partitions of the stream (as the publishers use).", envvar="KM_PARTITIONS")
    ] = 4,
    partition: Annotated[
        str | None, typer.Option("--partition", help="The partitions this worker may take, e.g. 0,1 (default: all).")
    ] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="The JetStream stream (default: from the subject).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Messages committed per transaction at most.", min=1)] = 256,
    ack_wait: Annotated[float, typer.Option("--ack-wait", help="Seconds before JetStream redelivers.", min=1)] = 30.0,
    worker_id: Annotated[str | None, typer.Option("--id", help="This worker's name (default: host-pid-random).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final report as JSON.")] = False,
) -> None:
    """Consume a NATS JetStream stream with durable consumers (one per partition, customers partitioned by a hash
    of their id), fire playbooks and record decisions, cases, ledger and outbox on PostgreSQL
    (KM_DATABASE_URL), acknowledge each message after its effects are committed. SIGTERM finishes the batch in
    flight and exits 0."""
    from keymoments.act.library import load_library
    from keymoments.act.yaml_loader import load_playbooks
    from keymoments.config import Settings
    from keymoments.exceptions import ConfigError
    from keymoments.live.broker import BrokerAddress
    from keymoments.live.worker import Worker, run_worker
    from keymoments.store.postgres import PostgresOps

    settings = Settings()
    if not settings.database_url:
        raise ConfigError(
            "keymoments worker records on the PostgreSQL operational store that all workers and API processes "
            "share: set KM_DATABASE_URL=postgresql://…"
        )
    address = BrokerAddress.parse(source, stream)
    claim = None
    if partition:
        try:
            claim = [int(x) for x in partition.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--partition takes partition numbers like 0,1; got {partition!r}.") from None
    pf = load_playbooks(playbooks) if playbooks else load_library(seed=settings.seed)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ops = PostgresOps(settings.database_url, schema=settings.database_schema)
    try:
        w = Worker(ops, pf, address, partitions=partitions, claim=claim, batch=batch, ack_wait=ack_wait,
                   worker_id=worker_id, seed=settings.seed, source=playbooks)  # fmt: skip
        typer.echo(f"worker {w.worker_id}: {address.servers} stream {address.stream} ({address.subject}.*), "
                   f"partitions {w.claim} of {partitions}, recording on {ops.describe()}", err=True)  # fmt: skip
        report = run_worker(w)
    finally:
        ops.close()
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(f"worker {report.worker_id} stopped: {report.events} events, {report.decisions} decisions, "
                   f"partitions {report.partitions}")  # fmt: skip
    if report.unfinished:  # it stopped, but not cleanly: say so in the exit status
        typer.echo(f"error: partitions {report.unfinished} did not finish their batch in flight before the stop; "
                   "JetStream delivers it again to the next owner", err=True)  # fmt: skip
        raise typer.Exit(1)


def ingest_stream(
    source: Annotated[str, typer.Option("--from", help="The event stream: nats://HOST:PORT/SUBJECT.", envvar="KM_BROKER")],
    db: DbOption = Path("keymoments.duckdb"),
    stream: Annotated[str | None, typer.Option("--stream", help="The JetStream stream (default: from the subject).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Events written per transaction at most.", min=1)] = 1000,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final counts as JSON.")] = False,
) -> None:
    """Write the stream's events into the DuckDB store for the analyses (one process: DuckDB has one writer),
    with the file ingest's validation, idempotent on event_id; each batch is acknowledged after it commits.
    SIGTERM finishes the batch in flight and exits 0."""
    import asyncio

    from keymoments.live.broker import BrokerAddress
    from keymoments.live.sink import StreamSink

    address = BrokerAddress.parse(source, stream)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with open_store(db, must_exist=False) as store:
        typer.echo(f"writing {address.stream} ({address.subject}.*) into {db}", err=True)
        report = asyncio.run(StreamSink(store, address, batch=batch).run(install_signals=True))
    if json_out:
        echo_json(report.to_dict())
    else:
        typer.echo(f"stream written: {report.accepted} events, {report.duplicates} duplicates, {report.rejected} rejected")
