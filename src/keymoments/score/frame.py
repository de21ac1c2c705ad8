"""Score tables: events in a DataFrame (what the store calls) and text files (``keymoments score-text``).

:func:`score_frame` adds, per row:

==================  ===========================================================================================
column              meaning
==================  ===========================================================================================
``rating_valence``  the rating on its scale mapped to [-1, 1] (:func:`~keymoments.score.ratings.ratings_to_valence`);
                    NaN without a readable rating
``text_valence``    the text scorer's valence; NaN without text
``text_confidence`` the text scorer's confidence; 0 without text
``text_model``      the scorer's name where a text was scored, else missing
``valence``         rating and text fused (:func:`~keymoments.score.fusion.fuse`); NaN when there is neither
``confidence``      the fused confidence, in [0, 1]
``valence_source``  ``rating``, ``text``, ``both`` or ``none``
``sentiment``       the text scorer's label where only text spoke; else the label of the fused valence by the
                    ±0.05 rule; missing when valence is NaN
==================  ===========================================================================================

:func:`score_text_file` reads CSV, TSV, JSON Lines (or a JSON array) or Parquet, chosen by the file's suffix
(``.gz``, ``.bz2``, ``.xz`` compression too; ``.json`` holds one array or JSON Lines), scores one text column,
and writes the rows back with ``valence``, ``sentiment``, ``confidence``, ``model``, ``emotion`` (the dominant one
of anger, anxiety, gratitude, delight, or "none": see :mod:`keymoments.score.emotions`) with each emotion's
strength in ``emotion_<name>`` (plus ``touchpoint``, ``touchpoint_confidence`` and ``touchpoints``, every
touchpoint the text names joined by "|", with a journey model) in the format of ``out``'s suffix. Rows without text get an
empty valence and sentiment and confidence 0. Input columns that carry one of these names are kept, renamed
with the suffix ``_input``.

CSV is read as text (every value kept as written) with ``\n`` line ends, so a stray carriage return inside an
unquoted tweet does not split its row; CRLF files are handled; a file that is not UTF-8 is read as
Windows-1252, with a warning. CSV is written with CRLF line ends (RFC 4180), which makes the writer quote every
field holding a line break, so any CSV reader gets the rows back. The output goes through a temporary file, so
a failure leaves no half-written file.
"""

from __future__ import annotations

import bz2
import difflib
import gzip
import io
import json
import lzma
import os
import shlex
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import JourneyModel, did_you_mean
from keymoments.exceptions import (
    ConfigError,
    IngestError,
    KeymomentsWarning,
    MissingColumnError,
    UnsupportedFormatError,
)
from keymoments.present import csv_safe_frame, progress_task
from keymoments.score.base import TextScorer, TextScores, sentiment_from_valence
from keymoments.score.emotions import EMOTIONS, emotions_of
from keymoments.score.fusion import fuse
from keymoments.score.one_pass import score_and_tag
from keymoments.score.ratings import ratings_to_valence
from keymoments.score.registry import resolve_scorer
from keymoments.score.semantic_tagging import SemanticTouchpointTags
from keymoments.score.tagging import Tagger, add_examples, make_tagger

__all__ = ["FILE_FORMATS", "score_frame", "score_text_file"]

#: File suffixes read and written, by format.
FILE_FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "tsv": (".tsv", ".tab"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "parquet": (".parquet", ".pq"),
}
_COMPRESSION = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_OUTPUT_COLUMNS = (
    "valence", "sentiment", "confidence", "model", "emotion", *(f"emotion_{e}" for e in EMOTIONS), "touchpoint",
    "touchpoint_confidence", "touchpoints",
)  # fmt: skip


# --------------------------------------------------------------------------------------------- scoring frames


def _blank_mask(values: pd.Series) -> np.ndarray:
    """True where a value holds no text: missing, or only whitespace."""
    missing = values.isna().to_numpy(bool)
    as_text = values.astype(object).where(~missing, "").map(str)
    return missing | (as_text.str.strip() == "").to_numpy(bool)


def _texts(values: pd.Series, has_text: np.ndarray) -> list[str]:
    return [v if isinstance(v, str) else str(v) for v in values.to_numpy(object)[has_text]]


