"""``/health``: the one route that needs no key (for load balancers, uptime checks and operators).

Besides liveness it reports what an operations team watches: the outbox's backlog (messages waiting for
delivery and how long the oldest has waited), and, with the PostgreSQL operational store, each worker's last
processed event and heartbeat and each partition's cursor; with ``KM_BROKER`` set, the stream's lag (messages
not yet delivered to a worker, and delivered but not yet acknowledged, per partition).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from keymoments.present import to_jsonable

router = APIRouter(tags=["health"])
log = logging.getLogger("keymoments.serve")

#: A worker whose heartbeat is older than this is reported as not alive.
STALE_AFTER_S = 30.0


@router.get("/health", summary="Liveness, store, outbox backlog, workers and broker lag (no key needed)")
def health(request: Request) -> dict[str, Any]:
    state = request.app.state.km
    cur = state.store.cursor()
    try:
        cur.execute("SELECT 1").fetchone()
    finally:
        cur.close()
    scorer = state.text_scorer
    out: dict[str, Any] = {"ok": True, "status": "up", "schema_version": state.store.schema_version, "engine": state.engine,
                           "text_scoring": scorer.status() if scorer is not None else _scored_at_ingest(state)}  # fmt: skip
    out.update(operations(state))
    return to_jsonable(out)


def _scored_at_ingest(state: Any) -> str:
    """Without a background scorer: "at ingest" when posted batches are scored while staged for Spark, else off."""
    return "at ingest" if state.engine == "spark" and state.settings.score_api_text else "off"


def operations(state: Any) -> dict[str, Any]:
    """The operational part of /health: store, outbox backlog, workers, partitions, broker lag."""
    ops = state.store.ops
    now = datetime.now(UTC)
    out: dict[str, Any] = {"operational_store": ops.kind}
    with ops.read() as con:
        backlog = ops.sql.outbox_backlog(con)
        oldest = backlog.get("oldest_pending")
        backlog["oldest_pending_age_s"] = None if oldest is None else round((now - oldest).total_seconds(), 3)
        out["outbox"] = backlog
        if ops.kind == "postgresql":
            workers = ops.sql.workers_status(con)
            for w in workers:
                beat = w.get("heartbeat_at")
                w["alive"] = w.get("stopped_at") is None and beat is not None and (now - beat).total_seconds() < STALE_AFTER_S
            out["workers"] = workers
            out["partitions"] = ops.sql.partitions_status(con)
    if state.broker is not None:
        try:
            out["broker"] = state.broker.lag()
        except Exception as exc:  # noqa: BLE001 - health reports the broker's trouble, it does not fail on it
            log.warning("the broker's lag cannot be read", exc_info=True)
            out["broker"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
