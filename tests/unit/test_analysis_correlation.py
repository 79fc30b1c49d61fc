"""Spearman ρ, bootstrap CI, permutation p-value and BH against scipy and naive implementations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from mechsel.analysis import benjamini_hochberg, spearman, spearman_test
from mechsel.analysis.correlation import bootstrap_indices, exceeds_bound_p, fisher_interval, spearman_p_value
from mechsel.errors import ConfigError, DataError


def _data(n=40, r=0.5, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = r * x + rng.normal(size=n)
    return x, y


def test_spearman_matches_scipy_with_ties_and_nans():
    x, y = _data(50)
    x = np.round(x, 1)  # ties
    x[3] = np.nan
    y[7] = np.inf
    keep = np.isfinite(x) & np.isfinite(y)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic, abs=1e-12)


def test_spearman_undefined_cases_give_nan():
    assert np.isnan(spearman([1, 2], [3, 4]))
    assert np.isnan(spearman(np.ones(10), np.arange(10)))
    res = spearman_test(np.ones(10), np.arange(10), n_boot=10, n_perm=10, p_method="permutation", ci_method="bootstrap")
    assert np.isnan(res.rho) and np.isnan(res.p_value) and res.n == 10


def test_bootstrap_ci_matches_naive_loop():
    x, y = _data(30)
    res = spearman_test(x, y, ci_method="bootstrap", n_boot=300, seed=7)
    idx = bootstrap_indices(30, 300, 7)
    naive = np.array([stats.spearmanr(x[i], y[i]).statistic for i in idx])
    lo, hi = np.percentile(naive, [2.5, 97.5])
    assert res.ci_low == pytest.approx(lo, abs=1e-10)
    assert res.ci_high == pytest.approx(hi, abs=1e-10)
    assert res.ci_low < res.rho < res.ci_high
    assert res.p_value == pytest.approx(stats.spearmanr(x, y).pvalue)


def test_bootstrap_is_seeded():
    x, y = _data(30)
    a = spearman_test(x, y, n_boot=200, n_perm=200, seed=3, p_method="permutation", ci_method="bootstrap")
    b = spearman_test(x, y, n_boot=200, n_perm=200, seed=3, p_method="permutation", ci_method="bootstrap")
    c = spearman_test(x, y, n_boot=200, n_perm=200, seed=4, p_method="permutation", ci_method="bootstrap")
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_permutation_p_value_approximates_exact_enumeration():
    x = np.array([0.3, 1.2, -0.5, 2.2, 0.9, 1.7, -1.1])
    y = np.array([0.1, 0.8, 0.2, 1.9, -0.2, 1.1, -0.7])
    rho = stats.spearmanr(x, y).statistic
    perms = [stats.spearmanr(x, y[list(p)]).statistic for p in itertools.permutations(range(7))]
    exact = np.mean(np.abs(perms) >= abs(rho) - 1e-12)
    res = spearman_test(x, y, n_perm=20000, seed=0, p_method="permutation")
    assert res.rho == pytest.approx(rho)
    assert res.p_value == pytest.approx(exact, abs=0.01)


def test_permutation_p_value_extremes():
    x = np.arange(50.0)
    res = spearman_test(x, x**3, n_perm=999, p_method="permutation")
    assert res.p_value == pytest.approx(1 / 1000)  # the permutation floor: nothing as extreme as a perfect monotone relation
    assert spearman_test(x, x**3).p_value == 0.0  # the analytic test has no floor
    rng = np.random.default_rng(0)
    ps = [spearman_test(rng.normal(size=30), rng.normal(size=30), n_perm=199, seed=s, p_method="permutation").p_value for s in range(40)]
    assert 0.2 < np.mean(ps) < 0.8  # roughly uniform under the null


def test_bad_arguments_raise():
    with pytest.raises(ConfigError, match="level"):
        spearman_test([1, 2, 3], [1, 2, 3], level=95)
    with pytest.raises(DataError, match="same length"):
        spearman([1, 2, 3], [1, 2])


def test_bh_hand_computed():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted: 0.01, 0.03, 0.04, 0.20 → ×4/rank: 0.04, 0.06, 0.0533, 0.20 → cummin from the top
    q, rej = benjamini_hochberg(p, alpha=0.05)
    np.testing.assert_allclose(q, [0.04, 0.05333333, 0.05333333, 0.20], rtol=1e-6)
    assert rej.tolist() == [True, False, False, False]


def test_bh_matches_scipy_and_skips_nan():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50) ** 3
    q, _ = benjamini_hochberg(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    p_nan = np.concatenate([p, [np.nan]])
    q2, rej2 = benjamini_hochberg(p_nan)
    np.testing.assert_allclose(q2[:-1], q)
    assert np.isnan(q2[-1]) and not rej2[-1]
    with pytest.raises(ConfigError):
        benjamini_hochberg(p, alpha=5)


def test_analytic_p_value_matches_scipy_spearmanr():
    for n, r in ((10, 0.3), (48, 0.6), (200, 0.1), (48, -0.76)):
        x, y = _data(n, r, seed=n)
        res = spearman_test(x, y)
        ref = stats.spearmanr(x, y)
        assert res.rho == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert spearman_p_value(0.5, 2) != spearman_p_value(0.5, 2)  # NaN below 3 pairs


def test_fisher_interval_hand_computed_and_covers():
    r, n = 0.4, 48
    se = np.sqrt((1 + r**2 / 2) / (n - 3))
    lo, hi = np.tanh(np.arctanh(r) + np.array([-1, 1]) * stats.norm.ppf(0.975) * se)
    assert fisher_interval(r, n, 0.95) == pytest.approx((lo, hi))
    # coverage of the true Spearman ρ of a bivariate normal (ρ_s = 6/π asin(r/2)) at n = 48
    rng = np.random.default_rng(0)
    true = 6 / np.pi * np.arcsin(0.5 / 2)
    cover = []
    for _ in range(400):
        x = rng.normal(size=48)
        y = 0.5 * x + np.sqrt(0.75) * rng.normal(size=48)
        res = spearman_test(x, y)
        cover.append(res.ci_low <= true <= res.ci_high)
        assert -1 <= res.ci_low <= res.ci_high <= 1
    assert 0.92 <= np.mean(cover) <= 0.98


def test_exceeds_bound_p_hand_computed_and_holds_its_level():
    r, n, b = 0.6, 48, 0.33
    se = np.sqrt((1 + b**2 / 2) / (n - 3))
    hand = stats.norm.sf((np.arctanh(r) - np.arctanh(b)) / se) + stats.norm.sf((np.arctanh(r) + np.arctanh(b)) / se)
    assert exceeds_bound_p(r, n, b) == pytest.approx(hand) and exceeds_bound_p(-r, n, b) == pytest.approx(hand)
    # at the boundary (true Spearman ρ = 0.33) it rejects at most about alpha of the time
    rng = np.random.default_rng(1)
    pearson = 2 * np.sin(np.pi * b / 6)  # bivariate normal whose Spearman ρ is b
    ps = []
    for _ in range(600):
        x = rng.normal(size=n)
        y = pearson * x + np.sqrt(1 - pearson**2) * rng.normal(size=n)
        ps.append(float(exceeds_bound_p(stats.spearmanr(x, y).statistic, n, b)))
    assert np.mean(np.array(ps) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 600)
    with pytest.raises(ConfigError):
        exceeds_bound_p(0.5, 10, 1.2)


def test_small_samples_get_the_exact_permutation_p_value():
    """Below 10 pairs the t approximation is anti-conservative; the exact enumeration is used."""
    x = np.array([0.3, 1.2, -0.5, 2.2, 0.9, 1.7, -1.1])
    y = np.array([0.1, 0.8, 0.2, 1.9, -0.2, 1.1, -0.7])
    rho = stats.spearmanr(x, y).statistic
    perms = [stats.spearmanr(x, y[list(p)]).statistic for p in itertools.permutations(range(7))]
    exact = np.mean(np.abs(perms) >= abs(rho) - 1e-12)
    assert spearman_test(x, y).p_value == pytest.approx(exact)
    assert spearman_p_value(1.0, 5) == pytest.approx(2 / 120)  # a perfect order of 5 is not p = 0
    assert spearman_p_value(0.5, 10) == pytest.approx(2 * stats.t.sf(0.5 * np.sqrt(8 / 0.75), 8))  # from 10 pairs on: t