def score_frame(
    df: pd.DataFrame,
    *,
    text_col: str | None = "text",
    rating_col: str | None = "rating",
    scale_col: str | None = "rating_scale",
    scorer: str | TextScorer | None = None,
) -> pd.DataFrame:
    """A copy of ``df`` with the emotion columns of the module docstring added.

    ``text_col`` must exist (pass None to score ratings only). The rating columns are optional: without
    ``rating_col`` every row counts as unrated; with it, ``scale_col`` must exist too. ``scorer`` is a scorer
    name, a :class:`TextScorer`, or None for ``"auto"``.
    """
    n = len(df)
    if rating_col is not None and rating_col in df.columns:
        if scale_col is None or scale_col not in df.columns:
            raise _missing_column(
                scale_col or "rating_scale", df.columns, "the rating scales", "scale_col", df
            )
        rating_valence, rating_conf, _ = ratings_to_valence(
            df[rating_col].to_numpy(object), df[scale_col].to_numpy(object)
        )
    else:
        rating_valence, rating_conf = np.full(n, np.nan), np.zeros(n)

    text_valence, text_conf = np.full(n, np.nan), np.zeros(n)
    text_sentiment = np.full(n, None, dtype=object)
    text_model = np.full(n, None, dtype=object)
    if text_col is not None:
        if text_col not in df.columns:
            raise _missing_column(text_col, df.columns, "the text", "text_col", df)
        model = resolve_scorer(scorer)
        has_text = ~_blank_mask(df[text_col])
        if has_text.any():
            scores = model.score(_texts(df[text_col], has_text))
            text_valence[has_text] = np.clip(scores.valence, -1.0, 1.0)
            text_conf[has_text] = np.clip(scores.confidence, 0.0, 1.0)
            text_sentiment[has_text] = scores.sentiment
            text_model[has_text] = model.name

    valence, confidence, source = fuse(rating_valence, rating_conf, text_valence, text_conf)
    sentiment = sentiment_from_valence(valence)
    only_text = source == "text"
    sentiment[only_text] = text_sentiment[only_text]

    out = df.copy()
    out["rating_valence"] = rating_valence
    out["text_valence"] = text_valence
    out["text_confidence"] = text_conf
    out["text_model"] = text_model
    out["valence"] = valence
    out["confidence"] = confidence
    out["valence_source"] = source
    out["sentiment"] = sentiment
    return out


# ------------------------------------------------------------------------------------------------ text files


