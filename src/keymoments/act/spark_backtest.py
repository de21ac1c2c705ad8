"""Playbook back-tests on Apache Spark: the engine per customer in the executors, what customers share on the driver.

The engine's step (:meth:`~keymoments.act.engine.Engine.evaluate`) reads and writes one customer's state,
except for three things customers share, which the embedded back-test keeps in one process:

* **budget pools** (a pool per scope key and period, drawn by everyone) and the empowerment limit's per-customer
  sums, which depend on which spends the pools let through;
* **governance across customers**: a cooldown or cap ``per: employee`` / ``per: location`` (one employee's
  recognition a month, whichever customer praised them), and ``max_per_day`` (firings of a playbook across
  everyone per day);
* the **clock**: a proactive trigger (absence, quiet journey end) falls due when any later event arrives.

So the back-test is split in two. ``groupBy(bucket).applyInPandas``, customers hashed into buckets of about
:data:`BUCKET_EVENTS` events, runs the engine over each customer's events sorted by ``(ts, seq)`` (the embedded
back-test's order, :func:`keymoments.store.act_tables.iter_events`), one customer at a time from a fresh state,
with budgets only tagged and the shared governance left out, then advances that customer's clock to the latest
event of all (as the embedded back-test's final ``advance`` does). Each candidate decision leaves the executor
with its place in the embedded back-test's global order: an event's decisions sort by ``(ts, 1, seq, n)``, a
timer's by ``(deadline, 0, ts and seq of the event that armed it, its token)``, which is exactly the order in
which one engine over all events would have produced them (a timer fires just before the first event at or after
its deadline, due timers in the order they were armed). Only decisions reach the driver, in that order; there
one engine replays what customers share: it applies the shared cooldowns, caps and daily caps (a dropped firing
takes the updates of the case it would have opened with it) and draws the compensations from the pools in
event time. The decisions are the embedded back-test's, field for field and in the same order.

What cannot be split is refused before any work: a playbook whose firing is shared across customers *and*
whose own conditions count its firings (``history.fires``), and journey state (journey conditions, journey-end
triggers, ``per: journey``, ``same_journey``) over journeys that several customers share.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from keymoments.act.decision_log import DecisionLog
from keymoments.act.engine import CUST, EMP, JOURNEY, LOC, Decision, Engine, period_id
from keymoments.act.models import (
    AbsenceTrigger,
    HistoryCondition,
    JourneyCondition,
    JourneyEndTrigger,
    PlaybookFile,
)
from keymoments.act.runner import file_hash
from keymoments.exceptions import InvalidParameterError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from keymoments.store.spark import SparkStore

__all__ = ["check_partitionable", "spark_backtest"]

#: the columns that are never null (pandas hands every other null over as NaN)
_INTS = ("seq", "ts_us")
#: about how many events one bucket of customers holds (one pandas frame in an executor)
BUCKET_EVENTS = 200_000
#: events per partition of the sorted decisions the driver reads back (see spark_backtest)
SORTED_EVENTS = 100_000
_KEYS = ("k_ts", "k_phase", "k_a", "k_b", "k_c")
_SCHEMA = "k_ts long, k_phase int, k_a long, k_b long, k_c long, decision binary"


def _shared(engine: Engine) -> frozenset[int]:
    """The compiled playbooks whose governance is shared across customers (applied on the driver)."""
    return frozenset(
        p.idx for p in engine.playbooks if p.max_per_day or (p.per in (EMP, LOC) and (p.cooldown_us or p.cap))
    )


def _journey_feature(file: PlaybookFile) -> str | None:
    """The first use of journey state in the file (it needs each journey to belong to one customer), or None."""
    for p in file.playbooks:
        if not p.enabled:
            continue
        t = p.trigger
        if isinstance(t, JourneyEndTrigger):
            return f"playbook {p.name!r}: trigger journey_end"
        if isinstance(t, AbsenceTrigger) and t.same_journey:
            return f"playbook {p.name!r}: trigger absence with same_journey"
        if p.governance.per == "journey":
            return f"playbook {p.name!r}: governance per journey"
        if any(isinstance(c, JourneyCondition) for c in p.conditions):
            return f"playbook {p.name!r}: a journey condition"
    return None


def check_partitionable(file: PlaybookFile) -> None:
    """Refuse a file whose decisions depend on other customers in a way a per-customer run cannot reconcile."""
    for p in file.playbooks:
        g = p.governance
        shared = [f"max_per_day: {g.max_per_day}"] if g.max_per_day else []
        if g.per in ("employee", "location") and (g.cooldown_hours or g.max_per_customer):
            shared.append(f"per: {g.per} with a cooldown or cap")
        counts = any(isinstance(c, HistoryCondition) and c.metric == "fires" for c in p.conditions)
        if p.enabled and shared and counts:
            raise InvalidParameterError(
                f"Playbook {p.name!r} cannot be back-tested on Spark: its governance ({', '.join(shared)}) counts "
                "firings across customers, and its own condition on history.fires counts them per customer, so "
                "whether it fires for one customer depends on every other customer's events in time order. "
                "Back-test it on DuckDB (--engine duckdb), or drop one of the two."
            )


def _event_frame(store: SparkStore) -> DataFrame:
    """The events as the engine reads them (act_tables._EVENT_SELECT), on Spark."""
    from pyspark.sql import functions as F

    df = store.events_frame()
    have = set(df.columns)

    def col(name: str, kind: str = "string") -> Any:
        return (F.col(name) if name in have else F.lit(None)).cast(kind)

    return df.select(
        F.coalesce(col("seq", "long"), F.lit(0)).alias("seq"), F.unix_micros(F.col("ts")).alias("ts_us"),
        col("customer_id").alias("customer_id"),
        F.coalesce(col("journey_id"), col("customer_id")).alias("journey_id"), col("touchpoint").alias("touchpoint"),
        col("stage").alias("stage"), col("channel").alias("channel"), col("outcome").alias("outcome"),
        col("rating", "double").alias("rating"),
        F.coalesce(col("valence", "double"), col("rating_valence", "double")).alias("valence"),
        col("value", "double").alias("value"), col("text").alias("text"), col("employee_id").alias("employee_id"),
        col("location_id").alias("location_id"), col("event_id").alias("event_id"), col("attrs").alias("attrs"),
    )  # fmt: skip


# -- the executors' side ------------------------------------------------------------------------------------
_ENGINES: dict[str, Engine] = {}


def _engine(file: PlaybookFile, key: str, seed: int, shared: frozenset[int]) -> Engine:
    """The worker's compiled engine for the file whose hash is ``key`` (compiled once per Python worker), its
    state emptied."""
    eng = _ENGINES.get(key)
    if eng is None:
        eng = Engine(file, seed=seed, simulate_budgets=False)
        eng.deferred = shared
        eng.fired_tokens = []
        _ENGINES.clear()
        _ENGINES[key] = eng
    for state in (eng.customers, eng.journeys, eng.fires, eng.gov, eng.spent, eng.limit_used, eng.cases,
                  eng.timers, eng.waiting, eng.holdout_cache, eng.daily, eng._draw_keys, eng.fired_tokens):  # fmt: skip
        state.clear()  # in place: compiled conditions hold the engine's own dicts
    eng.clock = 0
    eng._n = 0
    return eng


def _tuples(pdf: pd.DataFrame) -> list[tuple]:
    """A bucket's events as engine tuples, each customer's together in (ts, seq) order; nulls as None (pandas
    hands them over as NaN)."""
    pdf = pdf.sort_values(["customer_id", "ts_us", "seq"], kind="stable")
    cols = []
    for name in pdf.columns:
        values = pdf[name].tolist()
        if name not in _INTS:
            values = [None if v != v else v for v in values]
        cols.append(values)
    return list(zip(*cols, strict=True))


def decide_bucket(file: PlaybookFile, key: str, seed: int, shared: frozenset[int], clock: int,
                  pdf: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """The candidate decisions of the customers in one bucket, each customer on its own (a fresh engine
    state), each decision with its key in the global order (run in an executor)."""
    import pandas as pd

    rows: list[tuple] = []
    events = _tuples(pdf)
    start = 0
    for i in range(1, len(events) + 1):
        if i == len(events) or events[i][CUST] != events[start][CUST]:
            _decide_customer(_engine(file, key, seed, shared), events[start:i], clock, rows)
            start = i
    return pd.DataFrame(rows, columns=[*_KEYS, "decision"]).astype(dict.fromkeys(_KEYS, "int64"))


def _decide_customer(eng: Engine, events: list[tuple], clock: int, rows: list[tuple]) -> None:
    """One customer's events through ``eng``, then its clock advanced to ``clock``: rows of (key, decision)."""
    tokens = eng.fired_tokens
    armed: dict[int, tuple[int, int]] = {}

    def keep(out: list[Decision], k0: int, ts: int, seq: int) -> None:
        timers = len(tokens) - k0
        for j, d in enumerate(out):
            if j < timers:  # a timer's decision: after the events before its deadline, in the order armed
                tok = tokens[k0 + j]
                rows.append((d.ts_us, 0, *armed[tok], tok, pickle.dumps(d)))
            else:
                rows.append((ts, 1, seq, j - timers, 0, pickle.dumps(d)))

    for e in events:
        n0, k0 = eng._n, len(tokens)
        out = eng.evaluate(e)
        if out:
            keep(out, k0, e[1], e[0])
        for tok in range(n0 + 1, eng._n + 1):
            armed[tok] = (e[1], e[0])
    k0 = len(tokens)
    keep(eng.advance(clock), k0, clock, 0)


