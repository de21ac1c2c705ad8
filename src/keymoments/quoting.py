"""The one place that turns a name or a value from data into SQL text.

Every outcome, attribute, column or header name that comes from data (or from a user) reaches SQL only through
``quote_ident``; every literal that cannot be a bound parameter goes through ``quote_literal``. Both are total:
any string (quotes, semicolons, newlines, unicode, 1,000 characters) comes out as exactly one SQL token that
means that string and nothing else, in DuckDB, PostgreSQL and Spark SQL alike (``dialect="spark"`` uses
backticks). A NUL character cannot be stored in a name and is refused.
"""

from __future__ import annotations

__all__ = ["quote_ident", "quote_literal"]

MAX_NAME_LENGTH = 1024


def _check(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"A SQL {what} must be a string; got {type(name).__name__}.")
    if "\x00" in name:
        raise ValueError(f"A SQL {what} cannot contain a NUL character; got {name[:40]!r}.")
    return name


def quote_ident(name: str, dialect: str = "duckdb") -> str:
    '''``name`` as one quoted SQL identifier, each double quote inside doubled (DuckDB, PostgreSQL).

    ``dialect="spark"`` quotes with backticks, doubling any backtick inside.
    '''
    name = _check(name, "name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"A name may be at most {MAX_NAME_LENGTH} characters; got one of {len(name)}.")
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    '''``value`` as one SQL string literal, each single quote inside doubled; prefer bound parameters.'''
    value = _check(value, "string literal")
    return "'" + value.replace("'", "''") + "'"
