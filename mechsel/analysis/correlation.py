"""Spearman's ρ with a seeded percentile-bootstrap CI and a permutation p-value.

Spearman's ρ is Pearson's r of the average ranks (the convention of ``scipy.stats.spearmanr``).
Both resampling procedures are vectorised: ranks are computed once per resample for all
resamples together, and the same resampling indices (drawn from ``seed``) are reused for every
call with that seed and sample size, so cells of one grid are resampled identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata

from mechsel.errors import ConfigError, DataError

__all__ = ["SpearmanResult", "spearman", "spearman_test", "bootstrap_indices", "rowwise_pearson"]


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's ρ of one pair of variables with its uncertainty."""

    rho: float
    """Point estimate on all complete pairs (NaN if fewer than 3 pairs or a constant variable)."""
    ci_low: float
    """Lower end of the percentile-bootstrap interval."""
    ci_high: float
    """Upper end of the percentile-bootstrap interval."""
    p_value: float
    """Two-sided permutation p-value, ``(1 + #{|ρ*| ≥ |ρ|}) / (1 + n_perm)``."""
    n: int
    """Number of complete (non-NaN) pairs used."""

    def to_dict(self) -> dict[str, float]:
        """The fields as a plain dict (one row of a results table)."""
        return asdict(self)


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r between matching rows of ``a`` and ``b`` (``[m, n]`` each, or ``b`` ``[n]``).

    Rows with zero variance give NaN, never a warning or a crash.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    ac = a - a.mean(axis=-1, keepdims=True)
    bc = b - b.mean(axis=-1, keepdims=True)
    num = (ac * bc).sum(axis=-1)
    den = np.sqrt((ac * ac).sum(axis=-1) * (bc * bc).sum(axis=-1))
    out = np.full(num.shape, np.nan)
    ok = den > 1e-12 * np.maximum(1.0, np.abs(num))
    np.divide(num, den, out=out, where=ok)
    return np.clip(out, -1.0, 1.0)


def _complete_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"x and y must have the same length, got {x.size} and {y.size}.")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ on the complete pairs of ``x`` and ``y`` (NaN if undefined)."""
    x, y = _complete_pairs(x, y)
    if x.size < 3:
        return float("nan")
    return float(rowwise_pearson(rankdata(x), rankdata(y)))


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` indices drawn with replacement; a pure function of its arguments."""
    if n_boot < 1:
        raise ConfigError(f"n_boot must be ≥ 1, got {n_boot}.")
    return np.random.default_rng([seed, n, 0xB007]).integers(0, n, size=(n_boot, n))


def _permutations(n: int, n_perm: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n, 0x9E3])
    return np.argsort(rng.random((n_perm, n)), axis=1)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"Confidence level must lie in (0, 1), got {level}; e.g. 0.95.")


def spearman_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_boot: int = 2000,
    n_perm: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> SpearmanResult:
    """Spearman's ρ with a percentile-bootstrap CI and a two-sided permutation p-value.

    Args:
        x, y: paired observations; pairs with a NaN/inf on either side are dropped.
        n_boot: bootstrap resamples of the pairs (0 skips the CI: NaN bounds).
        n_perm: permutations of ``y`` against ``x`` (0 skips the test: NaN p-value).
        level: coverage of the interval (0.95 → 2.5th and 97.5th percentiles).
        seed: seed of the resampling; the same seed gives the same numbers.
    """
    _check_level(level)
    if n_boot < 0 or n_perm < 0:
        raise ConfigError(f"n_boot and n_perm must be ≥ 0, got {n_boot} and {n_perm}.")
    x, y = _complete_pairs(x, y)
    n = int(x.size)
    nan = float("nan")
    if n < 3:
        return SpearmanResult(nan, nan, nan, nan, n)
    rx, ry = rankdata(x), rankdata(y)
    rho = float(rowwise_pearson(rx, ry))
    if not np.isfinite(rho):
        return SpearmanResult(nan, nan, nan, nan, n)
    lo = hi = p = nan
    if n_boot:
        idx = bootstrap_indices(n, n_boot, seed)
        boots = rowwise_pearson(rankdata(x[idx], axis=1), rankdata(y[idx], axis=1))
        boots = boots[np.isfinite(boots)]
        if boots.size:
            alpha = (1.0 - level) / 2.0
            lo, hi = (float(v) for v in np.quantile(boots, [alpha, 1.0 - alpha]))
    if n_perm:
        perm_rho = rowwise_pearson(ry[_permutations(n, n_perm, seed)], rx)
        extreme = np.count_nonzero(np.abs(perm_rho) >= abs(rho) - 1e-12)
        p = (1.0 + extreme) / (1.0 + n_perm)
    return SpearmanResult(rho, lo, hi, p, n)
