"""The keymoments exception tree.

Every error the library raises on purpose is a :class:`KeymomentsError`. Each also subclasses the builtin
that fits it, so ``except ValueError`` keeps working for callers who do not know our names::

    KeymomentsError
    ├── ConfigError(ValueError)            a setting or parameter is wrong
    │   └── InvalidParameterError           a parameter of an analysis / playbook is out of its domain
    ├── IngestError(ValueError)            a file or batch cannot be ingested at all (nothing was written)
    │   ├── MissingColumnError              a required column is missing (with a "did you mean" hint)
    │   ├── RejectedRowsError               no row, or too many rows, passed validation (rejects file written)
    │   └── UnsupportedFormatError          the file's format is not one we read
    ├── InvalidEventError(ValueError)      one event (row) breaks the data contract
    ├── StoreError(RuntimeError)           the DuckDB store cannot be opened / migrated / written
    ├── NotEnoughDataError(ValueError)     an analysis has too little data to say anything
    ├── UpliftRefusedError(ValueError)     no honest uplift: no action was taken, or no outcome was observed after it
    ├── NotFoundError(LookupError)         a case, playbook, budget, outcome… does not exist
    ├── PermissionDeniedError(PermissionError)  an API key's role may not do this
    ├── BudgetError(RuntimeError)          a spend would overdraw a budget pool
    └── ConflictError(RuntimeError)        someone else changed it first (two agents moved one case at once)

Statistical caveats (small samples, wide intervals) are warnings, not errors: :class:`KeymomentsWarning`
and its :class:`SmallSampleWarning`.
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "ConfigError",
    "ConflictError",
    "IngestError",
    "InvalidEventError",
    "InvalidParameterError",
    "KeymomentsError",
    "KeymomentsWarning",
    "NotEnglishWarning",
    "MissingColumnError",
    "NotEnoughDataError",
    "NotFoundError",
    "PermissionDeniedError",
    "RejectedRowsError",
    "SmallSampleWarning",
    "StoreError",
    "UnsupportedFormatError",
    "UpliftRefusedError",
]


class KeymomentsError(Exception):
    """Base class of every error keymoments raises on purpose."""


class ConfigError(KeymomentsError, ValueError):
    """A setting or parameter is wrong."""


class InvalidParameterError(ConfigError):
    """A parameter of an analysis, playbook or command is outside its domain."""


class IngestError(KeymomentsError, ValueError):
    """A whole file or batch is refused; nothing of it was written."""


class MissingColumnError(IngestError):
    """A required column is missing from the input."""


class RejectedRowsError(IngestError):
    """No row of a batch, or more rows than the command allows (``--max-rejects``), broke the contract; the
    rejects file is written and nothing of the batch (or of its command) is. ``result`` holds the batch's counts."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class UnsupportedFormatError(IngestError):
    """The input's format is not one keymoments reads."""


class InvalidEventError(KeymomentsError, ValueError):
    """One event breaks the data contract."""


class StoreError(KeymomentsError, RuntimeError):
    """The store cannot be opened, migrated or written."""


class NotEnoughDataError(KeymomentsError, ValueError):
    """An analysis has too little data to give an answer."""


class UpliftRefusedError(KeymomentsError, ValueError):
    """A playbook's uplift cannot be measured honestly: the run is a backtest (no action was taken), there is
    no live run, or no outcome was observed after the decisions within the playbook's window. The message is
    one line that says which, and what would make it measurable."""


class NotFoundError(KeymomentsError, LookupError):
    """A named thing (outcome, case, playbook, budget, touchpoint) does not exist."""


class PermissionDeniedError(KeymomentsError, PermissionError):
    """The caller's role may not do this."""


class BudgetError(KeymomentsError, RuntimeError):
    """A spend or reservation would take a budget pool below zero."""


class ConflictError(KeymomentsError, RuntimeError):
    """Another writer changed the thing first (e.g. moved the case the caller was moving); reload and retry."""


class KeymomentsWarning(UserWarning):
    """Base class of keymoments warnings."""


class SmallSampleWarning(KeymomentsWarning):
    """A number rests on few observations; its interval is wide or unreliable."""


class NotEnglishWarning(KeymomentsWarning):
    """Many texts do not look English, and the text models read English only: their scores are unreliable."""
