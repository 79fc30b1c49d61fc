"""Max-T simultaneous bands (:mod:`mechsel.analysis.simultaneous`): coverage of a planted
correlated family, narrower than Bonferroni, Šidák's value for independent cells, family-wise
error of the adjusted "above the bound" p-values, and the frame version against the partial grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import rankdata

from mechsel.analysis.partial import partial_correlation_grid
from mechsel.analysis.simultaneous import estimate_correlation, influence_of, max_abs_draws, max_t_bands, simultaneous_grid


def _family(rng: np.random.Generator, n: int, c: np.ndarray, shared: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Quality ``y`` and ``m`` statistics ``x_j = c_j y + √shared W + noise`` (unit variance):
    pairwise correlation ``shared + c_j c_k``, true Spearman ρ ``(6/π) asin(c_j / 2)``."""
    y = rng.standard_normal(n)
    w = rng.standard_normal(n)
    noise = rng.standard_normal((n, c.size)) * np.sqrt(1.0 - shared - c**2)[None, :]
    return c[None, :] * y[:, None] + np.sqrt(shared) * w[:, None] + noise, y


def _bands(x: np.ndarray, y: np.ndarray, level: float, bound: float | None = None, n_draws: int = 4000):
    ry, rx = rankdata(y), rankdata(x, axis=0)
    pairs = [influence_of(rx[:, j], ry) for j in range(x.shape[1])]
    rho = np.array([p[0] for p in pairs])
    corr = estimate_correlation(np.column_stack([p[1] for p in pairs]))
    return rho, max_t_bands(rho, np.full(rho.size, x.shape[0]), corr, level, bound=bound, n_draws=n_draws)


def test_rho_of_influence_is_scipy_spearman():
    rng = np.random.default_rng(0)
    x, y = _family(rng, 50, np.linspace(-0.3, 0.3, 4))
    for j in range(4):
        rho, _ = influence_of(rankdata(x[:, j]), rankdata(y))
        assert rho == pytest.approx(stats.spearmanr(x[:, j], y).statistic, abs=1e-12)


def test_max_t_bands_cover_a_planted_correlated_family_and_are_narrower_than_bonferroni():
    """180 cells, pairwise correlation 0.5, true ρ from −0.38 to +0.38: every cell inside its band
    in ≥ 95% of 500 simulations at level 95%, with a critical value below Bonferroni's."""
    rng = np.random.default_rng(1)
    c = np.linspace(-0.4, 0.4, 180)
    truth = 6 / np.pi * np.arcsin(c / 2)
    covered, crit, bonf = 0, [], []
    for _ in range(500):
        x, y = _family(rng, 200, c)
        _, b = _bands(x, y, 0.95, n_draws=2000)
        covered += bool(np.all((b.low <= truth) & (truth <= b.high)))
        crit.append(b.critical)
        bonf.append(b.critical_bonferroni)
    assert covered / 500 >= 0.95
    assert np.max(crit) < np.min(bonf)  # every simulation: narrower than Bonferroni
    assert np.mean(crit) < 0.96 * np.mean(bonf)


def test_independent_cells_give_sidak_critical_value():
    m, level = 50, 0.9
    draws = max_abs_draws(np.eye(m), n_draws=40_000, seed=3)
    sidak = stats.norm.isf((1 - level ** (1 / m)) / 2)
    assert np.quantile(draws, level) == pytest.approx(sidak, abs=0.03)
    perfectly = max_abs_draws(np.ones((m, m)), n_draws=40_000, seed=3)  # one cell, repeated
    assert np.quantile(perfectly, level) == pytest.approx(stats.norm.isf((1 - level) / 2), abs=0.03)


def test_adjusted_above_p_controls_familywise_error_at_the_bound_and_finds_a_planted_cell():
    """Every cell at |ρ| = 0.33 exactly: some cell shown above in ≤ 5% of 300 families; one cell
    planted at ρ ≈ 0.6 is shown above in most."""
    rng = np.random.default_rng(4)
    at_bound = np.full(60, 2 * np.sin(np.pi * 0.33 / 6))  # Spearman ρ 0.33 with normal margins
    false = found = 0
    for _ in range(300):
        x, y = _family(rng, 200, at_bound, shared=0.3)
        _, b = _bands(x, y, 0.95, bound=0.33, n_draws=2000)
        false += bool((b.p_above <= 0.05).any())
    planted = at_bound.copy()
    planted[7] = 0.62
    for _ in range(60):
        x, y = _family(rng, 200, planted, shared=0.3)
        _, b = _bands(x, y, 0.95, bound=0.33, n_draws=2000)
        found += bool(b.p_above[7] <= 0.05)
    assert false / 300 <= 0.05
    assert found / 60 >= 0.8


def test_simultaneous_grid_follows_the_partial_grid_and_its_families():
    rng = np.random.default_rng(5)
    n = 80
    ids = [f"e{i}" for i in range(n)]
    n_tokens = rng.integers(5, 60, size=n)
    q = pd.DataFrame({"example_id": ids, "quality": rng.normal(size=n) + n_tokens / 30})
    lines = []
    for family in ("moments", "sae"):
        for layer in range(3):
            v = n_tokens / 20 + rng.normal(size=n)
            lines.append(pd.DataFrame({"example_id": ids, "family": family, "layer": layer, "value": v, "n_tokens": n_tokens}))
    s = pd.concat(lines, ignore_index=True)
    part = partial_correlation_grid(s, q, ["n_tokens"])
    sim = simultaneous_grid(s, q, ["n_tokens"], level=0.9, bound=0.33, n_draws=2000)
    merged = part.merge(sim, on=["family", "layer"])
    np.testing.assert_allclose(merged["rho_band"], merged["rho_partial"], atol=1e-12)
    assert (merged["n_band"] == merged["n_partial"] - merged["n_covariates"]).all()
    assert set(sim["family_label"]) == {"family=moments", "family=sae"}
    assert ((sim["band_low"] < sim["rho_band"]) & (sim["rho_band"] < sim["band_high"])).all()
    assert (sim["critical"] <= sim["critical_bonferroni"]).all() and (sim["band_level"] == 0.9).all()