def score_text_file(
    path: str | os.PathLike[str],
    *,
    text_col: str = "text",
    out: str | os.PathLike[str] | None = None,
    scorer: str | TextScorer | None = "auto",
    journey: JourneyModel | str | os.PathLike[str] | None = None,
    tagger: Tagger | None = None,
    examples: str | os.PathLike[str] | pd.DataFrame | None = None,
    sentences: str | os.PathLike[str] | None = None,
) -> tuple[pd.DataFrame, Path]:
    """Score the ``text_col`` column of a file and write the result; returns ``(scored rows, out path)``.

    ``sentences`` (a path; its suffix picks the format) also writes one row per scored segment: ``row`` (the
    input row, from 0), ``segment`` (from 0), ``sentence``, ``valence`` and ``sentiment`` (and ``touchpoint``
    with a journey): a long text's sentences as the scorer read them (see
    :mod:`keymoments.score.semantic`), a short text as one segment, so a quote can show the sentence that
    carries the emotion and a review that names several touchpoints gets each its own valence.

    ``out`` defaults to ``<stem>.scored.csv`` next to the input; its suffix picks the output format.
    ``journey`` (a :class:`JourneyModel` or the path of a ``journey.yaml``) adds touchpoint tags, made by
    ``tagger`` or, when it is None, by :func:`~keymoments.score.tagging.make_tagger`. ``examples`` (a table or
    its path, with the text in ``text_col`` or ``text`` and the label in ``touchpoint``) teaches that tagger the
    business's own labelled texts (:func:`~keymoments.score.tagging.add_examples`); the scores and the tags come
    from one encoder pass where they can (:func:`~keymoments.score.one_pass.score_and_tag`). Everything is checked
    (formats, output path, scorer, journey, the text column) before anything is written.
    """
    path = Path(path)
    in_format, _ = _format_of(path, "input")
    out_path = Path(out) if out is not None else path.with_name(f"{_stem(path)}.scored.csv")
    out_format, _ = _format_of(out_path, "output")
    if out_path.resolve() == path.resolve():
        raise ConfigError(
            f"The output {str(out_path)!r} is the input file; pick another --out so the input is kept."
        )
    sentences_path, sentences_format = None, None
    if sentences is not None:
        sentences_path = Path(sentences)
        sentences_format, _ = _format_of(sentences_path, "output")
        if sentences_path.resolve() in (path.resolve(), out_path.resolve()):
            raise ConfigError(f"--sentences {str(sentences_path)!r} must be another file than the input and --out.")
    model = resolve_scorer(scorer)
    journey_model = None
    if tagger is None and journey is not None:
        journey_model = journey if isinstance(journey, JourneyModel) else JourneyModel.from_yaml(journey)
    if examples is not None:
        if journey_model is None:
            raise ConfigError("Labelled examples teach the touchpoint tagger: give a journey model (--journey) too.")
        journey_model = _with_examples(journey_model, examples, text_col)

    df = _read_table(path, in_format)
    if text_col not in df.columns:
        raise _missing_column(text_col, df.columns, "the text", "--text-col", df, source=path.name)

    has_text = ~_blank_mask(df[text_col])
    texts = _texts(df[text_col], has_text)
    if journey_model is not None:  # the file's own texts calibrate the semantic tagger (no labels used)
        with progress_task("calibrating the touchpoint tagger on the file's texts"):
            tagger = make_tagger(journey_model, reference=texts)
    tags = None
    if tagger is not None:  # one encoder pass for both where it can (keymoments.score.one_pass)
        with progress_task(f"scoring and tagging {len(texts):,} texts"):
            scores, tags = score_and_tag(model, tagger, texts)
    else:
        with progress_task(f"scoring {len(texts):,} texts"):
            scores = model.score(texts)
    valence = np.full(len(df), np.nan)
    valence[has_text] = np.clip(scores.valence, -1.0, 1.0)
    confidence = np.zeros(len(df))
    confidence[has_text] = np.clip(scores.confidence, 0.0, 1.0)
    sentiment = np.full(len(df), None, dtype=object)
    sentiment[has_text] = scores.sentiment

    result = df.rename(columns={c: f"{c}_input" for c in _OUTPUT_COLUMNS if c in df.columns})
    result["valence"] = valence
    result["sentiment"] = sentiment
    result["confidence"] = confidence
    result["model"] = model.name
    emotions = emotions_of(texts, scores)
    if emotions is not None:
        dominant = np.full(len(df), None, dtype=object)
        dominant[has_text] = emotions["emotion"]
        result["emotion"] = dominant
        for name in (f"emotion_{e}" for e in EMOTIONS):
            strength = np.zeros(len(df))
            strength[has_text] = emotions[name]
            result[name] = strength
    if tagger is not None and tags is not None:
        touchpoint = np.full(len(df), None, dtype=object)
        touchpoint[has_text] = tags.touchpoint
        tp_conf = np.zeros(len(df))
        tp_conf[has_text] = tags.confidence
        result["touchpoint"] = touchpoint
        result["touchpoint_confidence"] = tp_conf
        if isinstance(tags, SemanticTouchpointTags):  # every touchpoint the text names, best first
            every = np.full(len(df), None, dtype=object)
            every[has_text] = np.array(["|".join(labels) or None for labels in tags.labels], dtype=object)
            result["touchpoints"] = every
        result.attrs["tagger"] = repr(tagger)  # how it tagged (calibration, lexical weight), for the CLI to say
    if sentences_path is not None and sentences_format is not None:
        table = _sentence_table(np.flatnonzero(has_text), texts, scores, tagger)
        _write_table(table, sentences_path, sentences_format)
        result.attrs["sentences"] = str(sentences_path)
    _write_table(result, out_path, out_format)
    return result, out_path


