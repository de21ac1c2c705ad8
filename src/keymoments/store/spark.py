"""Events on Apache Spark: the store's own Parquet dataset, or a Spark/Hive table a user names.

A :class:`SparkStore` is a :class:`~keymoments.store.store.Store` whose *events* live on Spark, so every
analysis that takes a store runs there unchanged: :meth:`SparkStore.events` is an Ibis table on the PySpark
backend, and the analyses' queries run on the cluster (see :mod:`keymoments.analyze.sql`). What is small and
keyed by customer or journey (outcomes, attributes) and the operational state (cases, budgets, runs) stay in
the DuckDB file beside it, as they do for the embedded engine.

The events come from one of:

* the store's own Parquet dataset (``events=PATH``; default: the store's path with ``.events`` in place of
  its suffix), partitioned by event date (``event_date=YYYY-MM-DD``) and written by ``keymoments ingest
  --engine spark`` or :func:`write_events_dataset`;
* an existing Spark table (``table="db.events"``), with ``mapping`` renaming its columns onto the event
  contract (``{"event_time": "ts"}``, as ``--map event_time=ts`` does for ingest). Derived columns the table
  lacks (``step``, ``next_touchpoint``…) are computed by Spark window functions when an analysis reads it.

The Spark session comes from the usual Spark configuration (``spark-defaults.conf`` in ``SPARK_CONF_DIR``,
``PYSPARK_SUBMIT_ARGS``, an active session), plus ``conf`` (``--conf key=value``); without a master URL from
any of them it is ``local[*]``. The session's SQL time zone is UTC, as the store's is; a session started here
gets shuffle partitions sized to its cores where the configuration leaves them unset (:func:`session_defaults`).
``cache=True`` keeps the events in Spark's cache (memory, spilling to disk) for a session that runs several
analyses.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keymoments.exceptions import NotFoundError, StoreError
from keymoments.quoting import quote_ident, quote_literal
from keymoments.store.schema import EVENT_COLUMNS
from keymoments.store.store import Store

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SparkStore", "append_events", "default_events_path", "session_defaults", "spark_session", "write_events_dataset",
]  # fmt: skip

#: the partition column of the store's Parquet dataset: the event's date in UTC
PARTITION = "event_date"
_views = itertools.count()
_SELF_DESTRUCT = "spark.sql.execution.arrow.pyspark.selfDestruct.enabled"


def default_events_path(db: str | Path) -> Path:
    """Where the store at ``db`` keeps its Parquet events dataset: ``km.duckdb`` → ``km.events``."""
    return Path(db).with_suffix(".events")


def spark_session(conf: dict[str, str] | None = None) -> SparkSession:
    """The active Spark session, or a new one from the Spark configuration plus ``conf``."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - depends on the install
        raise StoreError(
            "The Spark engine needs PySpark: install keymoments with the 'spark' extra "
            "(pip install 'keymoments[spark]') and a Java 17 runtime."
        ) from None
    active = SparkSession.getActiveSession()
    builder = SparkSession.builder.appName("keymoments").config("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    if not session.sparkContext.getConf().contains(_SELF_DESTRUCT):
        # results reach pandas column by column, each Arrow column freed once converted: a customer-level
        # frame is held about once on the driver, not twice (Arrow and pandas)
        session.conf.set(_SELF_DESTRUCT, "true")
    context = session.sparkContext
    if "PYSPARK_PYTHON" not in os.environ and context.master.startswith("local"):
        # Python code on Spark (the back-test's per-customer engine) runs in worker processes started with
        # PYSPARK_PYTHON, else `python3` from the PATH, which need not have keymoments: in local mode the workers
        # run on this machine, so they use this interpreter
        context.pythonExec = sys.executable
    if active is None:  # a session this call started: size what the user's configuration leaves unset
        given = session.sparkContext.getConf()
        for key, value in session_defaults(session.sparkContext.defaultParallelism).items():
            if not given.contains(key):
                session.conf.set(key, value)
    return session


def session_defaults(cores: int) -> dict[str, str]:
    """The settings a session gets where the Spark configuration does not name them, for ``cores`` task slots
    (the session's default parallelism).

    Spark's 200 shuffle partitions suit a cluster; on a few cores every group-by then writes and reads 200
    blocks per map task, which cost a 1M-event journey map on 2 cores twice the CPU of the query itself
    (docs/experiments.md). Four per core, with adaptive execution coalescing small ones (Spark's default),
    measured best from 1M to 10M events on 2 cores.
    """
    return {"spark.sql.shuffle.partitions": str(max(4 * int(cores), 4)), "spark.sql.adaptive.enabled": "true"}


def write_events_dataset(store: Store, path: str | Path) -> int:
    """Write the events of a DuckDB ``store`` (with their scores and derived columns) as a Parquet dataset
    partitioned by event date at ``path``, replacing what is there; returns the number of events."""
    out = Path(path)
    with store.session() as con:
        con.execute(
            f"COPY (SELECT *, CAST(ts AT TIME ZONE 'UTC' AS DATE) AS {PARTITION} FROM events) "
            f"TO {quote_literal(str(out))} (FORMAT parquet, PARTITION_BY ({PARTITION}), OVERWRITE_OR_IGNORE)"
        )
    return store.count("events")


class SparkStore(Store):
    """A store whose events are on Spark; outcomes, attributes and operational state in the DuckDB file."""

    def __init__(
        self,
        path: str | Path = "keymoments.duckdb",
        *,
        events: str | Path | None = None,
        table: str | None = None,
        mapping: dict[str, str] | None = None,
        conf: dict[str, str] | None = None,
        session: SparkSession | None = None,
        read_only: bool = False,
        cache: bool = False,
        **options: Any,
    ) -> None:
        """``options``: the :class:`Store` options of the DuckDB file (``database_url`` for an operational store
        on PostgreSQL, ``external_access``…)."""
        super().__init__(path, read_only=read_only and Path(path).exists(), **options)
        self.events_path = Path(events) if events else default_events_path(path)
        self.events_table = table
        self.mapping = dict(mapping or {})
        self.spark = session or spark_session(conf)
        self._spark_ibis: Any = None
        self._events_view: str | None = None
        self._events_seen: tuple[Any, ...] | None = None
        self.batch_base = 0  # set by append_events: the dataset's last batch id before the batch it appended
        self.cache = cache
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        where = self.events_table or str(self.events_path)
        return f"SparkStore({self.path!r}, events={where!r})"

    @property
    def spark_ibis(self) -> Any:
        """The Ibis PySpark backend over this store's Spark session."""
        with self._lock:
            if self._spark_ibis is None:
                import ibis

                from keymoments.analyze.sql import timed_backend

                self._spark_ibis = timed_backend(ibis.pyspark.connect(self.spark))
            return self._spark_ibis

    def events_frame(self) -> DataFrame:
        """The events as a Spark DataFrame, columns renamed onto the event contract."""
        if self.events_table:
            df = self.spark.table(self.events_table)
        else:
            if not _exists(self.events_path):
                raise NotFoundError(
                    f"No events dataset at {str(self.events_path)!r}. Write one with "
                    "`keymoments ingest --engine spark FILE`, or name an existing Spark table with --events-table."
                )
            df = self.spark.read.parquet(str(self.events_path))
        for source, field in self.mapping.items():
            if source not in df.columns:
                raise NotFoundError(
                    f"The mapping names the column {source!r}, which the events do not have: {sorted(df.columns)}."
                )
            df = df.withColumnRenamed(source, field)
        return df

    def events(self) -> ir.Table:
        """The events as an Ibis table on the PySpark backend (registered once per store as a temp view)."""
        with self._lock:  # a server's threads: one view (and, with ``cache``, one cached copy), not one each
            if self._events_view is None:
                name = f"km_events_{next(_views)}"
                frame = self.events_frame()
                (frame.cache() if self.cache else frame).createOrReplaceTempView(name)
                self._events_view = name
            view = self._events_view
        return self.spark_ibis.table(view)

    def events_state(self) -> tuple | None:
        """What identifies the events the analyses read: the view over the store's own Parquet dataset (Spark
        fixes its file listing until :meth:`refresh`); None for a table, which another writer may change."""
        if self.events_table:
            return None
        self.events()
        return ("view", self._events_view)

    def table(self, name: str) -> ir.Table:
        """``events`` on Spark; the store's other (customer-level) tables copied to Spark as temp views."""
        if name == "events":
            return self.events()
        self._check_table(name)
        view = f"km_{name}_{next(_views)}"
        frame = self.query(f"SELECT * FROM {quote_ident(name)}")
        self.spark.createDataFrame(
            frame if len(frame) else [], schema=_schema(self, name)
        ).createOrReplaceTempView(view)
        return self.spark_ibis.table(view)

    def refresh(self) -> None:
        """Read the events afresh on the next :meth:`events` (after an append)."""
        with self._lock:
            if self._events_view is not None and self.cache:
                self.spark.catalog.uncacheTable(self._events_view)
            self._events_view = None

    def events_version(self) -> tuple[Any, ...]:
        """A fingerprint of the events' files (their names, sizes and times; for a table or a remote dataset,
        the files Spark reads), which changes when any process writes the events; when it has changed since
        the last call, the events are read afresh (:meth:`refresh`). A cache of results keys on it."""
        if self.events_table or "://" in str(self.events_path):
            try:
                files: Any = tuple(sorted(self.events_frame().inputFiles()))
            except NotFoundError:
                files = ()
        elif not self.events_path.exists():
            files = ()
        else:
            files = tuple(sorted(
                (str(f.relative_to(self.events_path)), st.st_size, st.st_mtime_ns)
                for f in self.events_path.rglob("*") if f.is_file() and (st := f.stat())
            ))  # fmt: skip
        version = (len(files), hash(files))
        if self._events_seen is not None and version != self._events_seen:
            self.refresh()
        self._events_seen = version
        return version

    def count(self, table: str, where: str | None = None) -> int:
        if table != "events":
            return super().count(table, where)
        df = self.events_frame() if _exists(self.events_path) or self.events_table else None
        if df is None:
            return 0
        return int((df.where(where) if where else df).count())


def _schema(store: Store, table: str) -> str:
    """A Spark DDL schema for a DuckDB table of the store (strings and doubles are all the small tables hold)."""
    cols = store.query(f"DESCRIBE {quote_ident(table)}")
    spark = {
        "VARCHAR": "STRING",
        "DOUBLE": "DOUBLE",
        "INTEGER": "INT",
        "BIGINT": "BIGINT",
        "BOOLEAN": "BOOLEAN",
    }
    return ", ".join(
        f"{quote_ident(c, dialect='spark')} {spark.get(str(t).upper(), 'STRING')}"
        for c, t in zip(cols["column_name"], cols["column_type"], strict=True)
    )


def _exists(path: Path) -> bool:
    return Path(path).exists() if "://" not in str(path) else True


def append_events(store: SparkStore, staged: Store) -> tuple[int, int]:
    """Append the events of ``staged`` (a DuckDB store that validated, hashed and scored one batch, as the
    embedded ingest does) to ``store``'s Parquet dataset; return (written, duplicates).

    Spark does the rest, as :mod:`keymoments.store.derive` does in DuckDB: events whose ``event_id`` the
    dataset already holds are duplicates and skipped (re-ingesting a file adds nothing); the batch gets the
    next batch ids, so ``seq`` keeps source order across batches; and the derived columns (``step``,
    ``next_touchpoint``, ``next_ts``, ``is_last``) of every journey the batch touches are recomputed by window
    functions over the journey in ``(ts, seq)`` order, old rows included. Only the date partitions that hold a
    new row or a row of a touched journey are rewritten (dynamic partition overwrite).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = store.spark
    if store.events_table:
        raise StoreError(
            "Ingest writes the store's own Parquet dataset; it does not write to --events-table."
        )
    columns = list(EVENT_COLUMNS)
    with staged.session() as con:
        select = ", ".join("CAST(attrs AS VARCHAR) AS attrs" if c == "attrs" else c for c in columns)
        arrow = con.sql(f"SELECT {select} FROM events").to_arrow_table()
    if arrow.num_rows == 0:
        return 0, 0
    new = spark.createDataFrame(arrow.to_pandas(), schema=_events_schema())
    path = str(store.events_path)
    exists = _exists(store.events_path)
    old = spark.read.parquet(path) if exists else None
    duplicates = 0
    store.batch_base = 0  # the dataset's last batch id before this one (the batch's ids are offset by it)
    if old is not None:
        base = old.agg(F.max("batch_id")).collect()[0][0] or 0
        store.batch_base = int(base)
        before = new.count()
        new = new.join(old.select("event_id"), "event_id", "left_anti")
        duplicates = before - new.count()
        new = new.withColumn(
            "seq", F.shiftleft(F.col("batch_id").cast("long") + base, 32) + (F.col("seq") % (1 << 32))
        )
        new = new.withColumn("batch_id", (F.col("batch_id") + base).cast("int"))
    new = new.withColumn(PARTITION, F.to_date("ts"))
    written = new.count()
    if written == 0:
        return 0, duplicates
    if old is None:
        result = _derive(new, Window, F)
    else:
        touched = new.select("journey_id").distinct()
        dates = (
            old.join(touched, "journey_id", "left_semi").select(PARTITION)
            .union(new.select(PARTITION)).distinct()
        )  # fmt: skip
        rewrite = old.join(F.broadcast(dates), PARTITION, "left_semi")
        moved = _derive(
            old.join(touched, "journey_id", "left_semi").unionByName(new.select(old.columns)), Window, F
        )  # the touched journeys' rows, old and new, with their values now
        kept = rewrite.join(touched, "journey_id", "left_anti")
        # touched journeys' old rows in partitions that are not rewritten cannot exist: their dates are in `dates`
        result = kept.unionByName(moved.select(old.columns))
        result = result.localCheckpoint(eager=True)  # cut the lineage: the rewrite reads what it overwrites
    (
        result.select(*columns, PARTITION).repartition(PARTITION)
        .write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy(PARTITION).parquet(path)
    )  # fmt: skip
    store.refresh()
    return written, duplicates


def _derive(df: DataFrame, Window: Any, F: Any) -> DataFrame:  # noqa: N803 - pyspark's names
    """``df`` with the derived columns recomputed per journey in (ts, seq) order, as the DuckDB store does."""
    w = Window.partitionBy("journey_id").orderBy("ts", "seq")
    return (
        df.withColumn("step", F.row_number().over(w).cast("int"))
        .withColumn("next_touchpoint", F.lead("touchpoint").over(w))
        .withColumn("next_ts", F.lead("ts").over(w))
        .withColumn("is_last", F.col("next_ts").isNull())
    )


def _events_schema() -> str:
    """The events table's columns as a Spark DDL schema."""
    spark = {"VARCHAR": "STRING", "DOUBLE": "DOUBLE", "INTEGER": "INT", "BIGINT": "BIGINT", "BOOLEAN": "BOOLEAN",
             "TIMESTAMPTZ": "TIMESTAMP", "JSON": "STRING"}  # fmt: skip
    return ", ".join(
        f"{quote_ident(c, dialect='spark')} {spark[t.upper()]}" for c, t in EVENT_COLUMNS.items()
    )
