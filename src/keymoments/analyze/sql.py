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

A result reaches the driver from Spark through :func:`spark_to_pandas`: one partition at a time, in Arrow
batches, so the driver's JVM holds a partition of a customer-level frame, never the whole frame (Spark's own
``toPandas`` gathers every partition's result in the JVM as the tasks finish).

Every query sent from here (and, on Spark, every Ibis expression the store's backend runs: see
:func:`timed_backend`) is logged to the ``keymoments.sql`` logger at DEBUG with its engine, wall time and rows,
and collected by :func:`recorded_queries` (what ``bench/profile_spark.py`` reads to say where a fit's time goes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import ibis
import sqlglot
import sqlglot.expressions as exp

from keymoments.exceptions import InvalidParameterError
from keymoments.quoting import quote_literal

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = [
    "ENGINES", "EventsSQL", "Query", "engine_of", "recorded_queries", "spark_to_pandas", "sql_list", "sql_str",
    "timed", "timed_backend", "to_spark_sql",
]  # fmt: skip

#: the engines analyses run on, by Ibis backend name
ENGINES = {"duckdb": "duckdb", "pyspark": "spark"}

_EV_SOURCE = "__km_ev_source__"  # placeholder table the compiled events replace in a transpiled query

log = logging.getLogger("keymoments.sql")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Query:
    """One query an engine ran: its engine, SQL, wall time (seconds, result fetched) and result rows."""

    engine: str
    sql: str
    seconds: float
    rows: int


_recorders: list[list[Query]] = []


@contextmanager
def recorded_queries() -> Iterator[list[Query]]:
    """The queries sent to an engine while the block runs, in order, with their wall times."""
    out: list[Query] = []
    _recorders.append(out)
    try:
        yield out
    finally:
        _recorders.remove(out)


def timed(engine: str, sql: str | Callable[[], str], run: Callable[[], _R]) -> _R:
    """``run()`` (which sends ``sql`` to ``engine`` and fetches the result), logged and recorded with its wall
    time. ``sql`` may be a callable, called only when someone listens."""
    t0 = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - t0
    if _recorders or log.isEnabledFor(logging.DEBUG):
        text = sql() if callable(sql) else sql
        rows = len(result) if hasattr(result, "__len__") else -1
        query = Query(engine, text, seconds, rows)
        log.debug("%s: %.3f s, %d rows: %s", engine, seconds, rows, " ".join(text.split())[:300])
        for r in _recorders:
            r.append(query)
    return result


def _arrow_partitions(sdf: Any) -> Callable[..., list[Any]] | None:
    """A stand-in for ``sdf._collect_as_arrow`` that fetches the result one partition at a time (the next one
    computed while this one is read), or None where this Spark cannot (Spark Connect has no JVM to ask)."""
    try:
        import pyarrow as pa
        from pyspark.serializers import NoOpSerializer
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.util import _local_iterator_from_socket

        jvm, jconf = sdf.sparkSession._jvm, sdf.sparkSession._jconf
        large = bool(jconf.arrowUseLargeVarTypes())
    except (ImportError, AttributeError):
        return None

    def collect(split_batches: bool = False, empty_list_if_zero_records: bool = True) -> list[Any]:
        from py4j.protocol import Py4JError

        schema = to_arrow_schema(sdf.schema, timestamp_utc=True, prefers_large_types=large)
        try:  # the plan's shuffle stages run here
            rdd = sdf._jdf.toArrowBatchRdd()
        except Py4JError:  # a Spark whose Dataset lacks it: Spark's own collect
            return type(sdf)._collect_as_arrow(sdf, split_batches, empty_list_if_zero_records)
        # each partition of the last stage is one job whose result (Arrow IPC messages) is served to this
        # process, as RDD.toLocalIterator serves rows
        sock = jvm.PythonRDD.toLocalIteratorAndServe(rdd, True)
        batches = []
        for message in _local_iterator_from_socket(sock, NoOpSerializer()):
            batch = pa.ipc.read_record_batch(pa.py_buffer(message), schema)
            if split_batches:  # one allocation per column, so toPandas's self_destruct frees as it converts
                batch = pa.RecordBatch.from_arrays([pa.concat_arrays([a]) for a in batch], schema=schema)
            batches.append(batch)
        if batches or empty_list_if_zero_records:
            return batches
        return [pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)]

    return collect


