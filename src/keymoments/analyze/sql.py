"""Hand-written DuckDB SQL over an analysis's (filtered) Ibis events table.

Ibis builds and compiles an expression per query, which costs tens of milliseconds each, and it cannot
express some of the aggregates a single pass needs (``bit_or`` masks, ``list_position`` codes). An analysis
that runs several group-bys over the same events compiles the events once with :class:`EventsSQL` and writes
its queries against the name ``ev``::

    q = EventsSQL(filter_events(store, channel="app"))
    q.df("SELECT touchpoint, count(*) AS n FROM ev GROUP BY ALL")

Each query inlines the compiled events as a common table expression, so DuckDB pushes projections and
filters into the scan exactly as it would for the Ibis expression. Inputs on another Ibis backend are read
into DuckDB first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import ibis

from keymoments.quoting import quote_literal

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

__all__ = ["EventsSQL", "sql_list", "sql_str"]


def sql_str(value: str) -> str:
    """A SQL string literal (:func:`keymoments.quoting.quote_literal`)."""
    return quote_literal(str(value))


def sql_list(values: Iterable[str]) -> str:
    """A DuckDB list literal of strings: ``['a', 'b']``."""
    return "[" + ", ".join(sql_str(v) for v in values) + "]"


class EventsSQL:
    """Run DuckDB SQL over an Ibis table expression, which the SQL calls ``ev``.

    ``columns`` extra ``name: SQL expression`` pairs are added to ``ev`` (derived once, used by many queries).
    """

    def __init__(self, t: ir.Table, columns: dict[str, str] | None = None) -> None:
        backend = ibis.get_backend(t)
        if backend.name != "duckdb":
            t = ibis.memtable(t.to_pyarrow())
            backend = ibis.get_backend(t)
        # registers the expression's in-memory tables (a pandas input) on the connection; ibis has no public
        # call that does this without running the expression
        backend._run_pre_execute_hooks(t)
        self.columns = list(t.columns)
        extra = "".join(f", {expr} AS {name}" for name, expr in (columns or {}).items())
        self._ev = f"ev AS (SELECT *{extra} FROM ({backend.compile(t)}))"
        self._con = backend.con

    def df(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` (which reads ``ev``, and may start with its own ``WITH``) as a DataFrame."""
        head, _, rest = sql.lstrip().partition(" ")
        if head.upper() == "WITH":
            return self._con.execute(f"WITH {self._ev},\n{rest}").df()
        return self._con.execute(f"WITH {self._ev}\n{sql}").df()
