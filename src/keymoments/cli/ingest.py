"""CLI commands that load data: ingest, ingest-outcomes, ingest-survey, score-text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keymoments.cli.common import (
    DbOption,
    JsonOption,
    TagJourneyOption,
    echo_json,
    err_console,
    open_store,
    writing_store,
)
from keymoments.present import show_progress

__all__ = ["register"]

# the options every ingest command shares
TsFormatOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ts-format",
        help="How ts is written, in strptime codes (e.g. %Y%m%d, %d/%m/%Y %H:%M; repeat for several), or "
        "epoch_s / epoch_ms / epoch_us / epoch_ns. Default: ISO-8601, YYYYMMDD, ordinal and common day/month forms, "
        "and epochs told apart by magnitude.",
    ),
]
TsRangeOption = Annotated[
    str | None,
    typer.Option(
        "--ts-range",
        help="The days timestamps must lie in, FIRST..LAST (e.g. 1900..2030), or 'any' (years 1-9999). Default: "
        "1990 to the end of next year; a batch with a timestamp outside is refused, as dates misread look like that.",
    ),
]
MaxRejectsOption = Annotated[
    str,
    typer.Option(
        "--max-rejects",
        help="The share of a file's rows that may be rejected (e.g. 10%, 0.1, 100%); beyond it, or with no good "
        "row, the command writes nothing, exits non-zero and leaves the rejects file to fix them from.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="One value for every row: field=value (repeat), e.g. --set touchpoint=purchase --set channel=store; "
        "a name that is not an event field becomes a key of attrs.",
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="The CSV's text encoding when it is not UTF-8 or BOM-marked UTF-16 (which are read as they are): "
        "utf-8, utf-16 or latin-1.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("ingest-outcomes")(ingest_outcomes)
    app.command("ingest-survey")(ingest_survey)
    app.command("score-text")(score_text)
    app.command("score")(score)
    app.command("learn-text")(learn_text)


def _show(result: dict, as_json: bool) -> None:
    if as_json:
        echo_json(result)
        return
    typer.echo(
        f"{result['source']}: {result['accepted']:,} accepted, {result['duplicates']:,} duplicate, "
        f"{result['rejected']:,} rejected ({result['seconds']:.1f} s)"
    )
    if result.get("rejects_path"):
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.get("reasons", {}).items()))
        typer.echo(f"  rejected rows with one reason each → {result['rejects_path']} ({reasons})")


def ingest(
    files: Annotated[list[Path], typer.Argument(help="Event files: CSV, JSON Lines, Parquet, XES (.xes, .xes.gz).")],
    db: DbOption = Path("keymoments.duckdb"),
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Rename a column: source=field (repeat; one source may feed several fields)."),
    ] = None,
    set_: SetOption = None,
    rating_scale: Annotated[
        str | None, typer.Option("--rating-scale", help="Scale of every rating when the file has no rating_scale column.")
    ] = None,
    ts_format: TsFormatOption = None,
    ts_range: TsRangeOption = None,
    max_rejects: MaxRejectsOption = "10%",
    encoding: EncodingOption = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Where rejected rows go (default ./<file>.rejects.csv).")
    ] = None,
    no_score: Annotated[bool, typer.Option("--no-score", help="Do not score the new events' text now.")] = False,
    journey: TagJourneyOption = None,
    as_json: JsonOption = False,
    engine: Annotated[str, typer.Option(
        "--engine", envvar="KM_ENGINE", help="duckdb: into the store (default); spark: into the store's Parquet "
        "events dataset on Spark, partitioned by event date (outcomes stay in the store).")] = "duckdb",
    events: Annotated[str | None, typer.Option(
        "--events", envvar="KM_EVENTS_PATH", help="With --engine spark: the Parquet events dataset "
        "(default: the store's path with .events).")] = None,
) -> None:
    """Ingest events: all the files in one transaction (all of them are written, or none), idempotent on
    event_id (or a content hash)."""
    from keymoments.ingest.files import read_source
    from keymoments.ingest.source import parse_mapping, parse_share
    from keymoments.store.writer import ingest_source

    mapping = parse_mapping(map_)
    share = parse_share(max_rejects)
    jm = _journey(journey)
    # every file is read and checked before the store is opened: a refused file creates no store
    sources = [
        read_source(f, mapping=mapping, rating_scale=rating_scale, ts_format=ts_format, ts_range=ts_range,
                    constants=set_, encoding=encoding)
        for f in files
    ]  # fmt: skip
    results = []
    if engine != "duckdb":
        _ingest_spark(sources, files, db, events, engine, rejects, no_score, jm, as_json)
        return
    with show_progress(), writing_store(db) as store:
        with store.transaction():
            for src in sources:
                r = ingest_source(store, src, rejects_path=rejects if len(files) == 1 else None, max_rejects=share)
                results.append(r.to_dict())
        if not as_json:
            for r in results:
                _show(r, False)
        if not no_score and any(r["accepted"] for r in results):
            scored, tagged = _score_store(store, jm)
            if not as_json and scored:
                typer.echo(f"scored the text of {scored:,} events")
            if not as_json:
                _say_tagged(tagged)
    if as_json:
        echo_json(results[0] if len(results) == 1 else results)


def _ingest_spark(sources, files, db, events, engine, rejects, no_score, jm, as_json) -> None:  # noqa: ANN001
    """`ingest --engine spark`: each file validated as the store validates it, then appended by Spark."""
    from keymoments.engine import ingest_to_spark
    from keymoments.exceptions import InvalidParameterError
    from keymoments.store.spark import SparkStore

    if engine != "spark":
        raise InvalidParameterError(f"--engine must be duckdb or spark. Got {engine!r} instead.")
    results = []
    with SparkStore(db, events=events) as store:
        for src in sources:
            r = ingest_to_spark(store, src, rejects=rejects if len(files) == 1 else None, score=not no_score, journey=jm)
            results.append(r.to_dict())
            if not as_json:
                _show(r.to_dict(), False)
    if as_json:
        echo_json(results[0] if len(results) == 1 else results)


def _journey(path: Path | None):  # noqa: ANN202
    """The journey model of --journey, read before anything is written (a bad file fails first)."""
    from keymoments.events import JourneyModel

    return JourneyModel.from_yaml(path) if path else None


def _score_store(store, journey, model: str = "auto", rescore: bool = False) -> tuple[int, int]:  # noqa: ANN001
    """Score the store's unscored text, then tag the events that came without a touchpoint: (scored, tagged)."""
    from keymoments.score.store import score_store, tag_store

    scored = score_store(store, scorer=model, rescore=rescore)
    return scored, tag_store(store, journey)


