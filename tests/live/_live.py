"""Helpers of the live tests: publish events, read a partition back in stream order, the reference decisions."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from keymoments.act.engine import Engine
from keymoments.live.broker import BrokerAddress, ensure_stream, publish_events
from keymoments.live.worker import _tuple

PLAYBOOKS = """
budgets: [{name: recovery, scope: global, period: total, amount: 400, empowerment_limit: 30}]
playbooks:
  - name: recover
    trigger: {type: crisis}
    governance: {cooldown_hours: 1}
    actions:
      - {type: open_case, team: recovery, reason: "{outcome} at {touchpoint}", sla_hours: 24}
      - {type: compensate, amount: 10, budget: recovery}
      - {type: notify, template: "sorry about your {touchpoint}", url: "http://127.0.0.1:9/hook"}
  - name: big-recover
    trigger: {type: crisis, outcome: [lost]}
    actions:
      - {type: compensate, amount: 40, budget: recovery}
  - name: loyal
    trigger: {type: milestone, metric: events, at: [5, 10]}
    actions: [{type: notify, template: "thanks for {customer_id}"}]
"""

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def make_events(customers: int, per_customer: int, seed: int = 0) -> list[dict[str, Any]]:
    """Events of many customers, interleaved; each customer's in time order."""
    r = random.Random(seed)
    out = []
    for c in range(customers):
        t = T0 + timedelta(minutes=r.randint(0, 600))
        for k in range(per_customer):
            t += timedelta(minutes=r.randint(5, 240))
            outcome = r.choices(["completed", "delayed", "cancelled", "lost", "resolved"], [60, 15, 8, 4, 13])[0]
            out.append({"event_id": f"c{c}-e{k}", "customer_id": f"c{c}", "ts": t.isoformat(),
                        "touchpoint": r.choice(["booking", "check-in", "flight", "baggage"]), "outcome": outcome,
                        "rating": r.randint(1, 5), "rating_scale": "csat5", "employee_id": f"emp{r.randint(0, 9)}"})  # fmt: skip
    # interleave customers but keep each customer's order
    queues = {}
    for e in out:
        queues.setdefault(e["customer_id"], []).append(e)
    mixed = []
    keys = list(queues)
    while keys:
        k = r.choice(keys)
        mixed.append(queues[k].pop(0))
        if not queues[k]:
            keys.remove(k)
    return mixed


async def _publish(nats_url: str, address: BrokerAddress, events: list[dict], partitions: int, raw: bool) -> None:
    import nats

    from keymoments.live.broker import encode_event, partition_of

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, address)
    if raw:  # no Nats-Msg-Id: JetStream keeps duplicates, so the workers' own dedupe is what is tested
        for ev in events:
            await js.publish(address.partition_subject(partition_of(ev["customer_id"], partitions)), encode_event(ev)[1])
    else:
        await publish_events(js, address, events, partitions)
    await nc.close()


def publish(nats_url: str, address: BrokerAddress, events: list[dict], partitions: int, *, raw: bool = False) -> None:
    asyncio.run(_publish(nats_url, address, events, partitions, raw))


async def _read(nats_url: str, address: BrokerAddress, partition: int) -> list[tuple[int, dict]]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(address.partition_subject(partition), stream=address.stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL))  # fmt: skip
    out: list[tuple[int, dict]] = []
    while True:
        try:
            msgs = await sub.fetch(1000, timeout=1.0)
        except TimeoutError:
            break
        out += [(m.metadata.sequence.stream, orjson.loads(m.data)) for m in msgs]
        if msgs[-1].metadata.num_pending == 0:
            break
    await sub.unsubscribe()
    await nc.close()
    return out


def stream_order(nats_url: str, address: BrokerAddress, partition: int) -> list[tuple[int, dict]]:
    """The partition's messages in stream order: (sequence, event)."""
    return asyncio.run(_read(nats_url, address, partition))


def reference_decisions(pf: Any, nats_url: str, address: BrokerAddress, partitions: int) -> dict[str, Any]:
    """{decision_id: Decision} that the pure engine makes over each partition's events in stream order,
    skipping an event id seen before (as the workers do)."""
    out = {}
    for p in range(partitions):
        eng = Engine(pf, simulate_budgets=False)
        seen: set[str] = set()
        for seq, ev in stream_order(nats_url, address, p):
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            for d in eng.evaluate(_tuple(ev, seq)):
                out[d.decision_id] = d
    return out
