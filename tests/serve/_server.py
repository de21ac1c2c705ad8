"""Run the keymoments server as `keymoments serve` does (its store cannot touch files from SQL), for the tests
that need a real uvicorn on loopback: ``python _server.py DB PORT PLAYBOOKS_YAML``."""

from __future__ import annotations

import sys

import uvicorn

from keymoments.serve.app import create_app
from keymoments.store.store import Store

if __name__ == "__main__":
    db, port, playbooks = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = Store(db, external_access=False)
    app = create_app(store, playbooks=playbooks, close_store=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