# -- the driver's side --------------------------------------------------------------------------------------
def _per_key(p: Any, d: Decision) -> str:
    value = {CUST: d.customer_id, EMP: d.employee_id, LOC: d.location_id, JOURNEY: d.journey_id}[p.per]
    return value or d.customer_id


def reconcile(engine: Engine, shared: frozenset[int], candidates: Iterator[Decision]) -> Iterator[Decision]:
    """Replay candidate decisions, in global time order, against what customers share: the shared cooldowns,
    caps and daily caps, then the budget pools (``engine`` simulates them in event time). Yields the kept
    decisions as it goes: the driver holds one partition of candidates at a time."""
    by_name = {p.name: p for p in engine.playbooks}
    dropped: set[str] = set()
    for d in candidates:
        if d.kind != "fire":
            if d.case_id not in dropped:
                yield d
            continue
        p = by_name[d.playbook]
        if p.idx in shared:
            key, ts = _per_key(p, d), d.ts_us
            pid = period_id(p.cap_period, ts) if p.cap else 0
            if not (engine._admit(p, key, ts, pid) and engine._take(p, key, ts, pid)):
                if d.case_id:
                    dropped.add(d.case_id)
                continue
        if d.arm == "treatment" and p.costs:
            d.cost_cents, d.needs_approval, d.budget_blocked = 0, False, False
            engine._charge(p, d)
        yield d


