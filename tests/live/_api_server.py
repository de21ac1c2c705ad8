"""An API process of the live tests: ``python _api_server.py URL SCHEMA DB PORT PLAYBOOKS.yaml``.

``keymoments serve``'s app over a DuckDB file of its own for events, sharing the PostgreSQL operational store;
with URL ``-``, the embedded store (everything in the DuckDB file, this process its one writer)."""

from __future__ import annotations

import sys

import uvicorn

from keymoments.config import Settings
from keymoments.serve.app import create_app
from keymoments.store.store import Store

url, schema, db, port, playbooks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
if url == "-":
    store = Store(db)
    settings = Settings(score_api_text=False)
else:
    store = Store(db, database_url=url, database_schema=schema)
    settings = Settings(score_api_text=False, database_url=url, database_schema=schema)
app = create_app(store, settings, playbooks=playbooks, close_store=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
