"""Playbook YAML: validation errors name the line and column, and say how to fix them."""

from __future__ import annotations

import re

import pytest

from keymoments.act.library import library_names, load_library
from keymoments.act.models import Playbook, PlaybookFile
from keymoments.act.yaml_loader import PlaybookYAMLError, load_playbooks, loads_playbooks
from keymoments.exceptions import ConfigError

GOOD = """\
budgets:
  - {name: recovery, amount: 500, empowerment_limit: 100}
playbooks:
  - name: recover
    trigger: {type: crisis}
    actions:
      - {type: compensate, amount: 20, budget: recovery}
"""


def test_good_file_loads():
    f = loads_playbooks(GOOD)
    assert f.playbooks[0].actions[0].cents == 2000
    assert f.budgets[0].limit_cents == 10000


def test_unknown_trigger_type_points_at_its_line_with_a_hint():
    text = GOOD.replace("trigger: {type: crisis}", "trigger: {type: crises}")
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="pb.yaml")
    assert str(exc.value).startswith("pb.yaml:5:")
    assert "playbooks[0].trigger" in str(exc.value)
    assert "Did you mean 'crisis'?" in str(exc.value)
    assert exc.value.errors[0]["line"] == 5


def test_unknown_field_points_at_the_key():
    text = GOOD.replace("    trigger: {type: crisis}\n", "    trigger: {type: crisis}\n    holdot: {share: 0.1}\n")
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="pb.yaml")
    msg = str(exc.value)
    assert msg.startswith("pb.yaml:6:5: playbooks[0].holdot: unknown field 'holdot'.")
    assert "Did you mean 'holdout'?" in msg


def test_bad_value_deep_inside_an_action():
    text = GOOD.replace("amount: 20,", "amount: -20,")
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="pb.yaml")
    assert "pb.yaml:7:" in str(exc.value)
    assert "playbooks[0].actions[0].amount" in str(exc.value)
    assert "must be at least 0.01" in str(exc.value)


def test_several_errors_are_all_reported_in_line_order():
    text = GOOD.replace("amount: 20,", "amount: -20,").replace("{type: crisis}", "{type: crisis, valence_below: 3}")
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="pb.yaml")
    assert [e["line"] for e in exc.value.errors] == [5, 7]
    assert str(exc.value).startswith("2 problem(s) in pb.yaml")


def test_undeclared_budget_is_a_clear_error():
    with pytest.raises(PlaybookYAMLError, match=r"spends from budget 'recovry'.*Did you mean 'recovery'"):
        loads_playbooks(GOOD.replace("budget: recovery", "budget: recovry"))


def test_bad_regex_is_reported_at_its_line():
    text = "name: x\ntrigger:\n  type: event\n  text_pattern: '(unclosed'\nactions: [{type: open_case}]\n"
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="x.yaml")
    assert str(exc.value).startswith("x.yaml:4:")
    assert "not a valid regular expression" in str(exc.value)


def test_yaml_syntax_error_has_line_number():
    with pytest.raises(PlaybookYAMLError, match=r"^pb.yaml:4:1: not valid YAML: expected ',' or '}'.*flow mapping, line 3"):
        loads_playbooks("playbooks:\n  - name: x\n    trigger: {type: crisis\n", source="pb.yaml")


def test_missing_type_and_missing_file():
    with pytest.raises(PlaybookYAMLError, match="the 'type' field is missing"):
        loads_playbooks("name: x\ntrigger: {touchpoint: a}\nactions: [{type: open_case}]\n")
    with pytest.raises(ConfigError, match="does not exist.*Did you mean 'service-recovery'"):
        load_playbooks("service-recovry")


def test_errors_are_config_errors_and_value_errors():
    with pytest.raises(ValueError):
        loads_playbooks("playbooks: []\n")


def test_every_library_playbook_loads_and_every_field_is_described():
    assert len(library_names()) >= 8
    lib = load_library()
    assert len(lib.playbooks) == len(library_names())
    from pydantic import BaseModel

    from keymoments.act import models

    for obj in vars(models).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == models.__name__:
            for name, f in obj.model_fields.items():
                assert f.description, f"{obj.__name__}.{name} has no description"
    assert Playbook.model_fields["trigger"].description
    assert PlaybookFile.model_fields["seed"].description


