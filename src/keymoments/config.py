"""Settings, read from the environment with the ``KM_`` prefix (``KM_DB=/data/km.duckdb``).

Settings are built where they are needed and passed in; nothing builds them at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Process-wide settings. Every field can be set as ``KM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KM_", extra="ignore")

    db: Path = Field(Path("keymoments.duckdb"), description="Path of the DuckDB store file.")
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="Engine the analyses run on: 'duckdb' (the embedded store) or 'spark' (events on Spark; "
        "session settings from the Spark configuration, e.g. spark-defaults.conf).",
    )
    events_path: str | None = Field(
        None, description="With the Spark engine: the Parquet events dataset (default: the store's path with .events)."
    )
    events_table: str | None = Field(
        None, description="With the Spark engine: an existing Spark/Hive table of events to analyse instead."
    )
    threads: int | None = Field(None, description="DuckDB worker threads (default: all cores).")
    memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '2GB'.")
    seed: int = Field(0, description="Seed for bootstraps and randomised playbooks.")
    bootstrap: int = Field(500, description="Bootstrap resamples for confidence intervals.")
    max_fit_customers: int = Field(
        2_000_000, ge=1, description="Most customers (or journeys) a statistical fit takes whole; above it, the fit "
        "is drawn on a stratified sample of this many (keymoments.analyze.sample).",
    )
    host: str = Field("127.0.0.1", description="Address `keymoments serve` binds to.")
    port: int = Field(8000, description="Port `keymoments serve` listens on.")
    text_model: str = Field("auto", description="Text scorer: 'auto', 'lexicon' or 'semantic'.")
    score_api_text: bool = Field(
        True, description="`keymoments serve` scores the text of events posted to the API in the background."
    )
    max_body_bytes: int = Field(
        1 << 20, gt=0, description="Largest request body the server reads (forms, JSON, playbook YAML); 413 above."
    )
    max_ingest_bytes: int = Field(
        128 << 20, gt=0, description="Largest body POST /api/v1/events and /api/v1/outcomes read; 413 above."
    )
    database_url: str | None = Field(
        None,
        description=(
            "postgresql://… URL of the operational store (cases, budgets and ledger, holdouts, decisions, outbox, "
            "run state, API keys); unset: they live in the DuckDB store file."
        ),
    )
    database_schema: str = Field(
        "public", description="PostgreSQL schema of the operational store's tables (with KM_DATABASE_URL)."
    )
    broker: str | None = Field(
        None,
        description=(
            "nats://HOST:PORT/SUBJECT, the JetStream event stream: `keymoments serve` publishes posted events "
            "there (for `keymoments worker`) instead of writing them to the store, and /health reports its lag."
        ),
    )
    partitions: int = Field(
        4, ge=1, le=1024, description="Partitions of the event stream (by a hash of the customer id)."
    )
