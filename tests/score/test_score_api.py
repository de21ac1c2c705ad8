"""The public names of keymoments.score, and the docstring examples of its modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

import keymoments.score as score

MODULES = ["base", "frame", "fusion", "lexicon", "ratings", "registry", "semantic_tagging", "store", "tagging"]


def _isort_key(name: str) -> tuple[int, str]:
    # constants, then classes, then functions (ruff's RUF022 order, as in keymoments.events)
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_sorted_and_resolves():
    assert score.__all__ == sorted(score.__all__, key=_isort_key)
    for name in score.__all__:
        assert getattr(score, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_module_all_is_sorted_and_docstring_examples_run(module):
    mod = importlib.import_module(f"keymoments.score.{module}")
    assert mod.__all__ == sorted(mod.__all__, key=_isort_key)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
