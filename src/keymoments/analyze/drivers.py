"""Key-driver statistics: multivariable impact, relative weights and fast bootstrap intervals.

The numbers behind :class:`~keymoments.analyze.moments.MomentsOfTruth`, on plain numpy arrays.

**Design.** One row per customer (or journey). Each touchpoint contributes its *experience* (mean valence in
[-1, 1] there). A touchpoint the customer never met is *missing, not bad*: its valence is imputed at the
touchpoint's observed mean and a 0/1 "not experienced" indicator enters the model beside it (the
missing-indicator method). With the indicator in the model the valence slope is identified only from the
customers who did meet the touchpoint, and the indicator absorbs any level difference of those who did not. For a touchpoint the customer never met the
valence does not exist (it is not an unrecorded value), so this conditional model is the right one rather than an
approximation; the known bias of the missing-indicator method concerns values that exist but went unrecorded
(a survey item skipped by someone who did experience it), where it behaves like mean imputation.
Customer attributes (segment, tenure, class…) enter as controls: numbers as they are (mean-imputed, with an
indicator when missing), categories one-hot against their most frequent level.

**Impact** of a touchpoint = the change of the outcome for +1 valence unit at that touchpoint, holding the
other touchpoints and the controls fixed: moving one customer from a *bad* (-0.5) to a *good* (+0.5)
experience. For a continuous outcome it is the OLS slope; for a binary one, the logistic model's average
marginal effect (probability points), ``beta_j * mean(p (1 - p))``.

**Share of explained variance** = Johnson's (2000) relative weights: regress the outcome on the orthogonal
counterpart ``Z = X R^{-1/2}`` of the (correlated) predictors and split R² back to them. The weights are
non-negative and sum to the model's R² (for a binary outcome: the linear-probability R²), so correlated
touchpoints share credit instead of one of them taking it all.

**Intervals: a block bootstrap on sufficient statistics.** Refitting a model on 1,000 resamples of a million
rows is too slow, so rows are split once, at random, into ``m`` blocks (``m = min(n, 1000)``); each block's
moment matrix ``Z_k' Z_k`` (for the logistic model: its score ``g_k`` and Hessian ``H_k`` at the full-sample
estimate) is computed in one pass. A bootstrap replicate resamples *blocks* with multinomial weights ``w``
and recomputes the estimate from ``sum_k w_k M_k``: exactly the nonparametric bootstrap of the ``m`` i.i.d.
block sums, of which OLS and relative weights are smooth functions, so percentile intervals are consistent
(with ``m = n`` it is the ordinary row bootstrap). The logistic replicate is the one-step (estimating-
equation) bootstrap ``beta* = beta + H_w^{-1} g_w``, first-order equivalent to refitting. Cost: one pass over
the rows, then ``B`` small ``q x q`` problems.

**Model fit** is cross-validated over 5 folds of blocks: out-of-fold R² (from the fold moment matrices) and,
for binary outcomes, the out-of-fold AUC of logistic models refitted on each training fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DesignMatrix",
    "DriverResult",
    "build_design",
    "fit_drivers",
    "fit_logistic",
    "ols_from_moments",
    "relative_weights",
]

#: At most this many bootstrap blocks (rows are grouped into blocks beyond it).
MAX_BLOCKS = 1000
#: Categories kept per categorical control (the rest pooled into "other").
MAX_LEVELS = 15


@dataclass
class DesignMatrix:
    """The model's predictors: valence columns first, then indicators and controls."""

    X: np.ndarray  # n x q, float64, columns centred at their full-sample mean
    names: list[str]  # q column names
    touchpoints: list[str]  # touchpoints with an estimable valence column
    valence_cols: list[int]  # their column positions in X
    dropped: dict[str, str] = field(default_factory=dict)  # touchpoint -> why it has no estimate
    means: np.ndarray | None = None  # the column means removed from X


