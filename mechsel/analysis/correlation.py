"""Spearman's ρ with a p-value that has no floor and an interval inside [−1, 1].

Spearman's ρ is Pearson's r of the average ranks (the convention of ``scipy.stats.spearmanr``).

p-values (``p_method``):

* ``"t"`` (default): the analytic two-sided test of ``scipy.stats.spearmanr``,
  ``t = ρ √((n − 2) / (1 − ρ²))`` on ``n − 2`` degrees of freedom. It has no floor, so a strong
  cell keeps a small p-value after a correction over hundreds of cells. Below
  :data:`EXACT_MAX_N` pairs the t approximation is badly anti-conservative (at n = 5 a perfect
  ρ = 1 gets p = 0, against an exact 2/120), so there the p-value is the exact permutation
  probability ``P(|ρ*| ≥ |ρ|)`` over all ``n!`` orderings (without ties).
* ``"permutation"``: ``(1 + #{|ρ*| ≥ |ρ|}) / (1 + n_perm)``. Its floor is ``1 / (1 + n_perm)``:
  after Benjamini–Hochberg over ``m`` cells no cell can reach a q below ``m / (1 + n_perm)``, so
  use it only for small families or with many permutations.

Intervals (``ci_method``):

* ``"fisher"`` (default): ``tanh(atanh ρ ± z · se)`` with the Bonett–Wright standard error for
  Spearman's ρ, ``se = √((1 + ρ²/2) / (n − 3))`` (Bonett & Wright 2000, Psychometrika 65:23).
  Analytic, so the verdict can take it at any (multiplicity-adjusted) level.
* ``"bootstrap"``: the seeded percentile bootstrap of the pairs.

Both lie inside [−1, 1] by construction. Resampling is vectorised, and the same indices (drawn
from ``seed``) are reused for every call with that seed and sample size, so cells of one grid
are resampled identically.

:func:`exceeds_bound_p` tests whether ``|ρ|`` is *above* a bound (the paper's 0.33) rather than
above 0, on the same Fisher scale.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps
from scipy.stats import rankdata

from mechsel.errors import ConfigError, DataError

__all__ = [
    "PMethod",
    "CIMethod",
    "SpearmanResult",
    "spearman",
    "spearman_test",
    "spearman_p_value",
    "fisher_interval",
    "fisher_se",
    "exceeds_bound_p",
    "bootstrap_indices",
    "rowwise_pearson",
]

PMethod = Literal["t", "permutation"]
"""How a ρ's p-value is computed (module docstring)."""
CIMethod = Literal["fisher", "bootstrap"]
"""How a ρ's interval is computed (module docstring)."""


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
    """Two-sided p-value of ρ = 0 (analytic t or permutation, see ``p_method``)."""
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


EXACT_MAX_N = 10
"""Below this many pairs, :func:`spearman_p_value` enumerates all orderings instead of using t."""


@functools.cache
def _exact_null(n: int) -> np.ndarray:
    """Sorted |ρ| of every ordering of ``n`` untied ranks (``n!`` values)."""
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.float64)
    d2 = ((perms - np.arange(n)) ** 2).sum(axis=1)
    return np.sort(np.abs(1.0 - 6.0 * d2 / (n * (n * n - 1.0))))


