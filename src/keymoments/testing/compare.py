"""Compare two engines' answers: JSON documents equal exactly, except floats within a tolerance.

The conformance suite (DuckDB against Spark), the API served on either engine and the report use it:

    >>> same({"n": 3, "mean": 0.1 + 0.2}, {"n": 3, "mean": 0.3})
    >>> same({"n": 3}, {"n": 4})
    Traceback (most recent call last):
    ...
    AssertionError: $.n: 3 != 4
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TOL", "same"]

#: the tolerance for floats (means and other sums whose order of addition differs between engines)
TOL = 1e-9


def same(a: Any, b: Any, path: str = "$", tol: float = TOL) -> None:
    """Raise AssertionError unless two JSON documents are equal: exactly (counts, names, orderings), except floats
    within ``tol`` (NaN equals NaN); the message names the path of the first difference."""
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            raise AssertionError(f"{path}: {a!r} != {b!r}")
        if math.isnan(a) or math.isnan(b):
            equal = math.isnan(a) and math.isnan(b)
        else:
            equal = math.isclose(a, b, rel_tol=tol, abs_tol=tol)
        if not equal:
            raise AssertionError(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, dict):
        if not (isinstance(b, dict) and sorted(a) == sorted(b)):
            raise AssertionError(f"{path}: keys {sorted(a)} != {sorted(b) if isinstance(b, dict) else b!r}")
        for k in a:
            same(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        if not (isinstance(b, list) and len(a) == len(b)):
            raise AssertionError(f"{path}: {len(a)} items != {len(b) if isinstance(b, list) else b!r}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]", tol)
    elif a != b:
        raise AssertionError(f"{path}: {a!r} != {b!r}")
