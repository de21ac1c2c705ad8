"""Results reach the driver from Spark one partition at a time (analyze.sql.spark_to_pandas), equal to what
Spark's own ``toPandas`` gives, for the transpiled SQL and for Ibis expressions alike."""

from __future__ import annotations

import pandas as pd
import pytest

from keymoments.analyze.moments import MomentsOfTruth
from keymoments.analyze.sql import EventsSQL, spark_to_pandas

ROWS = """
SELECT CAST(id AS STRING) AS k,
       CASE WHEN id % 7 = 0 THEN NULL ELSE id * 0.25 END AS v,
       CASE WHEN id % 5 = 0 THEN CAST('NaN' AS DOUBLE) ELSE 1.0 / (id + 1) END AS f,
       id % 3 AS c,
       CAST(id % 2 = 0 AS BOOLEAN) AS b,
       TIMESTAMP '2024-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, 0, id) AS ts
FROM range(0, 25000, 1, 7)
"""


@pytest.fixture
def no_whole_collect(monkeypatch, spark):
    """Spark's whole-result collect (every partition gathered in the JVM) fails when called."""
    DataFrame = type(spark.sql("SELECT 1"))  # noqa: N806 - the session's DataFrame class (classic, not Connect)

    def refuse(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise AssertionError("collected the whole result in the driver's JVM")

    monkeypatch.setattr(DataFrame, "_collect_as_arrow", refuse)


def test_streamed_collection_equals_to_pandas(spark):
    sdf = spark.sql(ROWS)
    assert sdf.rdd.getNumPartitions() == 7
    expected = sdf.toPandas()
    got = spark_to_pandas(spark.sql(ROWS))
    pd.testing.assert_frame_equal(got, expected)
    empty = spark.sql(ROWS + " LIMIT 0")
    pd.testing.assert_frame_equal(spark_to_pandas(empty), empty.toPandas())


def test_each_partition_is_its_own_job(spark):
    sc = spark.sparkContext
    sc.setJobGroup("km-collect-test", "streamed collection")
    try:
        spark_to_pandas(spark.sql(ROWS))
    finally:
        sc.setJobGroup("", "")
    jobs = sc.statusTracker().getJobIdsForGroup("km-collect-test")
    assert len(jobs) >= 7  # not one job over all partitions


@pytest.mark.filterwarnings("ignore::keymoments.exceptions.SmallSampleWarning")
def test_analyses_never_collect_the_whole_result(demo_stores, no_whole_collect):
    duck, sp = demo_stores
    q = EventsSQL(sp.events())
    got = q.df("SELECT customer_id, count(*) AS n FROM ev GROUP BY customer_id ORDER BY customer_id")
    want = EventsSQL(duck.events()).df(
        "SELECT customer_id, count(*) AS n FROM ev GROUP BY customer_id ORDER BY customer_id"
    )
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert got["n"].tolist() == want["n"].tolist()
    fitted = MomentsOfTruth("retained", n_boot=50, seed=1).fit(sp)  # its customer frame: an Ibis expression
    assert fitted.to_dict()["n"] == MomentsOfTruth("retained", n_boot=50, seed=1).fit(duck).to_dict()["n"]


def test_a_spark_without_arrow_partitions_falls_back_to_its_own_collect(spark):
    from py4j.protocol import Py4JError

    class WithoutArrowRdd:  # a Dataset whose JVM class lacks toArrowBatchRdd
        def __init__(self, jdf):  # noqa: ANN001
            self._jdf = jdf

        def toArrowBatchRdd(self):  # noqa: N802 - the JVM method's name
            raise Py4JError("no such method")

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self._jdf, name)

    sdf = spark.sql(ROWS)
    sdf._jdf = WithoutArrowRdd(sdf._jdf)
    pd.testing.assert_frame_equal(spark_to_pandas(sdf), spark.sql(ROWS).toPandas())
