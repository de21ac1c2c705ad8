"""The ``keymoments`` command line (Typer).

Every command module in this package defines ``register(app)``; this module wires them together and turns
domain errors into one clean line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from keymoments.cli import analyze, demo, ingest, journey, live, moments, playbooks, serve
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

for _module in (demo, ingest, journey, moments, analyze, playbooks, serve, live):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``keymoments`` script."""

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