def build_design(valence: pd.DataFrame, controls: pd.DataFrame | None = None) -> DesignMatrix:
    """Predictors from a valence frame (NaN = not experienced) and optional customer attributes."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    tps: list[str] = []
    vcols: list[int] = []
    dropped: dict[str, str] = {}
    indicators: list[tuple[str, np.ndarray]] = []
    n = len(valence)
    for tp in valence.columns:
        v = pd.to_numeric(valence[tp], errors="coerce").to_numpy(dtype=float)
        seen = ~np.isnan(v)
        k = int(seen.sum())
        if k < 2:
            dropped[str(tp)] = f"experienced by {k} customer(s)"
            continue
        mu = float(v[seen].mean())
        if float(np.ptp(v[seen])) == 0.0:
            dropped[str(tp)] = "every experience there has the same valence"
            continue
        vcols.append(len(cols))
        tps.append(str(tp))
        cols.append(np.where(seen, v, mu))
        names.append(str(tp))
        if 0 < k < n:
            indicators.append((f"not experienced: {tp}", (~seen).astype(float)))
    for name, ind in indicators:
        cols.append(ind)
        names.append(name)
    if controls is not None and len(controls.columns):
        for c in controls.columns:
            for name, col in _encode_control(str(c), controls[c]):
                cols.append(col)
                names.append(name)
    X = np.column_stack(cols) if cols else np.empty((n, 0))
    keep = [i for i in range(X.shape[1]) if i in vcols or np.ptp(X[:, i]) > 0]
    if len(keep) < X.shape[1]:
        remap = {old: new for new, old in enumerate(keep)}
        X = X[:, keep]
        names = [names[i] for i in keep]
        vcols = [remap[i] for i in vcols]
    means = X.mean(axis=0) if X.shape[1] else np.empty(0)
    return DesignMatrix(X - means, names, tps, vcols, dropped, means)


def _encode_control(name: str, s: pd.Series) -> list[tuple[str, np.ndarray]]:
    if pd.api.types.is_datetime64_any_dtype(s):
        s = (s - s.min()).dt.total_seconds() / 86400.0  # a date becomes days since the earliest
    num = pd.to_numeric(s, errors="coerce")
    nonnull = s.notna()
    if nonnull.any() and num[nonnull].notna().all() and s[nonnull].nunique() > 2:
        v = num.to_numpy(dtype=float)
        miss = np.isnan(v)
        out = [(name, np.where(miss, np.nanmean(v), v))]
        if miss.any():
            out.append((f"{name} missing", miss.astype(float)))
        return out
    lab = s.astype("string").fillna("(missing)")
    counts = lab.value_counts()
    if len(counts) > 50 and counts.iloc[0] < 0.01 * len(s):
        return []  # an identifier-like column, not an attribute
    top = list(counts.index[:MAX_LEVELS])
    lab = lab.where(lab.isin(top), "other")
    levels = [x for x in lab.value_counts().index[1:]]  # drop the most frequent level (the reference)
    arr = lab.to_numpy()
    return [(f"{name}={lv}", (arr == lv).astype(float)) for lv in levels]


# -- linear algebra ------------------------------------------------------------------------------------


def _psd_solve(A: np.ndarray, b: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Solve A x = b for symmetric PSD A (stacked), with a pseudo-inverse for singular directions.

    Jacobi-scaled first (``D A D`` with ``D = diag(A)^-1/2``), so the tolerance does not depend on the units
    of the predictors.
    """
    d = np.sqrt(np.clip(np.diagonal(A, axis1=-2, axis2=-1), 0, None))
    d = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    As = A * d[..., :, None] * d[..., None, :]
    w, V = np.linalg.eigh(As)
    tol = rtol * np.maximum(w.max(axis=-1, keepdims=True), 1e-300)
    inv = np.where(w > tol, 1.0 / np.where(w > tol, w, 1.0), 0.0)
    Vtb = np.einsum("...ji,...j->...i", V, b * d)
    return d * np.einsum("...ij,...j->...i", V, inv * Vtb)


