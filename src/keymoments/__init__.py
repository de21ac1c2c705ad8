"""keymoments: find the moments of truth in customer journeys and act on them.

>>> import keymoments as km
>>> eng = km.connect(":memory:")          # or a path to a DuckDB file
>>> eng.count()
0
"""

from keymoments.engine import Engine, connect
from keymoments.events import RATING_SCALES, Event, JourneyModel, Touchpoint
from keymoments.exceptions import (
    BudgetError,
    ConfigError,
    ConflictError,
    IngestError,
    InvalidEventError,
    InvalidParameterError,
    KeymomentsError,
    KeymomentsWarning,
    MissingColumnError,
    NotEnoughDataError,
    NotFoundError,
    PermissionDeniedError,
    SmallSampleWarning,
    StoreError,
    UnsupportedFormatError,
    UpliftRefusedError,
)
from keymoments.store.store import Store
from keymoments.store.writer import IngestResult

__version__ = "0.1.0"

__all__ = [
    "RATING_SCALES",
    "BudgetError",
    "ConfigError",
    "ConflictError",
    "Engine",
    "Event",
    "IngestError",
    "IngestResult",
    "InvalidEventError",
    "InvalidParameterError",
    "JourneyModel",
    "KeymomentsError",
    "KeymomentsWarning",
    "MissingColumnError",
    "NotEnoughDataError",
    "NotFoundError",
    "PermissionDeniedError",
    "SmallSampleWarning",
    "Store",
    "StoreError",
    "Touchpoint",
    "UnsupportedFormatError",
    "UpliftRefusedError",
    "__version__",
    "connect",
]
