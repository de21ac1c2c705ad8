"""The engine layer's speed fixes keep answers equal: ROUND rewritten for Spark, session defaults sized to the
cores, every query timed and recorded, and the time-order check computed once per Spark store view."""

from __future__ import annotations

import duckdb
import pytest

from keymoments.analyze.journey import JourneyMap
from keymoments.analyze.sql import recorded_queries, to_spark_sql
from keymoments.store.spark import SparkStore, session_defaults

# halves both ways, the largest double below a half, a value whose decimal form is long, and a big one
VALUES = [-2.5, -1.5, -0.5, -0.49999999999999994, -0.0, 0.0, 0.49999999999999994, 0.5, 1.5, 2.5, 2.4999999999,
          3.5000000001, 0.1 + 0.2, 12345.5, -12345.5, 2.0**52 + 1, 1e15 + 0.5, 59123.49999999999]  # fmt: skip


def test_round_without_digits_is_floor_arithmetic_in_spark_sql():
    sql = to_spark_sql("SELECT CAST(round(ln(epoch_us(t) + 1) * 2000) AS INTEGER) AS b, round(y, 2) AS c FROM ev")
    assert "ROUND(y, 2)" in sql  # with digits: left to Spark
    assert sql.count("ROUND") == 1 and "FLOOR(ABS(LN(UNIX_MICROS(t) + 1) * 2000))" in sql  # inner rewrites kept


def test_round_gives_duckdbs_answer_on_spark(spark):
    con = duckdb.connect()
    expected = [r[0] for r in con.execute("SELECT round(x) FROM unnest(?::DOUBLE[]) AS u(x)", [VALUES]).fetchall()]
    assert expected[:4] == [-3.0, -2.0, -1.0, -0.0]  # half away from zero, as the rewrite must be
    spark.createDataFrame([(float(v),) for v in VALUES], "x DOUBLE").createOrReplaceTempView("km_round_values")
    sql = to_spark_sql("SELECT round(x) AS r FROM km_round_values")
    got = [r["r"] for r in spark.sql(sql).collect()]
    assert got == expected
    naive = [r[0] for r in spark.sql("SELECT CAST(floor(x + 0.5) AS DOUBLE) FROM km_round_values").collect()]
    assert naive != expected  # the values tell a naive rewrite apart (negative halves, 0.49999999999999994)


def test_session_defaults_size_shuffles_to_the_cores():
    assert session_defaults(2) == {"spark.sql.shuffle.partitions": "8", "spark.sql.adaptive.enabled": "true"}
    assert session_defaults(80)["spark.sql.shuffle.partitions"] == "320"
    assert session_defaults(0)["spark.sql.shuffle.partitions"] == "4"


def test_the_suites_own_settings_are_kept(spark):
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"  # configured, so not replaced


@pytest.fixture(scope="module")
def fresh(demo_stores, spark):
    """A Spark store over the demo's dataset with no cache and no earlier fits (its own view)."""
    _, sp = demo_stores
    return SparkStore(sp.path, events=sp.events_path, session=spark)


def _is_time_order(sql: str) -> bool:
    return "`timed`" in sql


def test_every_query_is_recorded_and_the_time_order_computed_once_per_view(fresh):
    with recorded_queries() as first:
        JourneyMap().fit(fresh)
    assert len(first) >= 6 and {q.engine for q in first} == {"spark"}
    assert all(q.seconds > 0 and q.rows >= 0 for q in first)
    assert sum(_is_time_order(q.sql) for q in first) == 1  # an Ibis query, recorded by the backend's hook
    assert any(q.sql.startswith("WITH ev AS") for q in first)  # a transpiled one
    with recorded_queries() as second:
        JourneyMap().fit(fresh)
    assert [q.sql for q in second] == [q.sql for q in first if not _is_time_order(q.sql)]
    fresh.refresh()  # a new view (after an append): asked again
    with recorded_queries() as third:
        JourneyMap().fit(fresh)
    assert sum(_is_time_order(q.sql) for q in third) == 1


def test_a_table_store_is_asked_every_time(fresh, spark):
    spark.read.parquet(str(fresh.events_path)).createOrReplaceTempView("km_events_table_test")
    table = SparkStore(fresh.path, table="km_events_table_test", session=spark)
    assert table.events_state() is None
    for _ in range(2):
        with recorded_queries() as qs:
            JourneyMap().fit(table)
        assert sum(_is_time_order(q.sql) for q in qs) == 1
