"""Run the keymoments server on a store for the browser tests: ``python _server.py DB PORT``."""

from __future__ import annotations

import sys

import uvicorn

from keymoments.act.library import load_library
from keymoments.serve.app import create_app
from keymoments.store.store import Store

if __name__ == "__main__":
    db, port = sys.argv[1], int(sys.argv[2])
    store = Store(db)
    app = create_app(store, playbooks=load_library(["service-recovery", "unresolved-crisis"]), close_store=True, warm=("journey",))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
