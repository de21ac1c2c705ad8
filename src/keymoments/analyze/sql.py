"""The one place that decides how an analysis's query reaches an engine.

Analyses write their queries once: as Ibis expressions (which run on whatever backend holds the events), or,
where one pass needs aggregates Ibis cannot express (``bit_or`` masks, ``list_position`` codes) or compiling an
expression per query costs too much, as DuckDB SQL over the name ``ev``::

    q = EventsSQL(filter_events(store, channel="app"))
    q.df("SELECT touchpoint, count(*) AS n FROM ev GROUP BY ALL")

:class:`EventsSQL` compiles the (filtered) Ibis events once and inlines them as the common table expression
``ev`` of each query, so the engine pushes projections and filters into the scan exactly as it would for the
Ibis expression. On DuckDB the SQL runs as written. On Spark (the Ibis PySpark backend) it is transpiled with
SQLGlot from DuckDB SQL to Spark SQL, with the few DuckDB functions SQLGlot leaves alone rewritten to their
Spark equivalents (:data:`_SPARK_FUNCTIONS`), and runs on the cluster: only the (small) result reaches the
driver. No analysis branches on the engine; events never leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import ibis
import sqlglot
import sqlglot.expressions as exp

from keymoments.exceptions import InvalidParameterError
from keymoments.quoting import quote_literal

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = ["ENGINES", "EventsSQL", "engine_of", "sql_list", "sql_str", "to_spark_sql"]

#: the engines analyses run on, by Ibis backend name
ENGINES = {"duckdb": "duckdb", "pyspark": "spark"}

_EV_SOURCE = "__km_ev_source__"  # placeholder table the compiled events replace in a transpiled query


def sql_str(value: str) -> str:
    """A SQL string literal (:func:`keymoments.quoting.quote_literal`)."""
    return quote_literal(str(value))


def sql_list(values: Iterable[str]) -> str:
    """A DuckDB list literal of strings: ``['a', 'b']``."""
    return "[" + ", ".join(sql_str(v) for v in values) + "]"


def engine_of(t: ir.Table) -> str:
    """The engine that holds ``t``: ``duckdb`` or ``spark``; any other backend is refused with what to do."""
    name = ibis.get_backend(t).name
    if name not in ENGINES:
        raise InvalidParameterError(
            f"Analyses run on DuckDB or Spark; these events are on Ibis's {name!r} backend. Read them into a "
            "keymoments store (`keymoments ingest`) or a Spark table (`--engine spark`)."
        )
    return ENGINES[name]


def _anon(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _list_position(e: exp.Expression) -> exp.Expression:
    # DuckDB: 1-based, NULL when absent; Spark's array_position: 1-based, 0 when absent
    return exp.Nullif(this=_anon("ARRAY_POSITION", *e.expressions), expression=exp.Literal.number(0))


#: DuckDB functions SQLGlot passes through unchanged, and their Spark form. ``hash`` only fingerprints
#: (equal inputs, equal outputs), so Spark's 64-bit xxhash64 stands in for DuckDB's own 64-bit hash.
_SPARK_FUNCTIONS: dict[str, Callable[[exp.Expression], exp.Expression]] = {
    "EPOCH_US": lambda e: _anon("UNIX_MICROS", *e.expressions),
    "LIST_POSITION": _list_position,
    "HASH": lambda e: _anon("XXHASH64", *e.expressions),
}


def _to_spark(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in _SPARK_FUNCTIONS:
        return _SPARK_FUNCTIONS[str(node.this).upper()](node)
    return node


def to_spark_sql(duckdb_sql: str, tables: dict[str, str] | None = None) -> str:
    """``duckdb_sql`` as Spark SQL; ``tables`` replaces each named table with a Spark SQL query (as a
    subquery under the table's name)."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb").transform(_to_spark)
    for name, query in (tables or {}).items():
        sub = sqlglot.parse_one(query, read="spark")
        for table in list(tree.find_all(exp.Table)):
            if table.name == name and not table.db:
                table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(name))))
    return tree.sql(dialect="spark")


class EventsSQL:
    """Run DuckDB SQL over an Ibis table expression, which the SQL calls ``ev``, on the engine holding it.

    ``columns`` extra ``name: SQL expression`` pairs are added to ``ev`` (derived once, used by many queries).
    """

    def __init__(self, t: ir.Table, columns: dict[str, str] | None = None) -> None:
        self.engine = engine_of(t)
        backend = ibis.get_backend(t)
        # registers the expression's in-memory tables (a pandas input) with the engine; ibis has no public
        # call that does this without running the expression
        backend._run_pre_execute_hooks(t)
        self.columns = list(t.columns)
        extra = "".join(f", {expr} AS {name}" for name, expr in (columns or {}).items())
        if self.engine == "duckdb":
            self._ev = f"ev AS (SELECT *{extra} FROM ({backend.compile(t)}))"
            self._con = backend.con
        else:
            self._ev = f"ev AS (SELECT *{extra} FROM {_EV_SOURCE})"
            self._source = str(backend.compile(t))
            self._session = backend._session

    def _sql(self, sql: str) -> str:
        head, _, rest = sql.lstrip().partition(" ")
        return f"WITH {self._ev},\n{rest}" if head.upper() == "WITH" else f"WITH {self._ev}\n{sql}"

    def spark_sql(self, sql: str) -> str:
        """The Spark SQL that :meth:`df` runs for ``sql`` on Spark."""
        return to_spark_sql(self._sql(sql), {_EV_SOURCE: self._source})

    def df(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` (which reads ``ev``, and may start with its own ``WITH``) as a DataFrame."""
        if self.engine == "duckdb":
            return self._con.execute(self._sql(sql)).df()
        return self._session.sql(self.spark_sql(sql)).toPandas()
