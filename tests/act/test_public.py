"""The act package's public surface: a sorted __all__ that imports, and docstring examples that run."""

from __future__ import annotations

import doctest
import importlib

import pytest

import keymoments.act as act


def test_all_is_sorted_and_importable():
    assert act.__all__ == sorted(act.__all__)
    for name in act.__all__:
        assert getattr(act, name) is not None


@pytest.mark.parametrize("module", ["keymoments.act", "keymoments.act.engine", "keymoments.act.budgets"])
def test_docstring_examples_run(module):
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0


def test_cli_schema_lists_every_trigger_and_action(run_cli):
    code, out, _ = run_cli("playbooks", "schema")
    assert code == 0
    for word in ("crisis", "good_news", "journey_end", "milestone", "absence", "open_case", "compensate",
                 "notify", "recognize", "webhook", "empowerment_limit", "global_holdout"):
        assert word in out
