"""The ``keymoments`` command line (Typer).

Every command module in this package defines ``register(app)``; this module wires them together and turns
domain errors into one clean line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from keymoments.cli import analyze, demo, ingest, journey, live, moments, playbooks, serve, texts
from keymoments.exceptions import KeymomentsError, KeymomentsWarning

__all__ = ["app", "main"]

app = typer.Typer(
    name="keymoments",
    help="Find the moments of truth in customer journeys and act on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for _module in (demo, ingest, journey, moments, analyze, playbooks, texts, serve, live):
    _module.register(app)


class _OneLine(logging.Formatter):
    """A log record as the CLI's one line (``warning: ...``); the traceback of errors, and of everything with
    KM_DEBUG=1."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and (record.levelno >= logging.ERROR or os.environ.get("KM_DEBUG")):
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests swap it)."""

    _km_cli = True

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _log_to_stderr() -> None:
    """The library logs what it caught (with tracebacks); the command line shows warnings as one line each on
    stderr, errors with their traceback, and everything with KM_DEBUG=1."""
    logger = logging.getLogger("keymoments")
    if any(getattr(h, "_km_cli", False) for h in logger.handlers):
        return
    handler = _Stderr()
    handler.setFormatter(_OneLine())
    debug = bool(os.environ.get("KM_DEBUG"))
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``keymoments`` script."""
    _log_to_stderr()

    def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, KeymomentsWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:  # a library's warning is for its callers (us), not for the user: kept in the debug log
            logging.getLogger("keymoments.cli").debug(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        # the command line owns the process: statistical caveats are printed as one line, never raised
        warnings.simplefilter("always", KeymomentsWarning)
        warnings.showwarning = _show_warning
        try:
            app(args=argv, standalone_mode=True)
        except KeymomentsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