def spark_backtest(store: SparkStore, file: PlaybookFile, seed: int) -> tuple[int, DecisionLog]:
    """Back-test ``file`` over the events of a :class:`~keymoments.store.spark.SparkStore`; returns the number
    of events and the decisions, identical to the embedded back-test's (in a :class:`DecisionLog`: the driver's
    memory does not grow with them)."""
    from pyspark.sql import functions as F

    check_partitionable(file)
    engine = Engine(file, seed=seed)  # the driver's: budgets simulated in event time, shared governance
    shared = _shared(engine)
    ev = _event_frame(store)
    feature = _journey_feature(file)
    if feature is None:
        n, clock = ev.agg(F.count(F.lit(1)), F.max("ts_us")).collect()[0]
    else:  # the same pass, per journey, finds a journey that two customers share
        per = ev.groupBy("journey_id").agg(
            F.count(F.lit(1)).alias("n"), F.max("ts_us").alias("last"),
            F.min("customer_id").alias("c0"), F.max("customer_id").alias("c1"),
        )  # fmt: skip
        both = F.when(F.col("c0") != F.col("c1"), F.struct("journey_id", "c0", "c1"))
        n, clock, shared_by = per.agg(F.sum("n"), F.max("last"), F.min(both)).collect()[0]
        if shared_by is not None:
            raise InvalidParameterError(
                f"Journey {shared_by['journey_id']!r} has events of several customers ({shared_by['c0']!r}, "
                f"{shared_by['c1']!r}), and {feature} reads journey state, which the Spark back-test keeps per "
                "customer. Back-test this file on DuckDB (--engine duckdb), or give each customer's journeys "
                "their own ids."
            )
    if not n:
        return 0, DecisionLog()
    seed_, clock, key = int(seed), int(clock), f"{file_hash(file)}:{seed}"

    def decide(pdf: pd.DataFrame) -> pd.DataFrame:
        return decide_bucket(file, key, seed_, shared, clock, pdf)

    # customers in buckets (a pandas call per customer costs more than most customers' events), each bucket
    # small enough for one executor's memory
    buckets = max(2 * store.spark.sparkContext.defaultParallelism, -(-int(n) // BUCKET_EVENTS))
    bucket = F.pmod(F.xxhash64("customer_id"), F.lit(buckets)).alias("bucket")
    decided = ev.groupBy(bucket).applyInPandas(decide, schema=_SCHEMA)
    # sorted by range into partitions of about SORTED_EVENTS events' decisions: the driver fetches one partition
    # (and prefetches the next) at a time, so the partitions must stay small whatever the events (orderBy's
    # spark.sql.shuffle.partitions made 10M events' 1.9M decisions a few 200 MB task results: out of heap)
    parts = max(int(store.spark.conf.get("spark.sql.shuffle.partitions", "8")), -(-int(n) // SORTED_EVENTS))
    ordered = decided.repartitionByRange(parts, *_KEYS).sortWithinPartitions(*_KEYS)
    rows = ordered.toLocalIterator(prefetchPartitions=True)
    return int(n), DecisionLog(reconcile(engine, shared, (pickle.loads(r["decision"]) for r in rows)))
