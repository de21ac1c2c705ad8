"""The back-test's decisions in bounded memory: a DecisionLog reads as the list it replaces, spills to disk past a
chunk, and a back-test that spills decides and records exactly what one that does not decides and records."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.act import decision_log
from keymoments.act.decision_log import DecisionLog
from keymoments.act.engine import Decision
from keymoments.act.runner import PlaybookRunner
from keymoments.act.yaml_loader import loads_playbooks

from .conftest import ev, load_events
from .test_runner import HISTORY, PB


def _decision(i: int, text: str | None = None) -> Decision:
    return Decision(
        decision_id=f"d{i}", playbook="recover", kind="fire", status="fired", trigger="crisis",
        customer_id=f"c{i % 7}", journey_id=None, event_id=f"e{i}", ts_us=1_700_000_000_000_000 + i, seq=i,
        actions=({"type": "compensate", "amount": 25},), cost_cents=2500, text=text, detail={"i": i},
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 120), chunk=st.integers(1, 30), data=st.data())
def test_a_log_reads_as_the_list_of_its_decisions(n, chunk, data):
    items = [_decision(i) for i in range(n)]
    with DecisionLog(items, chunk=chunk) as log:
        assert len(log) == n and log == items and list(log) == items
        assert log.spilled == (n // chunk) * chunk
        if n:
            i = data.draw(st.integers(-n, n - 1))
            assert log[i] == items[i]
            a, b = sorted(data.draw(st.lists(st.integers(-n - 2, n + 2), min_size=2, max_size=2)))
            assert log[a:b] == items[a:b] and log[::3] == items[::3]
        with pytest.raises(IndexError, match="out of range"):
            log[n]
        log.append(_decision(n))
        assert log[-1] == _decision(n) and len(log) == n + 1
        assert log != [*items, _decision(n + 1)]
    assert len(log) == 0 and log == []


def test_a_chunk_must_hold_a_decision():
    with pytest.raises(ValueError, match="at least 1"):
        DecisionLog(chunk=0)


def test_memory_does_not_grow_with_the_decisions():
    """Appending 20,000 decisions holds one chunk in memory; a list holds them all."""
    big = "the flight was cancelled and nobody told us " * 4

    def peak(make):
        gc.collect()
        tracemalloc.start()
        try:
            held = make()
            return tracemalloc.get_traced_memory()[1], held
        finally:
            tracemalloc.stop()

    as_list, items = peak(lambda: [_decision(i, big + str(i)) for i in range(20_000)])
    del items
    as_log, log = peak(lambda: DecisionLog((_decision(i, big + str(i)) for i in range(20_000)), chunk=500))
    assert len(log) == 20_000 and log.spilled == 20_000
    assert as_log < as_list / 5, (as_log, as_list)
    assert log[12_345].text == big + "12345"
    log.close()


def test_a_backtest_that_spills_decides_and_records_the_same(store, monkeypatch):
    load_events(
        store, [*HISTORY, *(ev(f"x{i}", 5 + i, outcome="delayed", location_id="OSL") for i in range(30))]
    )
    runner = PlaybookRunner(store, loads_playbooks(PB))
    whole = runner.backtest(record=True, run_id="bt-whole")
    monkeypatch.setattr(decision_log, "CHUNK", 4)
    spilled = runner.backtest(record=True, run_id="bt-spilled")
    assert len(whole.decisions) > 12 and spilled.decisions.spilled >= 12  # type: ignore[attr-defined]
    assert [d.to_dict() for d in spilled.decisions] == [d.to_dict() for d in whole.decisions]
    assert spilled.summary.equals(whole.summary)

    def recorded(run_id):
        with store.ops.read() as con:
            return con.execute(
                "SELECT * EXCLUDE (run_id, decided_at) FROM playbook_decisions WHERE run_id = ? ORDER BY decision_id",
                [run_id],
            ).fetchall()

    assert recorded("bt-spilled") == recorded("bt-whole") and len(recorded("bt-whole")) == len(
        whole.decisions
    )