def _say_tagged(tagged: int) -> None:
    if tagged:
        typer.echo(f"tagged {tagged:,} events that came without a touchpoint, from their text")


def ingest_outcomes(
    file: Annotated[Path, typer.Argument(help="Outcome table: CSV, JSON Lines or Parquet, one row per key.")],
    key: Annotated[str, typer.Option("--key", help="customer_id or journey_id")] = "customer_id",
    db: DbOption = Path("keymoments.duckdb"),
    map_: Annotated[list[str] | None, typer.Option("--map", help="Rename a column: source=name (repeat).")] = None,
    observed_at_col: Annotated[
        str | None,
        typer.Option("--observed-at-col", help="Column with the time each row's outcomes were observed (ISO-8601)."),
    ] = None,
    observed_at: Annotated[
        str | None,
        typer.Option("--observed-at", help="One observed time for the whole table, e.g. a snapshot's date 2025-12-31."),
    ] = None,
    encoding: EncodingOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest an outcome table (retained, spend_next_12m, nps …); text columns become customer attributes.

    Each outcome is stored with the time it was observed (default: now, the ingest time); playbook uplift
    counts only outcomes observed after a playbook's decision, within the window its `measure` states."""
    from keymoments.ingest.outcomes import read_outcomes
    from keymoments.store.writer import ingest_outcomes_frame

    df = read_outcomes(file, map_, encoding=encoding)
    with writing_store(db) as store, store.transaction():
        res = ingest_outcomes_frame(store, df, key=key, source=str(file), observed_at=observed_at,
                                    observed_at_col=observed_at_col)  # fmt: skip
    res["source"] = str(file)
    if as_json:
        echo_json(res)
    else:
        typer.echo(f"{file}: {res['rows']:,} rows; outcomes {res['outcomes']} observed at {res['observed_at']}; "
                   f"attributes {res['attributes']}")


def ingest_survey(
    file: Annotated[Path, typer.Argument(help="Wide survey: one row per respondent, one column per touchpoint.")],
    id_col: Annotated[str, typer.Option("--id-col", help="The respondent id column.")],
    touchpoints: Annotated[str, typer.Option("--touchpoints", help="Touchpoint columns, comma-separated, in order.")],
    scale: Annotated[str, typer.Option("--scale", help="Rating scale of the touchpoint columns (csat5, nps …).")],
    outcome_col: Annotated[
        list[str] | None, typer.Option("--outcome-col", help="An outcome column (repeat for several).")
    ] = None,
    na_value: Annotated[str | None, typer.Option("--na-value", help="Value meaning 'not rated', e.g. 0.")] = None,
    ts_col: Annotated[str | None, typer.Option("--ts-col", help="Column with the response time.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Response date when there is no --ts-col (default today).")] = None,
    ts_format: TsFormatOption = None,
    ts_range: TsRangeOption = None,
    set_: SetOption = None,
    max_rejects: MaxRejectsOption = "10%",
    encoding: EncodingOption = None,
    db: DbOption = Path("keymoments.duckdb"),
    rejects: Annotated[Path | None, typer.Option("--rejects", help="Where rejected cells go.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Reshape a wide survey into one event per rated touchpoint plus an outcome row per respondent; the
    answers and the outcomes are written together, or (too many rejected cells, an error) neither."""
    from keymoments.ingest.source import parse_share
    from keymoments.ingest.survey import read_survey
    from keymoments.store.writer import ingest_outcomes_frame, ingest_source

    share = parse_share(max_rejects)
    batch = read_survey(
        file,
        id_col=id_col,
        touchpoints=touchpoints.split(","),
        scale=scale,
        outcome_cols=outcome_col,
        na_value=na_value,
        ts_col=ts_col,
        date=date,
        ts_format=ts_format,
        ts_range=ts_range,
        constants=set_,
        encoding=encoding,
    )
    with show_progress(), writing_store(db) as store, store.transaction():
        r = ingest_source(store, batch.events, rejects_path=rejects, kind="survey", max_rejects=share).to_dict()
        r["respondents"] = batch.respondents
        if batch.outcomes is not None:
            r["outcomes"] = ingest_outcomes_frame(store, batch.outcomes, key="customer_id", source=str(file))["outcomes"]
    if as_json:
        echo_json(r)
    else:
        _show(r, False)
        typer.echo(f"  {batch.respondents:,} respondents" + (f"; outcomes {r['outcomes']}" if "outcomes" in r else ""))


def score_text(
    file: Annotated[Path, typer.Argument(help="A table of text: CSV, JSON Lines or Parquet.")],
    text_col: Annotated[str, typer.Option("--text-col", help="The column holding the text.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output file (.csv, .jsonl, .parquet).")] = None,
    model: Annotated[str, typer.Option("--model", help="auto (best available), lexicon, or a named model.")] = "auto",
    journey: Annotated[
        Path | None, typer.Option("--journey", help="journey.yaml: also tag each text with a touchpoint.")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option("--examples", help="A table of labelled texts (text, touchpoint) that teaches the tagger; with --journey."),
    ] = None,
    sentences: Annotated[
        Path | None,
        typer.Option("--sentences", help="Also write one row per sentence scored (row, segment, sentence, valence, sentiment[, touchpoint])."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score any table of text: adds valence, sentiment, confidence, emotion (and touchpoint with --journey).

    A text longer than 40 words is scored sentence by sentence and pooled (see --sentences)."""
    from keymoments.score.frame import score_text_file

    jm = _journey(journey)
    with show_progress():
        df, path = score_text_file(file, text_col=text_col, out=out, scorer=model, journey=jm, examples=examples,
                                   sentences=sentences)  # fmt: skip
    counts = df["sentiment"].value_counts().to_dict()
    model_name = str(df["model"].iloc[0]) if len(df) else model
    emotions = df["emotion"].value_counts().to_dict() if "emotion" in df else {}
    touchpoints = df["touchpoint"].value_counts().to_dict() if "touchpoint" in df else {}
    if as_json:
        extra = {"emotion": emotions} | ({"touchpoint": touchpoints} if "touchpoint" in df else {})
        extra |= {"tagger": df.attrs["tagger"]} if "tagger" in df.attrs else {}
        extra |= {"sentences": df.attrs["sentences"]} if "sentences" in df.attrs else {}
        echo_json({"out": str(path), "rows": len(df), "model": model_name, "sentiment": counts} | extra)
    else:
        err_console.print(f"scored {len(df):,} texts with {model_name}")
        if "tagger" in df.attrs:
            err_console.print(f"tagged with {df.attrs['tagger']}", soft_wrap=True)
        typer.echo(f"{path}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
        if "sentences" in df.attrs:
            typer.echo(f"  sentences: {df.attrs['sentences']}")
        for label, tally in (("emotions", emotions), ("touchpoints", touchpoints)):
            if tally:
                typer.echo(f"  {label}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.items(), key=lambda kv: -kv[1])))


def score(
    db: DbOption = Path("keymoments.duckdb"),
    model: Annotated[str, typer.Option("--model", help="auto, lexicon, or a named model.")] = "auto",
    rescore: Annotated[bool, typer.Option("--rescore", help="Score every event's text again.")] = False,
    journey: TagJourneyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the text of the store's events that are not scored yet, and tag events that came without a
    touchpoint (ingest does both by default)."""
    jm = _journey(journey)
    with show_progress(), open_store(db) as store:
        n, tagged = _score_store(store, jm, model, rescore)
    if as_json:
        echo_json({"scored": n, "tagged": tagged})
    else:
        typer.echo(f"scored the text of {n:,} events")
        _say_tagged(tagged)


def learn_text(
    db: DbOption = Path("keymoments.duckdb"),
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the model here (it is always kept as <db>.text-model.npz beside the store).")
    ] = None,
    apply: Annotated[
        bool,
        typer.Option("--apply/--no-apply", help="Rescore the unrated text with it when it beats the general model in cross-validation."),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Learn the business's language from its own rated text (ratings as labels), say how good it is, and
    score the unrated text (tweets, chats) with it."""
    import warnings

    from keymoments.score.store import learn_store_text, learnt_model_path

    with show_progress(), open_store(db) as store:
        # warnings go to stderr as every command's do; with --json they go into the answer instead
        with warnings.catch_warnings(record=as_json) as caught:
            if as_json:
                warnings.simplefilter("always")
            model, rescored = learn_store_text(store, apply=apply)
        path = learnt_model_path(store)
    if out is not None:
        model.save(out)
        path = out
    better = model.gain_ > 0
    general = model.cv_.loc["general", "macro_f1"]
    domain = model.cv_.loc["domain (cv)", "macro_f1"]
    if as_json:
        echo_json(model.to_dict() | {"path": str(path), "rescored_unrated": rescored,
                                     "warnings": [str(w.message) for w in caught or []]})  # fmt: skip
        return
    typer.echo(f"learnt from {model.n_:,} rated texts ({', '.join(f'{k} {v:,}' for k, v in model.class_counts_.items())})")
    typer.echo(f"cross-validated macro-F1 on them: domain model {domain:.3f}, general model {general:.3f} ({model.gain_:+.3f})")
    typer.echo(f"saved → {path}")
    if not better:
        typer.echo("kept the general model for scoring: the domain model does not beat it on this business's text")
    else:
        if apply:
            typer.echo(f"rescored the text of {rescored:,} unrated events with it")
        typer.echo("new text in this store is scored with it from now on (--model picks another)")
