"""Paired inference valid at any n: exact sign-flip tests, crossed bootstrap, bounded intervals, no mde of 0."""

from itertools import product

import numpy as np
import pytest
from scipy import stats as sps

from mechsel.analysis.paired import crossed_bootstrap, paired_inference, sign_flip_interval, sign_flip_p


def _enumerate(d, alternative="two-sided"):
    """Hand enumeration over all 2^n sign patterns, written independently of the module."""
    d = np.asarray(d, dtype=float)
    obs = d.sum()
    hits = 0
    total = 0
    for signs in product((1, -1), repeat=len(d)):
        s = float(np.dot(signs, d))
        total += 1
        if alternative == "two-sided":
            hits += abs(s) >= abs(obs) - 1e-12
        elif alternative == "greater":
            hits += s >= obs - 1e-12
        else:
            hits += s <= obs + 1e-12
    return hits / total


def test_three_identical_differences_give_exact_p_one_quarter():
    d = np.full(3, 1 / 48)
    assert sign_flip_p(d) == pytest.approx(0.25)
    res = paired_inference(d, level=0.95, alpha=0.05, span=(-1.0, 1.0))
    assert res.test == "sign-flip exact"
    assert res.p_value == pytest.approx(0.25)
    assert res.p_greater == pytest.approx(0.125)
    # with the per-query matrix the p-value is at least the exact one
    mat = np.zeros((3, 48))
    mat[:, 5] = 1.0
    assert paired_inference(d, mat, span=(-1.0, 1.0)).p_value >= 0.25
    # the test cannot reject at 3 seeds, so the interval is the whole range and the mde infinite
    assert (res.ci_low, res.ci_high) == (-1.0, 1.0)
    assert res.mde == np.inf


@pytest.mark.parametrize("seed", range(5))
def test_sign_flip_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 11))
    d = np.round(rng.normal(0.02, 0.1, n) * 48) / 48  # accuracy steps, with ties
    for alt in ("two-sided", "greater", "less"):
        assert sign_flip_p(d, alt) == pytest.approx(_enumerate(d, alt))


def test_sign_flip_interval_inverts_the_test():
    d = np.array([0.1, 0.3, 0.2, 0.25, 0.15, 0.05, 0.35, 0.2])
    lo, hi = sign_flip_interval(d, 0.95)
    assert lo < d.mean() < hi
    assert _enumerate(d - (lo - 1e-6)) <= 0.05 < _enumerate(d - (lo + 1e-6))
    assert _enumerate(d - (hi + 1e-6)) <= 0.05 < _enumerate(d - (hi - 1e-6))


def test_paired_t_matches_scipy_when_enough_seeds():
    rng = np.random.default_rng(1)
    d = rng.normal(0.03, 0.1, 40)
    res = paired_inference(d, alpha=0.05)
    ref = sps.ttest_1samp(d, 0.0)
    assert res.test == "paired t" and res.interval == "t"
    assert res.p_value == pytest.approx(ref.pvalue)
    half = sps.t.ppf(0.975, 39) * d.std(ddof=1) / np.sqrt(40)
    assert (res.ci_low, res.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert res.diff_upper == pytest.approx(d.mean() + sps.t.ppf(0.95, 39) * d.std(ddof=1) / np.sqrt(40))


def test_zero_variance_never_collapses_with_queries():
    # 20 seeds, each selector gets the same single extra query right: identical differences of +1/48
    mat = np.zeros((20, 48))
    mat[:, 7] = 1.0
    res = paired_inference(mat.mean(axis=1), mat, span=(-1.0, 1.0))
    assert res.test == "seed×query bootstrap"
    assert res.p_value > 0.05  # the test agrees with the interval: no evidence beyond one query
    assert res.ci_high - res.ci_low > 0.01  # the query is a sample of one: width from resampling it
    assert res.ci_low <= 0.0  # one query is no evidence for a population of queries
    assert res.mde > 0


def test_crossed_bootstrap_reduces_to_seed_bootstrap_without_query_effects():
    rng = np.random.default_rng(2)
    seeds = rng.normal(0, 0.1, 60)
    mat = np.repeat(seeds[:, None], 30, axis=1)
    boot = crossed_bootstrap(mat, 4000, seed=0)
    # hand formula: the bootstrap variance of a mean is (n − 1)/n · s²/n
    expect = np.sqrt((59 / 60) * seeds.var(ddof=1) / 60)
    assert boot.std() == pytest.approx(expect, rel=0.06)


def test_crossed_bootstrap_covers_at_its_level():
    """Seeds and queries both random: the percentile interval of the crossed bootstrap covers the
    population mean about as often as it says (≥ 0.92 of 300 draws at 95%)."""
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(300):
        s = rng.normal(0, 0.1, (40, 1))
        q = rng.normal(0, 0.1, (1, 30))
        mat = s + q + rng.normal(0, 0.2, (40, 30))
        res = paired_inference(mat.mean(axis=1), mat, n_boot=500)
        hits += res.ci_low <= 0.0 <= res.ci_high
    assert hits / 300 >= 0.92


def test_reliably_positive_difference_is_found():
    rng = np.random.default_rng(4)
    mat = 0.1 + rng.normal(0, 0.3, (30, 40))
    res = paired_inference(mat.mean(axis=1), mat)
    assert res.p_value < 0.01 and res.diff_lower > 0
