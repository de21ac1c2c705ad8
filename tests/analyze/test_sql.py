"""Hand-written SQL over an analysis's Ibis events: pandas and store inputs, derived columns, quoting."""

from __future__ import annotations

import ibis
import pandas as pd

from keymoments.analyze.sql import EventsSQL, sql_list, sql_str


def test_sql_over_a_pandas_frame_with_derived_columns():
    df = pd.DataFrame({"touchpoint": ["a", "b", "a"], "valence": [0.5, None, -0.5]})
    q = EventsSQL(ibis.memtable(df), columns={"_rated": "valence IS NOT NULL"})
    out = q.df("SELECT touchpoint, count(*) FILTER (WHERE _rated) AS n FROM ev GROUP BY ALL ORDER BY touchpoint")
    assert out.to_dict("list") == {"touchpoint": ["a", "b"], "n": [2, 0]}
    assert q.columns == ["touchpoint", "valence"]


def test_a_query_may_bring_its_own_with():
    q = EventsSQL(ibis.memtable(pd.DataFrame({"x": [1, 2, 3]})))
    out = q.df("WITH big AS (SELECT x FROM ev WHERE x > 1) SELECT sum(x) AS s FROM big")
    assert int(out["s"].iloc[0]) == 5


def test_filters_of_the_expression_apply():
    t = ibis.memtable(pd.DataFrame({"x": [1, 2, 3]}))
    assert int(EventsSQL(t.filter(t.x >= 2)).df("SELECT count(*) AS n FROM ev")["n"].iloc[0]) == 2


def test_quoting():
    assert sql_str("it's") == "'it''s'"
    assert sql_list(["a", "o'neil"]) == "['a', 'o''neil']"
    q = EventsSQL(ibis.memtable(pd.DataFrame({"name": ["o'neil", "x"]})))
    names = sql_list(["x", "o'neil"])
    assert q.df(f"SELECT list_position({names}, name) AS i FROM ev")["i"].tolist() == [2, 1]


def test_duckdb_sql_becomes_spark_sql_with_the_functions_spark_names_otherwise():
    from keymoments.analyze.sql import to_spark_sql

    sql = to_spark_sql(
        "SELECT epoch_us(ts) AS us, list_position(['a', 'b'], touchpoint) AS p, hash(step) AS h, "
        "bit_or(1::BIGINT << step) AS m, count(*) FILTER (WHERE x) AS n FROM ev GROUP BY ALL"
    )
    assert "UNIX_MICROS(ts)" in sql
    assert "NULLIF(ARRAY_POSITION(ARRAY('a', 'b'), touchpoint), 0)" in sql  # DuckDB gives NULL when absent
    assert "XXHASH64(step)" in sql and "BIT_OR(SHIFTLEFT(CAST(1 AS BIGINT), step))" in sql
    assert "EPOCH_US" not in sql.upper() and "LIST_POSITION" not in sql.upper()


def test_a_literal_means_the_same_in_spark_sql():
    from keymoments.analyze.sql import to_spark_sql

    # Spark reads a backslash in a string literal as an escape; the transpiled literal must keep it
    literal = sql_str("it's a" + chr(92) + "b")
    sql = to_spark_sql(f"SELECT * FROM ev WHERE touchpoint IN ({literal})")
    assert "'it\\'s a\\\\b'" in sql


def test_the_events_source_is_inlined_under_its_name():
    from keymoments.analyze.sql import to_spark_sql

    sql = to_spark_sql("WITH ev AS (SELECT * FROM src) SELECT count(*) FROM ev", {"src": "SELECT `a` FROM `t` AS `t0`"})
    assert "FROM (SELECT `a` FROM `t` AS `t0`) AS src" in sql


def test_other_ibis_backends_are_refused_with_what_to_do():
    import pytest

    from keymoments.analyze.sql import engine_of
    from keymoments.exceptions import InvalidParameterError

    t = ibis.sqlite.connect().create_table("t", pd.DataFrame({"x": [1]}))
    with pytest.raises(InvalidParameterError, match="DuckDB or Spark"):  # never pulled into memory silently
        EventsSQL(t)
    with pytest.raises(InvalidParameterError, match="keymoments ingest"):
        engine_of(t)
