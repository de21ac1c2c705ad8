"""The FastAPI application: ``create_app(store, settings)``.

The server process owns the store (DuckDB allows one writing process per file): every write goes through
``store.write()`` (one writer), reads use their own cursors. Analyses are cached per data version.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from keymoments.config import Settings
from keymoments.serve.auth import KeyRing
from keymoments.serve.cache import ResultCache
from keymoments.serve.errors import install_error_handlers
from keymoments.serve.group_commit import GroupCommit, SparkEventsWriter
from keymoments.serve.text_scoring import BackgroundScorer
from keymoments.store.store import Store

__all__ = ["ServerState", "app_from_env", "create_app"]

log = logging.getLogger("keymoments.serve")

API_PREFIX = "/api/v1"


@dataclass
class ServerState:
    """What every request shares: the store, the settings, the journey model, keys, the result cache and the
    events writer (which writes concurrent batches together; with the events on Spark, appends each batch to
    the Spark dataset)."""

    store: Store
    settings: Settings
    journey: Any = None
    playbooks_source: Any = None  # a PlaybookFile, the path of a playbook YAML, or None for the built-in library
    keys: KeyRing = field(init=False)
    results: ResultCache = field(init=False)
    events_writer: GroupCommit | SparkEventsWriter = field(init=False)
    text_scorer: BackgroundScorer | None = field(init=False)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    broker: Any = field(init=False)  # a BrokerClient when KM_BROKER is set: posted events go to the stream

    def __post_init__(self) -> None:
        from keymoments.store.spark import SparkStore

        #: where the analyses read the events: "duckdb" (the store's file) or "spark" (a SparkStore's dataset or
        #: table; the operational state stays in the file, or on PostgreSQL)
        self.engine = "spark" if isinstance(self.store, SparkStore) else "duckdb"
        self.keys = KeyRing(self.store)
        self.results = ResultCache(self.store)
        spark = self.engine == "spark"
        # on Spark a posted batch is scored while it is staged (the dataset's files are not rewritten to score)
        self.events_writer = (
            SparkEventsWriter(self.store, score=self.settings.score_api_text, scorer=self.settings.text_model,
                              journey=self.journey) if spark else GroupCommit(self.store)
        )  # fmt: skip
        self.text_scorer = (
            BackgroundScorer(self.store, model=self.settings.text_model, journey=self.journey)
            if self.settings.score_api_text and not spark else None
        )  # fmt: skip
        self._playbooks: Any = None
        self.broker = None
        if self.settings.broker:
            from keymoments.live.broker import BrokerAddress, BrokerClient

            self.broker = BrokerClient(BrokerAddress.parse(self.settings.broker), partitions=self.settings.partitions)

    def playbooks(self) -> Any:
        """The playbook file the server acts with (loaded once): ``--playbooks FILE`` or the built-in library."""
        if self._playbooks is None:
            src = self.playbooks_source
            if src is None:
                from keymoments.act.library import load_library

                src = load_library(seed=self.settings.seed)
            elif isinstance(src, str | Path):
                from keymoments.act.yaml_loader import load_playbooks

                src = load_playbooks(src)
            self._playbooks = src
        return self._playbooks


def _load_journey(journey: Any) -> Any:
    if journey is None or not isinstance(journey, str | Path):
        return journey
    from keymoments.events import JourneyModel

    return JourneyModel.from_yaml(journey)


def create_app(
    store: Store,
    settings: Settings | None = None,
    *,
    journey: Any = None,
    playbooks: Any = None,
    close_store: bool = False,
    warm: tuple[str, ...] = (),
) -> FastAPI:
    """Build the API and dashboard over an open store.

    ``journey``: a JourneyModel or the path of a journey.yaml, used by the analyses that take one.
    ``playbooks``: a PlaybookFile or the path of a playbook YAML (default: the built-in library).
    ``close_store``: close the store when the app shuts down (the CLI's ``serve`` owns its store).
    ``warm``: analyses to compute in the background at start-up, so the first reader finds them cached.
    """
    from keymoments import __version__ as version

    state = ServerState(store, settings or Settings(), _load_journey(journey), playbooks)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if warm:
            threading.Thread(target=_warm, args=(state, warm), daemon=True, name="km-warm").start()
        if state.text_scorer is not None:
            state.text_scorer.start().poke()  # text left unscored before this start is scored too
        yield
        if state.text_scorer is not None:
            state.text_scorer.stop()
        if state.broker is not None:
            state.broker.close()
        if close_store:
            store.close()

    app = FastAPI(
        title="keymoments",
        version=str(version),
        summary="Find the moments of truth in customer journeys and act on them.",
        description=(
            "Every route but `/health`, `/docs` and `/openapi.json` needs an API key, sent as `X-API-Key: <key>` or "
            "`Authorization: Bearer <key>`. Roles: **admin** (everything), **analyst** (analyses, playbooks, "
            "budgets), **agent** (the case queue, spending within their limits). Errors always answer "
            '`{"ok": false, "error": "...", "errors": [...], "status": N}`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served by views.install from local files (FastAPI's own page loads Swagger UI from a CDN)
        redoc_url=None,
    )
    app.state.km = state
    install_error_handlers(app)
    from keymoments.serve.guard import Guard

    app.add_middleware(Guard, state=state)

    from keymoments.serve import views
    from keymoments.serve.routes import analyses, health, ingest, keys, texts

    app.include_router(health.router)
    app.include_router(ingest.router, prefix=API_PREFIX)
    app.include_router(analyses.build_router(), prefix=API_PREFIX)
    for optional in ("cases", "budgets", "playbooks"):
        router = _optional_router(optional)
        if router is not None:
            app.include_router(router, prefix=API_PREFIX)
    app.include_router(keys.router, prefix=API_PREFIX)
    app.include_router(texts.router, prefix=API_PREFIX)
    views.install(app)
    return app


def _optional_router(name: str) -> Any:
    """Routers that depend on layers still being built (act/) are mounted when those layers exist."""
    import importlib

    try:
        module = importlib.import_module(f"keymoments.serve.routes.{name}")
    except ImportError:
        return None
    build = getattr(module, "build_router", None)
    return build() if build is not None else None


def _warm(state: ServerState, names: tuple[str, ...]) -> None:
    from keymoments.serve.analyses import available, run_analysis

    for name in names:
        if available(name):
            try:
                run_analysis(state, name, {})
            except Exception:  # noqa: BLE001 - warming is best effort; the request will show the error
                log.info("warming the %s analysis failed; a request for it will say why", name, exc_info=True)


def app_from_env() -> FastAPI:
    """The app of one process of ``keymoments serve --workers N``, from the environment (``KM_*``): the DuckDB file
    read-only (for analyses), the operational store on PostgreSQL, posted events published to ``KM_BROKER``."""
    import os

    settings = Settings()
    settings.score_api_text = False  # nothing is written to the DuckDB file by these processes
    store = Store(settings.db, read_only=True, database_url=settings.database_url,
                  database_schema=settings.database_schema)  # fmt: skip
    return create_app(store, settings, journey=os.environ.get("KM_JOURNEY"), close_store=True)
