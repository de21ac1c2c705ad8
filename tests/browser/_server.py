"""Run the keymoments server on a store for the browser tests: ``python _server.py DB PORT [library]``.

With ``library`` the server acts with the whole built-in library (as ``keymoments serve`` does after
``keymoments demo``); without, with service-recovery and unresolved-crisis only."""

from __future__ import annotations

import sys

import uvicorn

from keymoments.act.library import load_library
from keymoments.serve.app import create_app
from keymoments.store.store import Store

if __name__ == "__main__":
    db, port = sys.argv[1], int(sys.argv[2])
    names = None if sys.argv[3:] == ["library"] else ["service-recovery", "unresolved-crisis"]
    store = Store(db)
    app = create_app(store, playbooks=load_library(names), close_store=True, warm=("journey",))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
