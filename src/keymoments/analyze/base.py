"""What every analysis shares: the fitter shape and small statistics helpers.

Analyses follow the lifelines / scikit-learn habit::

    mot = MomentsOfTruth(outcome="retained").fit(store)   # validate, compute, return self
    mot.summary            # a pandas DataFrame
    mot.print_summary()    # a human table
    mot.to_dict()          # the JSON the CLI's --json prints
    mot.tables()           # its tables by name, as DataFrames (what --out FILE.csv|.parquet writes)
    mot.to_frame()         # the main table (or .to_frame("transitions"): one by name)
    mot                    # renders as HTML in a notebook (_repr_html_)

``__init__`` only stores parameters; learned values end in ``_``.
"""

from __future__ import annotations

import html
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from keymoments.events import did_you_mean
from keymoments.exceptions import InvalidParameterError, NotEnoughDataError, SmallSampleWarning

__all__ = [
    "Analysis",
    "bootstrap_ci",
    "check_choice",
    "mean_ci",
    "no_outcomes",
    "proportion_ci",
    "warn_small_sample",
]


class Analysis:
    """Base class of every fitter-style analysis."""

    #: the title used in summaries and reports
    title: str = "Analysis"

    def fit(self, *args: Any, **kwargs: Any) -> Analysis:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotEnoughDataError(f"{type(self).__name__} is not fitted yet; call .fit(store) first.")

    @property
    def summary(self) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def tables(self) -> dict[str, pd.DataFrame]:
        """The analysis's tables by name, the main one first: the lists of records of :meth:`to_dict` (the JSON
        of ``--json``) as DataFrames; what ``--out FILE`` writes and the dashboard's CSV links serve."""
        from keymoments.present import tables_of, to_jsonable

        self._check_fitted()
        return tables_of(to_jsonable(self.to_dict()))

    def to_frame(self, table: str | None = None) -> pd.DataFrame:
        """One of :meth:`tables` as a DataFrame: the main one, or the one named ``table``."""
        tables = self.tables()
        if table is None:
            if not tables:
                raise NotEnoughDataError(f"{type(self).__name__} has no table.")
            return next(iter(tables.values()))
        check_choice(type(self).__name__ + ".to_frame", "table", table, list(tables))
        return tables[table]

    def to_json(self, **kwargs: Any) -> str:
        from keymoments.present import to_jsonable

        return json.dumps(to_jsonable(self.to_dict()), **kwargs)

    def print_summary(self) -> None:
        from keymoments.cli.common import print_table

        print_table(self.summary, title=self.title)

    def _repr_html_(self) -> str:
        if not self.fitted:
            return f"<p>{html.escape(type(self).__name__)} (not fitted)</p>"
        return f"<h4>{html.escape(self.title)}</h4>" + self.summary.to_html(index=False, float_format="{:.3f}".format)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def check_choice(owner: str, param: str, value: Any, choices: list[Any] | tuple[Any, ...] | set[Any]) -> None:
    """Raise the one-voice parameter error when ``value`` is not among ``choices``."""
    if value not in choices:
        raise InvalidParameterError(
            f"The {param!r} parameter of {owner} must be one of {sorted(map(str, choices))}. "
            f"Got {value!r} instead.{did_you_mean(str(value), choices)}"
        )


def no_outcomes(owner: str, outcome: str | None = None) -> NotEnoughDataError:
    """The refusal of an analysis that needs an outcome when the store holds none, saying what to load."""
    such = f" such as {outcome!r}" if outcome else ""
    return NotEnoughDataError(
        f"No outcomes in the store: {owner} relates the journeys to an outcome{such}; load one with "
        "`keymoments ingest-outcomes FILE --key customer_id` (one row per customer, e.g. a retained yes/no column)."
    )


def warn_small_sample(what: str, n: int, minimum: int = 30) -> bool:
    """Warn (SmallSampleWarning) when ``n`` is below ``minimum``; return whether it was."""
    if n < minimum:
        warnings.warn(
            f"{what} rests on {n} observations (fewer than {minimum}); treat its interval as rough.",
            SmallSampleWarning,
            stacklevel=3,
        )
        return True
    return False


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean with a t-interval: (mean, low, high, n). NaNs are dropped; n < 2 gives NaN bounds."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(x.mean())
    if n < 2:
        return m, float("nan"), float("nan"), n
    se = float(x.std(ddof=1)) / np.sqrt(n)
    t = float(stats.t.ppf(0.5 + level / 2, n - 1))
    return m, m - t * se, m + t * se, n


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Wilson score interval for a proportion: (p, low, high); NaN when n == 0."""
    from scipy import stats

    if n == 0:
        return float("nan"), float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(
    data: np.ndarray,
    statistic: Any = np.mean,
    *,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the rows of ``data`` (seeded, deterministic)."""
    x = np.asarray(data)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    stats_ = np.array([statistic(x[i]) for i in idx])
    alpha = (1 - level) / 2
    return float(np.quantile(stats_, alpha)), float(np.quantile(stats_, 1 - alpha))
