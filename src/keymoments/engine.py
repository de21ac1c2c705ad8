"""The notebook entry point: one object that wires store → score → analyze → act.

>>> import keymoments as km
>>> eng = km.connect(":memory:")
>>> eng.ingest([{"customer_id": "c1", "ts": "2024-05-01T10:00:00Z", "touchpoint": "check-in",
...              "rating": 5, "rating_scale": "csat5"}]).accepted
1
>>> eng.count()
1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from keymoments.events import JourneyModel
from keymoments.ingest.files import frame_source, read_source, records_source
from keymoments.ingest.source import Mapping as ColumnMapping
from keymoments.store.store import Store
from keymoments.store.writer import IngestResult, ingest_outcomes_frame, ingest_source

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["ENGINES", "Engine", "connect", "ingest_to_spark", "stage_to_spark"]

#: the engines an Engine runs its analyses on: the embedded DuckDB store, or events on Apache Spark
ENGINES = ("duckdb", "spark")


class Engine:
    """A keymoments store plus the verbs an analyst uses on it."""

    def __init__(
        self,
        db: str | Path | Store = "keymoments.duckdb",
        *,
        journey: JourneyModel | str | Path | None = None,
        engine: str = "duckdb",
        path: str | Path | None = None,
        table: str | None = None,
        mapping: dict[str, str] | None = None,
        conf: dict[str, str] | None = None,
        session: Any = None,
    ):
        if engine not in ENGINES:
            from keymoments.events import did_you_mean
            from keymoments.exceptions import InvalidParameterError

            raise InvalidParameterError(
                f"The 'engine' parameter of connect must be one of {list(ENGINES)}. Got {engine!r} instead."
                + did_you_mean(str(engine), ENGINES)
            )
        if isinstance(db, Store):
            self.store = db
        elif engine == "spark":
            from keymoments.store.spark import SparkStore

            self.store = SparkStore(db, events=path, table=table, mapping=mapping, conf=conf, session=session)
        else:
            self.store = Store(db)
        self.engine = "spark" if type(self.store).__name__ == "SparkStore" else "duckdb"
        self.journey = JourneyModel.from_yaml(journey) if isinstance(journey, str | Path) else journey

    def __repr__(self) -> str:
        return f"Engine({self.store.path!r}, events={self.count():,})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest ------------------------------------------------------------------------------------------
    def ingest(
        self,
        data: str | Path | pd.DataFrame | Iterable[Mapping[str, Any]],
        *,
        mapping: ColumnMapping | None = None,
        rating_scale: str | None = None,
        rejects: str | Path | None = None,
        score: bool = True,
        ts_format: str | list[str] | None = None,
        ts_range: str | None = None,
        constants: dict[str, str] | None = None,
        max_rejects: float | None = None,
        encoding: str | None = None,
    ) -> IngestResult:
        """Ingest events from a file path, a DataFrame or a list of dicts; scores new text unless score=False.

        ``ts_format`` says how ``ts`` is written (strptime codes such as ``"%Y%m%d"``, or ``"epoch_ms"`` …);
        ``ts_range`` the days it must lie in (``"1900..2030"``, ``"any"``; by default a batch with a timestamp
        before 1990 or after next year is refused, since such dates are nearly always misread); ``constants``
        gives fields one value for every row (``{"touchpoint": "purchase"}``); with ``max_rejects`` (a share,
        e.g. 0.1) a batch with no good row, or with more rejected rows than that, raises
        :class:`~keymoments.exceptions.RejectedRowsError` and writes nothing (the rejects file is written).
        ``encoding``: a CSV's text encoding when it is not UTF-8 or BOM-marked UTF-16 (``"latin-1"``).
        """
        options: dict[str, Any] = {"ts_format": ts_format, "ts_range": ts_range, "constants": constants}
        if isinstance(data, str | Path):
            src = read_source(data, mapping=mapping, rating_scale=rating_scale, encoding=encoding, **options)
        elif isinstance(data, pd.DataFrame):
            src = frame_source(data, mapping=mapping, rating_scale=rating_scale, **options)
        else:
            src = records_source(data, rating_scale=rating_scale, ts_outside="refuse", **options)
        if self.engine == "spark":
            return ingest_to_spark(self.store, src, rejects=rejects, score=score, journey=self.journey)
        result = ingest_source(self.store, src, rejects_path=rejects, max_rejects=max_rejects)
        if score and result.accepted:
            self.score()
        return result

    def ingest_outcomes(
        self, data: str | Path | pd.DataFrame, *, key: str = "customer_id", observed_at: Any = None,
        observed_at_col: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Ingest an outcome table (path or DataFrame), one row per customer_id or journey_id.

        Each outcome is stored with when it was observed: ``observed_at_col`` (a column), ``observed_at`` (one
        time for the table) or the ingest time."""
        when = {"observed_at": observed_at, "observed_at_col": observed_at_col}
        if isinstance(data, str | Path):
            from keymoments.ingest.outcomes import read_outcomes

            return ingest_outcomes_frame(self.store, read_outcomes(data), key=key, source=str(data), **when)
        return ingest_outcomes_frame(self.store, data, key=key, **when)

    def ingest_attributes(self, data: pd.DataFrame, *, key: str = "customer_id") -> dict[str, Any]:
        """Ingest customer (or journey) attributes such as segment, tier or tenure."""
        return ingest_outcomes_frame(self.store, data, key=key, attributes_only=True)

    def ingest_survey(self, path: str | Path, *, max_rejects: float | None = None, **kwargs: Any) -> IngestResult:
        """Ingest a wide survey (see :func:`keymoments.ingest.survey.read_survey` for the parameters): its
        answers and outcomes in one transaction (both, or with ``max_rejects`` exceeded or an error, neither)."""
        from keymoments.ingest.survey import read_survey

        batch = read_survey(path, **kwargs)
        with self.store.transaction():
            result = ingest_source(self.store, batch.events, kind="survey", max_rejects=max_rejects)
            if batch.outcomes is not None:
                ingest_outcomes_frame(self.store, batch.outcomes, key="customer_id", source=str(path))
        return result

    def score(self, model: str = "auto", *, rescore: bool = False) -> int:
        """Score the text of events not scored yet, and give events that came without a touchpoint one from
        their text (with the engine's journey model, else the store's own touchpoints); returns how many texts
        were scored."""
        from keymoments.score.store import score_store, tag_store

        scored = score_store(self.store, scorer=model, rescore=rescore)
        tag_store(self.store, self.journey)
        return scored

    def learn_text(self, *, apply: bool = True) -> Any:
        """Fit a text model on the store's own rated text (ratings as labels; ``.summary`` shows its
        cross-validated macro-F1 next to the general model's) and, with ``apply`` and when it does better,
        rescore the unrated text with it; it is saved beside the store and scores the store's new text from
        then on. Returns the :class:`~keymoments.score.domain.DomainTextModel`."""
        from keymoments.score.store import learn_store_text

        return learn_store_text(self.store, apply=apply)[0]

    # -- read --------------------------------------------------------------------------------------------
    def count(self) -> int:
        return self.store.count("events")

    def events(self) -> ir.Table:
        """The events as an Ibis table expression (lazy; ``.to_pandas()`` to materialise)."""
        return self.store.events()

    def outcomes(self, names: list[str] | None = None) -> pd.DataFrame:
        return self.store.outcomes_wide(names)


