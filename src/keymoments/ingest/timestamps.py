"""How an input's ``ts`` is read: the forms recognised, an explicit format, and the window a batch must fit.

Without ``--ts-format`` a timestamp is read from ISO-8601 (with or without offset), RFC 2822, Twitter's form,
common day/month forms (slashed dates month first), ordinal dates (``19th November 2023``, ``November 19th,
2023``), and numbers: an 8-digit integer is a date ``YYYYMMDD`` (``19970101`` is 1997-01-01), a 14-digit one
``YYYYMMDDHHMMSS``, and any other number an epoch only where its magnitude fits one unit (seconds below 1e10,
milliseconds from 1e11 to 1e13, microseconds from 1e14 to 1e16, nanoseconds from 1e17 to 1e19); a number in
between fits none and is rejected. ``--ts-format`` names the form instead: strptime codes (``%d/%m/%Y``; repeat
it for several) or ``epoch_s``, ``epoch_ms``, ``epoch_us``, ``epoch_ns``.

Every timestamp must lie in years 1 to 9999 (``infinity`` and ``-infinity`` are rejected row by row), and a
batch whose timestamps fall outside a plausible window (1990-01-01 up to the end of next year) is refused
whole, because such dates are nearly always misread ones (a date read as epoch seconds lands in 1970);
``--ts-range any`` (or ``--ts-range 1900..2030``) says they are right.

The SQL that applies these rules is :mod:`keymoments.store.staging`'s; this module holds the rules' values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import duckdb

from keymoments.exceptions import InvalidParameterError

__all__ = ["ANY_TIME", "EPOCH_UNITS", "TsRange", "parse_ts_formats", "parse_ts_range", "plausible_range"]

#: --ts-format names for numbers in one epoch unit, and the divisor that turns them into seconds
EPOCH_UNITS: dict[str, float] = {"epoch_s": 1.0, "epoch_ms": 1e3, "epoch_us": 1e6, "epoch_ns": 1e9}

#: the oldest year of the plausible window
PLAUSIBLE_FROM = 1990


@dataclass(frozen=True, slots=True)
class TsRange:
    """The days a batch's timestamps must lie in, ``first`` to ``last`` inclusive (UTC)."""

    first: date
    last: date
    #: the default window (not one the user gave)
    plausible: bool = False

    @property
    def is_any(self) -> bool:
        """Only the hard limits (years 1 to 9999) apply."""
        return self.first <= ANY_TIME.first and self.last >= ANY_TIME.last

    def describe(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()}"


#: the hard limits: years 1 to 9999
ANY_TIME = TsRange(date(1, 1, 1), date(9999, 12, 31))


def plausible_range(today: date | None = None) -> TsRange:
    """1990-01-01 up to the end of next year."""
    today = today or date.today()
    return TsRange(date(PLAUSIBLE_FROM, 1, 1), date(today.year + 1, 12, 31), plausible=True)


_RANGE_HELP = "--ts-range takes 'any' or FIRST..LAST with years or dates (e.g. 1900..2030 or 1995-06-01..2024-12-31)"


def _day(text: str, *, last: bool) -> date:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{1,4}", text):
            return date(int(text), 12, 31) if last else date(int(text), 1, 1)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(f"{_RANGE_HELP}; got {text!r}.") from None


def parse_ts_range(text: str | None) -> TsRange:
    """``None`` or ``plausible``: :func:`plausible_range`; ``any``: :data:`ANY_TIME`; ``FIRST..LAST``: years or
    ISO dates, both inclusive (``1900..2030``, ``1995-06-01..2024-12-31``)."""
    if text is None or text.strip().lower() in ("", "plausible"):
        return plausible_range()
    if text.strip().lower() == "any":
        return ANY_TIME
    if ".." not in text:
        raise InvalidParameterError(f"{_RANGE_HELP}; got {text!r}.")
    lo, hi = text.split("..", 1)
    first, last = _day(lo, last=False), _day(hi, last=True)
    if last < first:
        raise InvalidParameterError(f"--ts-range {text!r} ends before it starts.")
    return TsRange(first, last)


@lru_cache(maxsize=256)
def _format_problem(fmt: str) -> str | None:
    """What DuckDB says is wrong with a strptime format (None: nothing); asked once per format."""
    con = duckdb.connect()
    try:
        con.execute("SELECT try_strptime('', ?)", [fmt]).fetchall()
    except duckdb.Error as exc:
        return str(exc).splitlines()[0].removeprefix("Invalid Input Error: ")
    finally:
        con.close()
    return None


def parse_ts_formats(formats: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Check ``--ts-format`` values: strptime formats DuckDB understands, or one epoch unit (epoch_s …)."""
    if formats is None:
        return ()
    items = [formats] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for f in items:
        if not isinstance(f, str) or not f.strip():
            raise InvalidParameterError("--ts-format cannot be empty; give a strptime format such as %Y%m%d.")
        f = f.strip()
        if f.lower() in EPOCH_UNITS or f.lower() == "epoch":
            out.append("epoch_s" if f.lower() == "epoch" else f.lower())
            continue
        if "%" not in f:
            raise InvalidParameterError(
                f"--ts-format {f!r} has no % code; give a strptime format such as %Y%m%d or %d/%m/%Y %H:%M, "
                f"or one of {', '.join(EPOCH_UNITS)}."
            )
        problem = _format_problem(f)
        if problem:
            raise InvalidParameterError(f"--ts-format {f!r} is not a strptime format: {problem}")
        out.append(f)
    epochs = [f for f in out if f in EPOCH_UNITS]
    if epochs and len(out) > 1:
        raise InvalidParameterError(f"--ts-format {epochs[0]} reads every ts as a number; give it alone.")
    return tuple(out)