def _sentence_table(rows: np.ndarray, texts: list[str], scores: TextScores, tagger: Tagger | None) -> pd.DataFrame:
    """One row per segment a text was scored as (a short text is its own single segment)."""
    segments = scores.extra.get("segments")
    records = []
    for k, (row, text) in enumerate(zip(rows, texts, strict=True)):
        parts = segments[k] if segments is not None and segments[k] is not None else None
        if parts is None:
            parts = [{"text": text, "valence": float(scores.valence[k]), "sentiment": scores.sentiment[k]}]
        for j, part in enumerate(parts):
            records.append({"row": int(row), "segment": j, "sentence": part["text"],
                            "valence": part["valence"], "sentiment": part["sentiment"]})
    table = pd.DataFrame(records, columns=["row", "segment", "sentence", "valence", "sentiment"])
    if tagger is not None and len(table):
        table["touchpoint"] = tagger.tag(table["sentence"].tolist()).touchpoint
    return table


# ------------------------------------------------------------------------------------------------- messages


def _likely_text_column(df: pd.DataFrame | None) -> str | None:
    """The column whose values are the longest strings on average: probably the free text."""
    if df is None or df.empty:
        return None
    best, best_len = None, 0.0
    for col in df.columns:
        values = df[col].head(1000)
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        mean_len = values.dropna().astype(str).str.len().mean()
        if pd.notna(mean_len) and mean_len > best_len:
            best, best_len = str(col), float(mean_len)
    return best


def _missing_column(
    column: str,
    columns: Any,
    what: str,
    option: str,
    df: pd.DataFrame | None = None,
    *,
    source: str = "the table",
) -> MissingColumnError:
    cols = [str(c) for c in columns]
    hint = did_you_mean(column, cols)
    close = difflib.get_close_matches(column.lower(), [c.lower() for c in cols], n=1, cutoff=0.6)
    suggestion = next((c for c in cols if close and c.lower() == close[0]), None)
    if suggestion is None and what == "the text":
        suggestion = _likely_text_column(df)
        if suggestion is not None:
            hint = f" Did you mean {suggestion!r} (the column with the longest texts)?"
    fix = (
        f"{option} {shlex.quote(str(suggestion))}" if option.startswith("--") else f"{option}={suggestion!r}"
    )
    how = f" Name the column that holds {what} with {option}" + (f", e.g. {fix}." if suggestion else ".")
    return MissingColumnError(
        f"Column {column!r} is missing from {source}; its columns are {cols}.{hint}{how}"
    )


# ------------------------------------------------------------------------------------------------------ files


def _split_suffix(path: Path) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in _COMPRESSION else None
    return (suffixes[-1] if suffixes else ""), compression


def _format_of(path: Path, role: str) -> tuple[str, str | None]:
    suffix, compression = _split_suffix(path)
    for fmt, known in FILE_FORMATS.items():
        if suffix in known:
            if fmt == "parquet" and compression:
                break
            return fmt, compression
    supported = ", ".join(s for known in FILE_FORMATS.values() for s in known)
    raise UnsupportedFormatError(
        f"Cannot tell the {role} format of {str(path)!r} from its suffix {''.join(path.suffixes) or '(none)'!r}; "
        f"use one of {supported} (CSV, TSV and JSON Lines may end in .gz, .bz2 or .xz)."
    )


def _stem(path: Path) -> str:
    name = path.name
    _, compression = _split_suffix(path)
    if compression:
        name = name[: -len(compression)]
    return Path(name).stem


def _with_examples(
    journey: JourneyModel, examples: str | os.PathLike[str] | pd.DataFrame, text_col: str
) -> JourneyModel:
    """The journey model with a labelled table's texts added as touchpoint examples."""
    if isinstance(examples, pd.DataFrame):
        table, name = examples, "the examples"
    else:
        path = Path(examples)
        table, name = _read_table(path, _format_of(path, "examples")[0]), path.name
    text = text_col if text_col in table.columns else "text"
    for column, what in ((text, "the example's text"), ("touchpoint", "the touchpoint it is about")):
        if column not in table.columns:
            raise MissingColumnError(
                f"{name} has no column {column!r}; its columns are {[str(c) for c in table.columns]}."
                f"{did_you_mean(column, [str(c) for c in table.columns])} A table of labelled examples needs "
                f"{text_col!r} (or 'text') with the text and 'touchpoint' with the touchpoint; rename the column "
                f"that holds {what}."
            )
    return add_examples(journey, table[text].tolist(), table["touchpoint"].tolist())