def spearman_p_value(rho: float | np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Two-sided p-value of ρ = 0: the t approximation of ``scipy.stats.spearmanr`` from
    :data:`EXACT_MAX_N` pairs on (``|ρ| = 1`` gives 0), the exact permutation probability below.

    ``n < 3`` or a NaN ρ gives NaN.
    """
    rho = np.asarray(rho, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    df = n - 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(rho) * np.sqrt(df / np.maximum(1.0 - rho * rho, 0.0))
    p = 2.0 * sps.t.sf(t, np.maximum(df, 1.0))
    p = np.where(np.abs(rho) >= 1.0, 0.0, p)
    rho_b, n_b = np.broadcast_arrays(rho, n)
    p = np.array(np.broadcast_to(p, rho_b.shape), dtype=np.float64)
    for size in np.unique(n_b[(n_b >= 3) & (n_b < EXACT_MAX_N)]):
        at = (n_b == size) & np.isfinite(rho_b)
        null = _exact_null(int(size))
        extreme = null.size - np.searchsorted(null, np.abs(rho_b[at]) - 1e-12, side="left")
        p[at] = extreme / null.size
    return np.where((n_b >= 3) & np.isfinite(rho_b), p, np.nan)


def fisher_se(rho: float | np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Bonett–Wright standard error of ``atanh ρ̂`` for Spearman's ρ: ``√((1 + ρ²/2) / (n − 3))``."""
    rho = np.asarray(rho, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 3, np.sqrt((1.0 + rho * rho / 2.0) / (n - 3.0)), np.nan)


def fisher_interval(rho: float | np.ndarray, n: int | np.ndarray, level: float | np.ndarray = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``level`` interval of Spearman's ρ on the Fisher scale (inside [−1, 1]).

    ``level`` may be an array (one level per cell, e.g. Bonferroni within a family). NaN when
    ``n ≤ 3`` or ρ is NaN.
    """
    rho = np.asarray(rho, dtype=np.float64)
    z_crit = sps.norm.isf((1.0 - np.asarray(level, dtype=np.float64)) / 2.0)
    z = np.arctanh(np.clip(rho, -1.0 + 1e-15, 1.0 - 1e-15))
    half = z_crit * fisher_se(rho, n)
    return np.tanh(z - half), np.tanh(z + half)


def exceeds_bound_p(rho: float | np.ndarray, n: int | np.ndarray, bound: float) -> np.ndarray:
    """One-sided p-value of ``H0: |ρ| ≤ bound`` against ``|ρ| > bound`` (Fisher scale).

    Under ``|ρ| = bound`` (the least favourable null), ``atanh ρ̂`` is about normal with mean
    ``±atanh(bound)`` and the Bonett–Wright se at ``bound``; the p-value is the chance that
    ``|atanh ρ̂|`` reaches its observed value, both tails counted.
    """
    if not 0.0 <= bound < 1.0:
        raise ConfigError(f"The |ρ| bound must lie in [0, 1), got {bound}.")
    rho = np.asarray(rho, dtype=np.float64)
    z = np.abs(np.arctanh(np.clip(rho, -1.0 + 1e-15, 1.0 - 1e-15)))
    se = fisher_se(np.full(rho.shape, bound), n)
    zb = np.arctanh(bound)
    p = sps.norm.sf((z - zb) / se) + sps.norm.sf((z + zb) / se)
    return np.where(np.isfinite(p), np.minimum(p, 1.0), np.nan)


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
    p_method: PMethod = "t",
    ci_method: CIMethod = "fisher",
    n_boot: int = 2000,
    n_perm: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> SpearmanResult:
    """Spearman's ρ with a two-sided p-value of ρ = 0 and a ``level`` interval.

    Args:
        x, y: paired observations; pairs with a NaN/inf on either side are dropped.
        p_method: ``"t"`` (analytic, no floor) or ``"permutation"`` (module docstring).
        ci_method: ``"fisher"`` (analytic) or ``"bootstrap"`` (percentile).
        n_boot: bootstrap resamples of the pairs (``ci_method="bootstrap"``; 0 gives NaN bounds).
        n_perm: permutations of ``y`` against ``x`` (``p_method="permutation"``; 0 gives NaN).
        level: coverage of the interval (0.95 → 2.5th and 97.5th percentiles).
        seed: seed of the resampling; the same seed gives the same numbers.
    """
    _check_level(level)
    if p_method not in ("t", "permutation"):
        raise ConfigError(f"p_method must be 't' or 'permutation', got {p_method!r}.")
    if ci_method not in ("fisher", "bootstrap"):
        raise ConfigError(f"ci_method must be 'fisher' or 'bootstrap', got {ci_method!r}.")
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
    lo = hi = nan
    if ci_method == "fisher":
        lo, hi = (float(v) for v in fisher_interval(rho, n, level))
    elif n_boot:
        idx = bootstrap_indices(n, n_boot, seed)
        boots = rowwise_pearson(rankdata(x[idx], axis=1), rankdata(y[idx], axis=1))
        boots = boots[np.isfinite(boots)]
        if boots.size:
            alpha = (1.0 - level) / 2.0
            lo, hi = (float(v) for v in np.quantile(boots, [alpha, 1.0 - alpha]))
    if p_method == "t":
        p = float(spearman_p_value(rho, n))
    elif n_perm:
        perm_rho = rowwise_pearson(ry[_permutations(n, n_perm, seed)], rx)
        extreme = np.count_nonzero(np.abs(perm_rho) >= abs(rho) - 1e-12)
        p = (1.0 + extreme) / (1.0 + n_perm)
    else:
        p = nan
    return SpearmanResult(rho, lo, hi, p, n)
