"""The curated public API: __all__ is sorted, complete and importable."""

from __future__ import annotations

import keymoments


def test_all_is_sorted_and_importable():
    names = keymoments.__all__
    # isort style (ruff RUF022): CONSTANTS, then Classes, then functions, each alphabetical
    def key(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[0].isupper() else 2, n)

    assert names == sorted(names, key=key)
    for name in names:
        assert hasattr(keymoments, name), name


def test_public_classes_are_exported():
    public = {n for n in dir(keymoments) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(keymoments.__all__)


def test_errors_subclass_builtins():
    assert issubclass(keymoments.MissingColumnError, ValueError)
    assert issubclass(keymoments.NotFoundError, LookupError)
    assert issubclass(keymoments.StoreError, RuntimeError)
