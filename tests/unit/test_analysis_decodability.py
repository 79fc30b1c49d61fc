"""Ridge probes of quality (mechsel.analysis.decodability): a planted linear signal is recovered,
the permutation p is uniform under the null, the fit equals scikit-learn's, and no candidate's
own quality reaches its prediction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler

from mechsel.analysis.decodability import (
    ALPHAS,
    bag_of_words,
    covariate_matrix,
    decodability_table,
    decode,
    loo_alpha,
    make_folds,
    out_of_fold,
    residualise,
    ridge_fit,
)


def planted(n: int, d: int, r2: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """quality = w·x + noise with population R² exactly ``r2`` (x standard normal, |w| = 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    noise_sd = np.sqrt((1 - r2) / r2)
    return x, x @ w + noise_sd * rng.standard_normal(n)


def test_a_planted_signal_is_recovered_within_0_05():
    x, y = planted(3000, 20, 0.3, seed=1)
    d = decode(x, y, n_perm=19, n_boot=200, seed=0)
    assert abs(d.r2 - 0.3) < 0.05, d.r2
    assert d.p_value == pytest.approx(1 / 20) and d.ci_low < d.r2 < d.ci_high <= 1.0


def test_a_weak_signal_is_found_and_a_label_only_signal_is_not_credited():
    x, y = planted(300, 5, 0.15, seed=2)
    assert decode(x, y, n_perm=199, n_boot=200).p_value < 0.05
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    x = np.column_stack([labels + 0.1 * rng.standard_normal(300), rng.standard_normal((300, 3))])
    y = labels + rng.standard_normal(300)  # quality moves with the label only
    assert decode(x, y, n_perm=199, n_boot=100).p_value < 0.01  # decodable if labels are exchangeable ...
    ps = [decode(x, y, strata=labels, n_perm=99, n_boot=50, seed=s).p_value for s in range(20)]
    assert np.mean(np.array(ps) <= 0.05) <= 0.15  # ... but not beyond the label when permuted within it


def test_the_permutation_p_is_uniform_under_the_null():
    ps = []
    for s in range(500):
        rng = np.random.default_rng([7, s])
        x, y = rng.standard_normal((40, 4)), rng.standard_normal(40)
        ps.append(decode(x, y, n_perm=99, n_boot=10, seed=s).p_value)
    ps = np.array(ps)
    rate = np.mean(ps <= 0.05)
    assert 0.02 <= rate <= 0.06, rate
    assert abs(np.mean(ps <= 0.5) - 0.5) < 0.07


def test_the_fit_equals_scikit_learns():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((80, 6)) * [1, 2, 3, 4, 5, 6] + 3, rng.standard_normal(80)
    coef, intercept = ridge_fit(x, y, 7.0)
    ref = Ridge(alpha=7.0).fit(x, y)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-9, atol=1e-12)
    assert intercept == pytest.approx(ref.intercept_, rel=1e-9)
    z = StandardScaler().fit_transform(x)
    y2 = z @ [0.5, 0, 0, 0.2, 0, 0] + rng.standard_normal(80)
    assert loo_alpha(z, y2) == RidgeCV(alphas=ALPHAS).fit(z, y2).alpha_
    folds = make_folds(80, 5, seed=0)
    hand = np.empty(80)
    for f in range(5):
        tr, te = folds != f, folds == f
        scaler = StandardScaler().fit(x[tr])
        model = RidgeCV(alphas=ALPHAS).fit(scaler.transform(x[tr]), y2[tr])
        hand[te] = model.predict(scaler.transform(x[te]))
    np.testing.assert_allclose(out_of_fold(x, y2, folds), hand, rtol=1e-7, atol=1e-9)


def test_no_candidate_reaches_its_own_prediction():
    x, y = planted(60, 8, 0.5, seed=5)
    folds = make_folds(60, 5, seed=0)
    base = out_of_fold(x, y, folds)
    for i in (0, 17, 59):
        changed = y.copy()
        changed[i] += 100.0
        moved = out_of_fold(x, changed, folds)
        assert moved[i] == pytest.approx(base[i], abs=1e-9)  # its own value never enters its prediction
        assert not np.allclose(moved[folds != folds[i]], base[folds != folds[i]])  # it does enter the others'


def test_folds_are_balanced_and_checked():
    f = make_folds(23, 5, seed=1)
    assert sorted(np.bincount(f)) == [4, 4, 5, 5, 5]
    with pytest.raises(Exception, match="at least 10 candidates"):
        make_folds(9, 5)


def test_baselines_residualising_and_the_table():
    rng = np.random.default_rng(6)
    n = 200
    labels, n_tok = rng.integers(0, 2, n), rng.integers(3, 30, n)
    cov = covariate_matrix(labels, n_tok)
    assert cov.shape == (n, 2)
    x, y = planted(n, 4, 0.4, seed=6)
    y = y + 2 * labels
    resid, explained = residualise(y, cov)
    assert explained > 0.2 and abs(np.corrcoef(resid, labels)[0, 1]) < 1e-10
    bow = bag_of_words(["a good film", "a bad film", "good good", "x"])
    assert bow.shape == (4, 3) and bow[2].tolist() == [0.0, 0.0, 2.0]  # a, film, good
    table = decodability_table({("mlp_out", "full", 0): np.column_stack([x, labels])}, y, {"covariates": cov}, n_perm=19, n_boot=100)
    rep = table[table["kind"] == "representation"].iloc[0]
    assert rep["baseline_name"] == "covariates" and rep["gain_low"] < rep["gain"] < rep["gain_high"] and rep["gain_low"] > 0