# -- money: validation accepts exactly what the engine can run (issue 15, item 8) ----------------------------
@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("amount: 20,", "amount: 0.005,", "playbooks[0].actions[0].amount", "must be at least 0.01 (one cent); got 0.005"),
        ("amount: 500,", "amount: 1e20,", "budgets[0].amount", "may be at most 1,000,000,000,000"),
        ("amount: 500,", "amount: 1.0e+20,", "budgets[0].amount", "may be at most 1,000,000,000,000"),
        ("empowerment_limit: 100", "empowerment_limit: 1e30", "budgets[0].empowerment_limit",
         "empowerment limit may be at most 1,000,000,000,000"),
        ("empowerment_limit: 100", "empowerment_limit: 1.0e+308", "budgets[0].empowerment_limit", "at most"),
        ("amount: 20,", "amount: .inf,", "playbooks[0].actions[0].amount", "must be a finite number"),
        ("amount: 20,", "amount: .nan,", "playbooks[0].actions[0].amount", "must be a finite number"),
        ("amount: 500,", "amount: 0,", "budgets[0].amount", "must be at least 0.01"),
        ("empowerment_limit: 100", "empowerment_limit: -1", "budgets[0].empowerment_limit", "must be at least 0"),
        ("amount: 20,", "amount: true,", "playbooks[0].actions[0].amount", "must be a number"),
    ],
)  # fmt: skip
def test_money_the_engine_cannot_run_is_refused_at_validation(old, new, where, message):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(PlaybookYAMLError) as exc:
        loads_playbooks(text, source="pb.yaml")
    assert where in str(exc.value)
    assert message in str(exc.value)


def test_money_that_validates_runs_live_and_in_a_backtest_for_the_same_cents(tmp_path):
    """Half a cent above a cent rounds half up everywhere: the back-test's cost and the live ledger agree."""
    from datetime import UTC, datetime

    import pandas as pd

    from keymoments.act.runner import PlaybookRunner
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame

    f = loads_playbooks(GOOD.replace("amount: 20,", "amount: 0.015,").replace("amount: 500,", "amount: 999999999999.99,"))
    assert f.playbooks[0].actions[0].cents == 2
    store = Store(tmp_path / "km.duckdb")
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        ingest_events_frame(store, pd.DataFrame(
            [{"customer_id": "c1", "ts": now, "touchpoint": "flight", "outcome": "cancelled"}]))  # fmt: skip
        runner = PlaybookRunner(store, f)
        bt = runner.backtest()
        assert bt.summary["cost"].iloc[0] == 0.02
        runner.run_live()
        ledger = store.query("SELECT amount_cents, status FROM ledger")
        assert ledger["amount_cents"].tolist() == [2]
        assert store.query("SELECT amount_cents FROM budgets")["amount_cents"].tolist() == [99_999_999_999_999]
    finally:
        store.close()


def test_measure_states_the_outcome_and_its_window():
    from datetime import timedelta

    from keymoments.act.runner import file_hash

    text = GOOD.replace("    trigger: {type: crisis}\n", "    trigger: {type: crisis}\n    measure: {outcome: retained, window: 12w}\n")
    pb = loads_playbooks(text).playbooks[0]
    assert pb.measure.outcome == pb.outcome == "retained" and pb.measure.window == timedelta(weeks=12)
    # the shorthand `outcome:` measures over 90 days; the hash (and so the live run) ignores how uplift is measured
    short = loads_playbooks(GOOD.replace("    trigger: {type: crisis}\n", "    trigger: {type: crisis}\n    outcome: retained\n"))
    assert short.playbooks[0].measure.window == timedelta(days=90)
    assert file_hash(short) == file_hash(loads_playbooks(text))
    for bad, says in (("window: 90", "write the window with its unit, e.g. '90d'"),
                      ("window: 90 days", "a number and a unit (h, d or w)"), ("window: 0h", "longer than zero"),
                      ("windw: 9d", "Did you mean 'window'?")):  # fmt: skip
        with pytest.raises(PlaybookYAMLError, match=re.escape(says)) as exc:
            loads_playbooks(text.replace("window: 12w", bad), source="pb.yaml")
        assert exc.value.errors[-1]["line"] == 6
    with pytest.raises(PlaybookYAMLError, match="outcome 'nps' and measure.outcome 'retained' differ"):
        loads_playbooks(text.replace("    measure:", "    outcome: nps\n    measure:"))


def test_every_library_playbook_with_a_holdout_states_its_measure():
    for p in load_library().playbooks:
        if p.holdout.share > 0:
            assert p.measure is not None and p.measure.outcome == "retained", p.name
