"""Chaos on the real NATS JetStream and PostgreSQL: workers killed with SIGKILL while events pour in.

Scaled down from the issue's 50,000 events for 5,000 customers to 12,000 events for 1,500 customers (8 each)
so the test stays near a minute on a 2-core machine; the mechanics are the same (``bench/bench_chaos.py`` runs
the issue's size). Two ``keymoments worker`` processes share 4 partitions (one works, the other stands by for
whatever is free); once one works, five times at random moments the one that owns partitions is SIGKILLed and
restarted. Afterwards
(:func:`keymoments.testing.live.chaos` checks it):

* every event was processed once, and each (playbook, trigger event) has exactly one decision, the same
  decisions the pure engine makes over each partition's events in stream order (so the state rebuilt after
  each kill was the state before it, and decisions followed each customer's event order);
* every case that should exist exists once; no budget is overspent and none lost a spend;
* every outbox action is delivered at least once (two deliverers at once), never two contents under one key;
* both workers stop cleanly on SIGTERM (exit 0, marked stopped).
"""

from __future__ import annotations

from keymoments.live.broker import BrokerAddress
from keymoments.testing.live import chaos


def test_sigkill_chaos_loses_nothing_and_does_nothing_twice(pg_url, pg_schema, pg_ops, nats_url, stream_name, tmp_path):
    address = BrokerAddress.parse(f"{nats_url}/{stream_name.lower()}", stream_name)
    out = chaos(pg_ops, pg_url, pg_schema, nats_url, address, tmp_path, customers=1_500, per_customer=8, kills=5,
                pause=0.4, drain_s=120)  # fmt: skip
    assert out["checks_passed"] and out["events"] == 12_000 and len(out["killed_at_s"]) == 5
    assert out["kills_with_events_left"] >= 1  # the kills hit a worker at work, not one starting or idle
    assert out["decisions"] > 0 and out["cases"] > 0 and out["spends"] > 0 and out["outbox_messages"] > 0
    assert out["deliveries"] >= out["stream_messages"] == 12_000