def connect(db: str | Path = "keymoments.duckdb", **kwargs: Any) -> Engine:
    """Open (or create) a keymoments store and return an :class:`Engine` on it.

    ``engine="spark"`` runs the analyses on Apache Spark over the Parquet events dataset at ``path`` (default:
    the store's path with ``.events``) or the Spark table ``table`` (its columns renamed by ``mapping``,
    ``{"event_time": "ts"}``); ``conf`` adds Spark settings to the usual Spark configuration, ``session``
    uses a Spark session you already have. Outcomes and attributes stay in the DuckDB file at ``db``.
    """
    return Engine(db, **kwargs)


def ingest_to_spark(
    store: Store,
    src: Any,
    *,
    rejects: str | Path | None = None,
    score: bool = True,
    journey: JourneyModel | None = None,
) -> IngestResult:
    """Ingest one source into a :class:`~keymoments.store.spark.SparkStore`'s Parquet dataset.

    The batch is validated exactly as the embedded ingest validates it (the same checks, rejects file,
    content ids and rating valences), in a scratch in-memory DuckDB store on the driver; its text is scored
    and its touchpoints tagged there; then Spark appends it (idempotent on ``event_id``, derived columns by
    window functions over the journeys it touches; :func:`keymoments.store.spark.append_events`).
    """
    return stage_to_spark(
        store, lambda staged: ingest_source(staged, src, rejects_path=rejects), score=score, journey=journey
    )


def stage_to_spark(
    store: Store,
    write: Any,
    *,
    score: bool = True,
    journey: JourneyModel | None = None,
    scorer: str = "auto",
) -> Any:
    """``write(staged)`` one batch into a scratch in-memory DuckDB store (validation, rejects, content ids: the
    embedded ingest's own), score and tag its text there, and append it to ``store``'s Parquet dataset with
    Spark; return what ``write`` returned (an :class:`IngestResult`, or an answer holding one as ``.result``),
    its counts, batch id and time now those of the dataset (events already there are duplicates)."""
    import time

    from keymoments.store.spark import append_events

    t0 = time.perf_counter()
    staged = Store(":memory:")
    try:
        out = write(staged)
        result: IngestResult = getattr(out, "result", out)
        if score and result.accepted:
            from keymoments.score.store import score_store, tag_store

            score_store(staged, scorer=scorer)
            tag_store(staged, journey)
        written, duplicates = append_events(store, staged)  # type: ignore[arg-type]
    finally:
        staged.close()
    result.accepted, result.duplicates = written, result.duplicates + duplicates
    result.batch_id = result.batch_id + getattr(store, "batch_base", 0) if written else 0
    result.seconds = time.perf_counter() - t0
    return out
