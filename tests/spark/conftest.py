"""One Spark session (local mode) for every Spark test, and the data the conformance suite compares engines on.

Starting a JVM costs tens of seconds on a busy machine, so the whole suite shares one session: two worker
threads, two shuffle partitions, no web UI, a modest driver heap. The data are small on purpose: the suite
checks that the engines agree, the benchmarks (bench/bench_spark.py) measure them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "pyspark", reason="the Spark engine needs the 'spark' extra, which scripts/setup installs"
)

DATA = Path(__file__).resolve().parents[1] / "data"

SPARK_TEST_CONF = {
    "spark.master": "local[2]",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
}


@pytest.fixture(scope="session")
def spark():
    from keymoments.store.spark import spark_session

    session = spark_session(SPARK_TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _run_cli(*args: str) -> int:
    from keymoments.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="session")
def cli():
    """``cli(*args)``: run ``keymoments *args`` in this process (with its Spark session); the exit code."""
    return _run_cli


@pytest.fixture(scope="session")
def demo():
    from keymoments.examples.airline import generate_airline

    return generate_airline(300, seed=3)


def _duckdb_store(path: Path, demo=None, source=None):
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame, ingest_source

    s = Store(path)
    if demo is not None:
        ingest_events_frame(s, demo.events)
        ingest_outcomes_frame(s, demo.outcomes)
        ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]])
    if source is not None:
        ingest_source(s, source)
    return s


@pytest.fixture(scope="session")
def make_duckdb_store():
    """Build a DuckDB store at a path from a demo and/or a source."""
    return _duckdb_store


@pytest.fixture(scope="session")
def demo_stores(demo, spark, tmp_path_factory):
    """The demo on both engines: a DuckDB store, and a SparkStore over its events written as the Parquet
    dataset (outcomes and attributes in the same DuckDB file)."""
    from keymoments.store.spark import SparkStore, write_events_dataset

    folder = tmp_path_factory.mktemp("demo")
    duck = _duckdb_store(folder / "km.duckdb", demo=demo)
    write_events_dataset(duck, folder / "km.events")
    sp = SparkStore(folder / "km.duckdb", session=spark, cache=True)
    yield duck, sp
    duck.close()


@pytest.fixture(scope="session")
def xes_stores(spark, tmp_path_factory):
    """A real process log (the Helpdesk ticket log, XES: 21,348 events, 4,580 cases) on both engines."""
    from keymoments.ingest.files import read_source
    from keymoments.store.spark import SparkStore, write_events_dataset

    folder = tmp_path_factory.mktemp("xes")
    duck = _duckdb_store(folder / "km.duckdb", source=read_source(DATA / "Helpdesk.xes.gz"))
    write_events_dataset(duck, folder / "km.events")
    sp = SparkStore(folder / "km.duckdb", session=spark, cache=True)
    yield duck, sp
    duck.close()