def _moments_to_cov(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From uncentred moments of [1, X, y] (stacked): n, means of [X, y], covariance of [X, y]."""
    n = M[..., 0, 0]
    mean = M[..., 0, 1:] / n[..., None]
    cov = M[..., 1:, 1:] / n[..., None, None] - mean[..., :, None] * mean[..., None, :]
    return n, mean, cov


def ols_from_moments(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slopes and R² from uncentred moment matrices of ``[1, X, y]`` (stacked on leading axes)."""
    _, _, cov = _moments_to_cov(M)
    Sxx, Sxy, syy = cov[..., :-1, :-1], cov[..., :-1, -1], cov[..., -1, -1]
    beta = _psd_solve(Sxx, Sxy)
    r2 = np.einsum("...i,...i->...", beta, Sxy) / np.where(syy > 0, syy, np.nan)
    return beta, r2


def relative_weights(cov: np.ndarray) -> np.ndarray:
    """Johnson's relative weights from the covariance (or correlation) of ``[X, y]``, y last; stacked.

    Returns the weights of the predictors; they are >= 0 and sum to the R² of y on X.
    """
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0, None))
    sd = np.where(sd > 0, sd, 1.0)
    R = cov / (sd[..., :, None] * sd[..., None, :])
    Rxx, rxy = R[..., :-1, :-1], R[..., :-1, -1]
    w, V = np.linalg.eigh(Rxx)
    tol = 1e-10 * np.maximum(w.max(axis=-1, keepdims=True), 1e-300)
    w = np.where(w > tol, w, 0.0)
    lam = np.einsum("...ij,...j,...kj->...ik", V, np.sqrt(w), V)  # Rxx^(1/2), symmetric
    inv_sqrt = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
    beta = np.einsum("...ij,...j,...kj,...k->...i", V, inv_sqrt, V, rxy)  # Rxx^(-1/2) rxy
    return np.einsum("...ij,...j->...i", lam**2, beta**2)


# -- logistic ------------------------------------------------------------------------------------------


#: rows per chunk of the logistic fit's sums: its memory beyond the design is a chunk's, whatever the rows
ROW_CHUNK = 65_536


