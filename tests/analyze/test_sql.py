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
