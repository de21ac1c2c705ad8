"""Key-driver statistics against references: statsmodels, a hand-computed relative-weights example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from keymoments.analyze.drivers import build_design, fit_drivers, fit_logistic, relative_weights


def _data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    mood = rng.normal(0, 0.3, n)
    V = pd.DataFrame({tp: np.clip(mood + rng.normal(0, 0.4, n), -1, 1) for tp in "abcd"})
    V.loc[rng.random(n) < 0.35, "c"] = np.nan  # c is not met by everyone: missing, not bad
    C = pd.DataFrame(
        {"segment": rng.choice(["biz", "leisure", "family"], n), "tenure": rng.exponential(4, n)}
    )
    return rng, V, C


def _statsmodels_design(d):
    return sm.add_constant(pd.DataFrame(d.X + d.means, columns=d.names))


def test_ols_coefficients_match_statsmodels():
    rng, V, C = _data()
    y = 1 + 2 * V["a"] + 0.5 * V["c"].fillna(0) + 0.3 * (C["segment"] == "biz") + rng.normal(0, 1, len(V))
    d = build_design(V, C)
    res = fit_drivers(d, y.to_numpy(), binary=False, n_boot=200)
    ref = sm.OLS(y.to_numpy(), _statsmodels_design(d)).fit()
    np.testing.assert_allclose(res.coef.to_numpy(), ref.params.to_numpy(), rtol=1e-8, atol=1e-10)
    assert res.r2 == pytest.approx(ref.rsquared, rel=1e-10)
    # block-bootstrap standard errors agree with the analytic ones to within sampling noise
    np.testing.assert_allclose(res.impact_se, ref.bse.to_numpy()[1:5], rtol=0.25)
    assert 0.0 < res.model_fit["r2_cv"] <= res.r2


def test_logistic_coefficients_and_marginal_effects_match_statsmodels():
    rng, V, C = _data(seed=1)
    eta = -0.5 + 2.0 * V["a"] + 0.8 * V["b"]
    y = (rng.random(len(V)) < 1 / (1 + np.exp(-eta))).astype(float).to_numpy()
    d = build_design(V, C)
    res = fit_drivers(d, y, binary=True, n_boot=400)
    ref = sm.Logit(y, _statsmodels_design(d)).fit(disp=0)
    np.testing.assert_allclose(res.coef.to_numpy(), ref.params.to_numpy(), rtol=1e-6, atol=1e-8)
    me = ref.get_margeff(at="overall")
    np.testing.assert_allclose(res.impact, me.margeff[:4], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.impact_se, me.margeff_se[:4], rtol=0.25)
    assert 0.6 < res.model_fit["auc_cv"] <= res.model_fit["auc"] + 0.02


def test_fit_logistic_reports_separation():
    X1 = np.column_stack([np.ones(20), np.arange(20.0)])
    y = (np.arange(20) >= 10).astype(float)
    _, converged = fit_logistic(X1, y)
    assert not converged


def _rw_by_hand_two_predictors(r12, r1y, r2y):
    # Rxx^(1/2) for [[1, r], [r, 1]] in closed form: [[a, b], [b, a]]
    a = (np.sqrt(1 + r12) + np.sqrt(1 - r12)) / 2
    b = (np.sqrt(1 + r12) - np.sqrt(1 - r12)) / 2
    lam = np.array([[a, b], [b, a]])
    beta = np.linalg.solve(lam, [r1y, r2y])  # y on the orthogonal counterparts
    return (lam**2) @ (beta**2)


def test_relative_weights_hand_computed_example():
    r12, r1y, r2y = 0.5, 0.6, 0.4
    R = np.array([[1, r12, r1y], [r12, 1, r2y], [r1y, r2y, 1]])
    got = relative_weights(R)
    want = _rw_by_hand_two_predictors(r12, r1y, r2y)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # R² = (r1y² + r2y² - 2 r1y r2y r12) / (1 - r12²) = 0.37333...
    assert got.sum() == pytest.approx((0.36 + 0.16 - 2 * 0.6 * 0.4 * 0.5) / 0.75)
    # by hand: a = 0.965926, b = 0.258819, beta = Lambda^-1 r = [0.549667, 0.266828],
    # eps1 = a² b1² + b² b2² = 0.286667, eps2 = b² b1² + a² b2² = 0.086667
    np.testing.assert_allclose(got, [0.286667, 0.086667], atol=1e-5)
    # uncorrelated predictors: each weight is its squared validity
    np.testing.assert_allclose(
        relative_weights(np.array([[1, 0, 0.3], [0, 1, 0.5], [0.3, 0.5, 1]])), [0.09, 0.25]
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.integers(1, 7), rho=st.floats(0, 0.9))
def test_relative_weights_are_nonnegative_and_sum_to_r2(seed, p, rho):
    rng = np.random.default_rng(seed)
    n = 200
    common = rng.normal(size=(n, 1))
    X = np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + rng.normal(size=n) * rng.uniform(0.1, 3)
    cov = np.cov(np.column_stack([X, y]), rowvar=False)
    w = relative_weights(cov)
    r2 = sm.OLS(y, sm.add_constant(X)).fit().rsquared
    assert np.all(w >= -1e-12)
    assert w.sum() == pytest.approx(r2, rel=1e-7, abs=1e-10)


def test_missing_touchpoint_is_not_bad():
    """Customers who skip a touchpoint are not scored as bad there: its slope comes from those who met it."""
    rng = np.random.default_rng(3)
    n = 4000
    V = pd.DataFrame({"a": rng.uniform(-1, 1, n), "lounge": rng.uniform(-1, 1, n)})
    skipped = rng.random(n) < 0.5
    V.loc[skipped, "lounge"] = np.nan
    y = 1.0 * V["a"] + np.where(skipped, 2.0, 0.5 * V["lounge"].fillna(0)) + rng.normal(0, 0.3, n)
    res = fit_drivers(build_design(V), y.to_numpy(), binary=False, n_boot=200)
    lo, hi = res.impact_ci[1]
    assert lo < 0.5 < hi


def test_null_coefficient_intervals_have_nominal_coverage():
    covered = 0
    reps = 60
    for seed in range(reps):
        rng = np.random.default_rng(100 + seed)
        n = 300
        V = pd.DataFrame(rng.uniform(-1, 1, (n, 3)), columns=["a", "b", "null"])
        y = V["a"] + 0.5 * V["b"] + rng.normal(0, 1, n)
        res = fit_drivers(build_design(V), y.to_numpy(), binary=False, n_boot=200, seed=seed)
        lo, hi = res.impact_ci[2]
        covered += lo <= 0 <= hi
    assert covered / reps >= 0.85  # nominal 95%; 60 draws leave room for noise