def spark_to_pandas(sdf: Any) -> pd.DataFrame:
    """A Spark DataFrame's rows as pandas, equal to ``sdf.toPandas()``, fetched one partition at a time.

    Spark's ``toPandas`` runs one job over all partitions and gathers their Arrow results in the driver's JVM as
    the tasks finish; for a customer-level frame of millions of rows that is hundreds of MB of heap at once (in
    local mode, beside the executor's own work). Here the last stage runs partition by partition (the next one
    computed while this one is read), so the JVM holds at most two partitions' results; pandas conversion is
    ``toPandas``'s own, with Arrow's self-destruct (columns freed as they convert)."""
    collect = _arrow_partitions(sdf)
    if (
        collect is not None
        and sdf.sparkSession.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    ):
        sdf._collect_as_arrow = collect  # toPandas's conversion, fed by the streamed batches
    return sdf.toPandas()


def timed_backend(backend: Any) -> Any:
    """``backend`` (an Ibis backend) with its ``execute`` and ``to_pyarrow`` logged and recorded by
    :func:`timed` (the instance's methods are wrapped; the class is untouched). On Spark, ``execute`` fetches
    its result with :func:`spark_to_pandas`."""
    engine = ENGINES.get(backend.name, backend.name)
    if engine == "spark":
        backend.execute = _spark_execute(backend)
    for name in ("execute", "to_pyarrow"):
        method = getattr(backend, name)

        def run(expr: Any, /, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            return timed(
                engine, lambda: str(backend.compile(expr.as_table())), lambda: _method(expr, *args, **kwargs)
            )

        setattr(backend, name, run)
    return backend


def _spark_execute(backend: Any) -> Callable[..., Any]:
    """The Ibis PySpark backend's ``execute``, with the result fetched by :func:`spark_to_pandas`."""
    from ibis.backends.pyspark.converter import PySparkPandasData

    def execute(expr: Any, /, *, params: Any = None, limit: Any = None, **kwargs: Any) -> Any:
        backend._run_pre_execute_hooks(expr)
        table = expr.as_table()
        sql = backend.compile(table, params=params, limit=limit, **kwargs)
        df = spark_to_pandas(backend._session.sql(sql))
        return expr.__pandas_result__(PySparkPandasData.convert_table(df, table.schema()))

    return execute


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


_HALF_AWAY = sqlglot.parse_one(
    "SIGN(_x) * (FLOOR(ABS(_x)) + CAST(ABS(_x) - FLOOR(ABS(_x)) >= 0.5 AS INT))", read="spark"
)


def _round(node: exp.Round) -> exp.Expression:
    """``round(x)`` (no decimals) as floor arithmetic, half away from zero as DuckDB's round: Spark's ROUND of
    a double goes through ``java.math.BigDecimal.valueOf`` (a decimal string) for every row, several times the
    cost of the rest of a histogram query. ``x - floor(x)`` is exact, so the result is DuckDB's for every
    finite ``x`` below 2**63 in magnitude (FLOOR is a BIGINT); it is a double, as DuckDB's round of a double."""
    digits = node.args.get("decimals")
    if digits is not None and not (isinstance(digits, exp.Literal) and digits.name == "0"):
        return node
    x = node.this.transform(_to_spark)  # the replacement's inside is not visited again
    return _HALF_AWAY.transform(lambda n: x.copy() if isinstance(n, exp.Column) and n.name == "_x" else n)


def _to_spark(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in _SPARK_FUNCTIONS:
        return _SPARK_FUNCTIONS[str(node.this).upper()](node)
    if isinstance(node, exp.Round):
        return _round(node)
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
            text = self._sql(sql)
            return timed("duckdb", text, lambda: self._con.execute(text).df())
        text = self.spark_sql(sql)
        return timed("spark", text, lambda: spark_to_pandas(self._session.sql(text)))