def fit_logistic(
    X1: np.ndarray,
    y: np.ndarray,
    beta0: np.ndarray | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    intercept: bool = False,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Maximum-likelihood logistic regression by Newton-Raphson (IRLS) with step halving.

    ``X1`` includes the intercept column; with ``intercept=True`` it does not, and the intercept is the first
    coefficient all the same (no copy of the design with a column of ones is made). ``rows``: a boolean mask of
    the rows fitted on (the others weigh nothing; no copy of them is made). The Hessian is summed over chunks of
    :data:`ROW_CHUNK` rows. Returns (coefficients, converged).
    """
    from scipy.special import expit, log_expit

    k = X1.shape[1] + intercept
    beta = np.zeros(k) if beta0 is None else beta0.astype(float).copy()
    on = None if rows is None else np.asarray(rows, dtype=float)

    def eta_of(b: np.ndarray) -> np.ndarray:
        return X1 @ b[1:] + b[0] if intercept else X1 @ b

    def loglik(b: np.ndarray) -> float:
        eta = eta_of(b)
        ll = y * log_expit(eta) + (1 - y) * log_expit(-eta)
        return float(np.sum(ll if on is None else ll * on))

    ll = loglik(beta)
    for _ in range(max_iter):
        p = expit(eta_of(beta))
        w = p * (1 - p)
        r = y - p
        if on is not None:
            w, r = w * on, r * on
        g = np.concatenate([[r.sum()], X1.T @ r]) if intercept else X1.T @ r
        H = _weighted_gram(X1, w, intercept)
        step = _psd_solve(H, g)
        t = 1.0
        while True:
            new = beta + t * step
            ll_new = loglik(new)
            if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-4:
                break
            t /= 2
        beta, ll_old, ll = new, ll, ll_new
        if np.max(np.abs(t * step)) < tol or abs(ll - ll_old) < tol * (abs(ll) + 1):
            return beta, bool(np.all(np.abs(beta) < 30))
    return beta, False


def _weighted_gram(X: np.ndarray, w: np.ndarray, intercept: bool) -> np.ndarray:
    """``X1' diag(w) X1`` (``X1`` = ``[1, X]`` when ``intercept``), summed over chunks of rows."""
    q = X.shape[1]
    H = np.zeros((q + intercept, q + intercept))
    for start in range(0, X.shape[0], ROW_CHUNK):
        Xc, wc = X[start : start + ROW_CHUNK], w[start : start + ROW_CHUNK]
        Wc = Xc * wc[:, None]
        H[intercept:, intercept:] += Wc.T @ Xc
        if intercept:
            col = Wc.sum(axis=0)
            H[0, 1:] += col
            H[1:, 0] += col
            H[0, 0] += wc.sum()
    return H


def _with_ones(*parts: np.ndarray) -> np.ndarray:
    """``[1, *parts]`` for a block of rows."""
    return np.column_stack([np.ones(len(parts[0])), *parts])


def _gram(Z: np.ndarray) -> np.ndarray:
    return Z.T @ Z


# -- the fit -------------------------------------------------------------------------------------------


@dataclass
class DriverResult:
    """What :func:`fit_drivers` estimates, per touchpoint in ``touchpoints`` order."""

    touchpoints: list[str]
    impact: np.ndarray
    impact_ci: np.ndarray  # (T, 2)
    impact_se: np.ndarray
    importance: np.ndarray  # relative weights (R² units)
    importance_ci: np.ndarray  # (T, 2)
    r2: float
    r2_ci: tuple[float, float]
    controls_importance: float
    coef: pd.Series  # every predictor's slope on the model's scale (log-odds for binary)
    model_fit: dict[str, Any]
    n: int
    n_boot: int
    n_blocks: int
    binary: bool
    converged: bool = True


def _blocks(n: int, rng: np.random.Generator, max_blocks: int) -> list[np.ndarray]:
    m = int(min(n, max_blocks))
    return [np.sort(b) for b in np.array_split(rng.permutation(n), m)]


def fit_drivers(
    design: DesignMatrix,
    y: np.ndarray,
    *,
    binary: bool,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    folds: int = 5,
    max_blocks: int = MAX_BLOCKS,
) -> DriverResult:
    """Fit the key-driver model and its block-bootstrap intervals (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    # thousands of tiny q x q decompositions: BLAS threads only add overhead there (7 s -> 0.4 s per 1,000)
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_drivers(
            design,
            y,
            binary=binary,
            n_boot=n_boot,
            level=level,
            seed=seed,
            folds=folds,
            max_blocks=max_blocks,
        )


def _fit_drivers(
    design: DesignMatrix,
    y: np.ndarray,
    *,
    binary: bool,
    n_boot: int,
    level: float,
    seed: int,
    folds: int,
    max_blocks: int,
) -> DriverResult:
    rng = np.random.default_rng(seed)
    X = design.X
    n, q = X.shape
    y = np.asarray(y, dtype=float)
    yc = y - y.mean()
    blocks = _blocks(n, rng, max_blocks)
    m = len(blocks)
    Mk = np.stack([_gram(_with_ones(X[b], yc[b])) for b in blocks])  # (m, q+2, q+2); no [1, X, y] copy of X
    M = Mk.sum(axis=0)
    W = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(float)  # (B, m)
    Mb = (W @ Mk.reshape(m, -1)).reshape(n_boot, q + 2, q + 2)
    alpha = (1 - level) / 2
    vc = design.valence_cols

    # linear model, relative weights (both kinds of outcome)
    beta_lin, r2 = ols_from_moments(M)
    _, _, cov = _moments_to_cov(M)
    rw = relative_weights(cov)
    beta_lin_b, r2_b = ols_from_moments(Mb)
    _, _, cov_b = _moments_to_cov(Mb)
    rw_b = relative_weights(cov_b)
    imp = rw[vc]
    imp_ci = np.quantile(rw_b[:, vc], [alpha, 1 - alpha], axis=0).T
    r2_ci = tuple(float(x) for x in np.nanquantile(r2_b, [alpha, 1 - alpha]))
    ctrl = float(rw.sum() - imp.sum())

    fold_of_block = np.arange(m) % folds
    fit: dict[str, Any] = {"r2": float(r2), "r2_ci": list(r2_ci), "folds": folds}
    # out-of-fold R² of the linear model from fold moments
    sse = sst = 0.0
    for f in range(folds):
        Mf = Mk[fold_of_block == f].sum(axis=0)
        Mt = M - Mf
        if Mf[0, 0] == 0 or Mt[0, 0] < 2:
            continue
        bt, _ = ols_from_moments(Mt)
        nt, mean_t, _ = _moments_to_cov(Mt)
        a = mean_t[-1] - bt @ mean_t[:-1]
        coef = np.concatenate([[a], bt])  # on [1, X]
        A, b, yy = Mf[:-1, :-1], Mf[:-1, -1], Mf[-1, -1]
        sse += float(yy - 2 * coef @ b + coef @ A @ coef)
        c = mean_t[-1]
        sst += float(yy - 2 * c * Mf[0, -1] + Mf[0, 0] * c * c)
    fit["r2_cv"] = 1 - sse / sst if sst > 0 else float("nan")
    converged = True

    if not binary:
        impact = beta_lin[vc]
        boot = beta_lin_b[:, vc]
        const = y.mean() - beta_lin @ (design.means if design.means is not None else np.zeros(q))
        coef_s = pd.Series(np.concatenate([[const], beta_lin]), ["const", *design.names])
        fit["metric"] = "r2_cv"
    else:
        from scipy.special import expit
        from sklearn.metrics import roc_auc_score

        # the design with its intercept column is never copied whole: a block's rows at a time
        beta, converged = fit_logistic(X, y, intercept=True)
        p = expit(X @ beta[1:] + beta[0])
        wgt = p * (1 - p)
        Hk, gk, dwk = (np.empty((m, q + 1, q + 1)), np.empty((m, q + 1)), np.empty((m, q + 1)))
        for k, b in enumerate(blocks):
            Xb = _with_ones(X[b])
            Hk[k] = (Xb * wgt[b][:, None]).T @ Xb
            gk[k] = Xb.T @ (y[b] - p[b])
            dwk[k] = Xb.T @ (wgt[b] * (1 - 2 * p[b]))  # d sum(w) / d beta
        sk = np.array([wgt[b].sum() for b in blocks])
        nk = np.array([len(b) for b in blocks], dtype=float)
        Hb = (W @ Hk.reshape(m, -1)).reshape(n_boot, q + 1, q + 1)
        gb = W @ gk
        beta_b = beta + _psd_solve(Hb, gb)
        # mean p(1-p) at beta*, to first order: the replicate's AME moves with its slope (delta method)
        scale_b = (W @ sk + np.einsum("bj,bj->b", beta_b - beta, W @ dwk)) / (W @ nk)
        impact = beta[1:][vc] * wgt.mean()
        boot = beta_b[:, 1:][:, vc] * scale_b[:, None]
        const = beta[0] - beta[1:] @ (design.means if design.means is not None else np.zeros(q))
        coef_s = pd.Series(np.concatenate([[const], beta[1:]]), ["const", *design.names])
        # cross-validated AUC: refit on each training fold (warm start), score the held-out fold
        oof = np.empty(n)
        for f in range(folds):
            test = (
                np.concatenate([blocks[k] for k in range(m) if fold_of_block[k] == f])
                if m
                else np.array([], int)
            )
            if len(test) == 0:
                continue
            train = np.ones(n, bool)
            train[test] = False
            bf, _ = fit_logistic(X, y, beta, max_iter=25, tol=1e-8, intercept=True, rows=train)
            oof[test] = (X @ bf[1:] + bf[0])[test]
        both = 0 < y.sum() < n
        fit["auc_cv"] = float(roc_auc_score(y, oof)) if both else float("nan")
        fit["auc"] = float(roc_auc_score(y, X @ beta[1:] + beta[0])) if both else float("nan")
        fit["metric"] = "auc_cv"
        fit["converged"] = converged
    ci = np.quantile(boot, [alpha, 1 - alpha], axis=0).T
    se = boot.std(axis=0, ddof=1)
    return DriverResult(
        touchpoints=list(design.touchpoints),
        impact=np.asarray(impact, float),
        impact_ci=ci,
        impact_se=se,
        importance=imp,
        importance_ci=imp_ci,
        r2=float(r2),
        r2_ci=r2_ci,  # type: ignore[arg-type]
        controls_importance=ctrl,
        coef=coef_s,
        model_fit=fit,
        n=n,
        n_boot=n_boot,
        n_blocks=m,
        binary=binary,
        converged=converged,
    )