def _read_table(path: Path, fmt: str) -> pd.DataFrame:
    if not path.is_file():
        raise IngestError(f"{str(path)!r} does not exist or is not a file.")
    if fmt in ("csv", "tsv"):
        return _read_csv(path, "," if fmt == "csv" else "\t")
    if fmt == "jsonl":
        return _read_json(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise IngestError(f"{path.name} cannot be read as Parquet: {exc}") from exc


def _open_binary(path: Path) -> Any:
    _, compression = _split_suffix(path)
    return _COMPRESSION[compression](path, "rb") if compression else open(path, "rb")  # noqa: SIM115


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    with _open_binary(path) as fh:
        head = fh.read(1 << 16)
    terminator = "\r" if b"\n" not in head and b"\r" in head else "\n"
    kwargs: dict[str, Any] = dict(
        sep=sep,
        dtype=str,
        keep_default_na=False,
        na_values=[],
        lineterminator=terminator,
        compression="infer",
    )
    # UTF-16 or UTF-32 (Excel's "Unicode text") is told by its byte-order mark or NUL bytes, else it reads as garbage
    wide = _wide_encoding(head)
    if wide is not None:
        kwargs["lineterminator"] = None  # pandas splits lines itself; a given terminator is one byte of 8-bit text
        terminator = ""
    try:
        try:
            df = pd.read_csv(path, encoding=wide or "utf-8-sig", **kwargs)
        except UnicodeError:
            if wide is not None:
                raise IngestError(f"{path.name} looks like {wide.upper()} text but is not valid {wide.upper()}.") from None
            warnings.warn(
                f"{path.name} is not UTF-8; reading it as Windows-1252 (undecodable bytes become U+FFFD).",
                KeymomentsWarning,
                stacklevel=4,
            )
            df = pd.read_csv(path, encoding="cp1252", encoding_errors="replace", **kwargs)
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path.name} is empty: it has no header row.") from None
    except pd.errors.ParserError as exc:
        raise IngestError(f"{path.name} is not valid {'CSV' if sep == ',' else 'TSV'}: {exc}") from None
    if terminator == "\n" and len(df.columns) and str(df.columns[-1]).endswith("\r"):  # a CRLF file
        last = df.columns[-1]
        df[last] = df[last].str.removesuffix("\r")
        df = df.rename(columns={last: last[:-1]})
    return df


def _wide_encoding(head: bytes) -> str | None:
    """The codec of UTF-32 or UTF-16 text, told by its byte-order mark or by the NUL bytes of ASCII characters."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
        return "utf-16-be"
    return None


def _read_json(path: Path) -> pd.DataFrame:
    with _open_binary(path) as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path.name} is not UTF-8 text (byte {exc.start}); JSON must be UTF-8.") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(f"{path.name}: not valid JSON at line {exc.lineno}: {exc.msg}.") from None
    else:
        records = []
        for lineno, line in enumerate(io.StringIO(text), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IngestError(f"{path.name}: line {lineno} is not valid JSON: {exc.msg}.") from None
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise IngestError(f"{path.name}: record {bad + 1} is not a JSON object; each record must be one.")
    return pd.DataFrame.from_records(records)


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write through a temporary file in the same folder, so a failed write leaves no half file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp-{path.name}")
    try:
        if fmt == "csv":
            # CRLF (RFC 4180): then every field holding a \r or \n is quoted and any reader splits rows right
            # text like =HYPERLINK(…) or @SUM(…) gets a leading ' so that no spreadsheet runs it
            csv_safe_frame(df).to_csv(tmp, index=False, lineterminator="\r\n", compression="infer")
        elif fmt == "tsv":
            csv_safe_frame(df).to_csv(tmp, index=False, sep="\t", lineterminator="\r\n", compression="infer")
        elif fmt == "jsonl":
            lines = (
                _split_suffix(path)[0] != ".json"
            )  # .json gets one JSON array, .jsonl/.ndjson one per line
            df.to_json(
                tmp, orient="records", lines=lines, force_ascii=False, date_format="iso", compression="infer"
            )
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
