"""Inference on one paired comparison (selector − baseline over seeds) that stays valid at any n.

Input: the paired differences ``d`` (one per seed) and, when the metric is a mean over test
queries (accuracy), the seeds × queries matrix ``D`` of per-query differences whose row means
are ``d``. Accuracies move in steps of 1/n_test, so a handful of seeds can give identical
differences: a paired t test then has zero variance, t = ±∞, p = 0 and a zero-width interval. The
rules below never do that.

**Test** (the ``test`` column):

* ``sign-flip exact`` — with fewer than ``exact_below`` seeds, or when the differences have no
  spread, the p-value is the exact sign-flip (permutation) p-value: under the null of a symmetric
  distribution around 0 every pattern of signs of ``d`` is equally likely, so
  ``p = #{ε ∈ {±1}^n : |Σ ε_i d_i| ≥ |Σ d_i|} / 2^n``, enumerated over all ``2^n`` patterns
  (Monte Carlo over :data:`SIGN_FLIP_DRAWS` patterns, with the observed one counted, past
  :data:`EXACT_MAX_N` seeds). Three seeds can never give p below 0.25.
* ``seed×query bootstrap`` — otherwise, when ``D`` is given: the percentile-bootstrap p-value of
  the crossed bootstrap below (``p_greater = (1 + #{b ≤ 0}) / (1 + B)``, two-sided twice the
  smaller tail), so the test and the interval never disagree. Below ``exact_below`` seeds with
  ``D`` given, the p-value is the larger of the exact sign-flip and the bootstrap p-values.
* ``paired t`` — otherwise (no ``D``, enough seeds, some spread), ``scipy.stats.ttest_1samp`` of
  the differences (the paired t test).

**Interval** (the ``interval`` column), intersected with the metric's range:

* ``seed×query bootstrap`` — when ``D`` is given: seeds and test queries are resampled
  independently (the pigeonhole bootstrap of a crossed design), the percentile interval of the
  mean of ``D``. It counts the test queries as a sample too, so identical seed differences that
  come from a few queries still give an interval of positive width.
* ``sign-flip inversion`` — the set of shifts ``δ`` the exact sign-flip test of ``d − δ`` does
  not reject. Below ``exact_below`` seeds the interval is the hull of this and the bootstrap
  interval (at three seeds it is the metric's whole range of differences).
* ``t`` — the Student-t interval, when there is no ``D`` and enough seeds.

The one-sided ``1 − alpha`` bounds (``diff_lower``, ``diff_upper``) come from the same method at
level ``1 − 2·alpha``: non-superiority asks ``diff_upper < margin``.

**Minimum detectable effect** at ``power``: ``(t_{1−α/2, n−1} + t_{power, n−1}) · se`` with
``se`` the bootstrap (or ``sd/√n``) standard error. It is ∞ when the test cannot reject at all
(an exact sign-flip test whose smallest p-value ``2/2^n`` exceeds alpha, or no variation at all),
never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from mechsel.errors import DataError

__all__ = [
    "EXACT_MAX_N",
    "SIGN_FLIP_DRAWS",
    "Alternative",
    "PairedInference",
    "sign_flip_p",
    "sign_flip_interval",
    "crossed_bootstrap",
    "paired_inference",
]

EXACT_MAX_N = 16
"""Largest number of seeds whose sign patterns are enumerated (2^16 patterns); Monte Carlo above."""
SIGN_FLIP_DRAWS = 20_000
"""Random sign patterns of the Monte Carlo sign-flip p-value."""
Alternative = Literal["two-sided", "greater", "less"]
"""The alternative hypothesis of a test of the mean difference."""
_TOL = 1e-12


def _signs(n: int, seed: int) -> tuple[np.ndarray, bool]:
    """Sign patterns (rows) and whether they are all 2^n of them."""
    if n <= EXACT_MAX_N:
        return np.array(list(product((1.0, -1.0), repeat=n))), True
    rng = np.random.default_rng([seed, n, 0x51F])
    return rng.choice((1.0, -1.0), size=(SIGN_FLIP_DRAWS, n)), False


def sign_flip_p(d: np.ndarray, alternative: Alternative = "two-sided", delta: float = 0.0, seed: int = 0) -> float:
    """Sign-flip p-value of ``mean(d) = delta`` against ``alternative`` (module docstring).

    Exact over all ``2^n`` sign patterns up to :data:`EXACT_MAX_N` values; Monte Carlo with the
    observed pattern counted (``(1 + hits) / (1 + draws)``) above. NaN with no values.
    """
    x = np.asarray(d, dtype=np.float64) - delta
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    signs, exact = _signs(x.size, seed)
    sums = signs @ x
    obs = x.sum()
    scale = _TOL * max(1.0, float(np.abs(x).sum()))
    if alternative == "two-sided":
        hits = np.abs(sums) >= abs(obs) - scale
    elif alternative == "greater":
        hits = sums >= obs - scale
    else:
        hits = sums <= obs + scale
    if exact:
        return float(hits.mean())
    return float((1 + hits.sum()) / (1 + hits.size))


def sign_flip_interval(d: np.ndarray, level: float = 0.95, span: tuple[float, float] | None = None, seed: int = 0) -> tuple[float, float]:
    """The shifts ``δ`` whose two-sided sign-flip test of ``d − δ`` has p > ``1 − level``
    (hull), searched by bisection inside ``span`` (default: the range of ``d`` widened by its
    spread). An end that is never rejected inside ``span`` is the end of ``span``."""
    x = np.asarray(d, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    a = 1.0 - level
    m = float(x.mean())
    if span is None:
        width = float(x.max() - x.min()) or 1.0
        span = (float(x.min()) - width, float(x.max()) + width)

    def accepted(delta: float) -> bool:
        return sign_flip_p(x, "two-sided", delta, seed) > a

    def edge(outer: float) -> float:
        if accepted(outer):
            return outer
        inner = m
        for _ in range(60):
            mid = 0.5 * (inner + outer)
            if accepted(mid):
                inner = mid
            else:
                outer = mid
        return inner

    return edge(span[0]), edge(span[1])


def crossed_bootstrap(matrix: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean of a seeds × queries matrix, resampling its rows and its
    columns independently (counts drawn from multinomials): ``w ᵀ D v / (n_s n_q)``."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise DataError(f"crossed_bootstrap needs a non-empty seeds × queries matrix, got shape {m.shape}.")
    rng = np.random.default_rng([seed, *m.shape, 0xB007])
    ns, nq = m.shape
    w = rng.multinomial(ns, np.full(ns, 1.0 / ns), size=n_boot).astype(np.float64)
    v = rng.multinomial(nq, np.full(nq, 1.0 / nq), size=n_boot).astype(np.float64)
    return np.einsum("bs,sq,bq->b", w, m, v) / (ns * nq)


@dataclass(frozen=True)
class PairedInference:
    """One paired comparison, decided by the rules of the module docstring."""

    mean_diff: float
    """Mean paired difference over seeds."""
    sd_diff: float
    """Sample sd (ddof 1) of the seed differences."""
    n_pairs: int
    """Seeds with both runs."""
    test: str
    """Which test gave ``p_value``: ``sign-flip exact``, ``sign-flip Monte Carlo``, ``seed×query
    bootstrap`` or ``paired t`` (``a | b``: the larger p-value of the two)."""
    p_value: float
    """Two-sided p-value of no difference."""
    p_greater: float
    """One-sided p-value of ``mean ≤ 0`` against ``mean > 0``."""
    p_less: float
    """One-sided p-value of ``mean ≥ 0`` against ``mean < 0``."""
    interval: str
    """Which method gave the intervals: ``seed×query bootstrap``, ``sign-flip inversion`` or ``t``
    (``+`` joins a hull of two)."""
    ci_low: float
    """Lower end of the two-sided ``level`` interval."""
    ci_high: float
    """Upper end of the two-sided ``level`` interval."""
    diff_lower: float
    """One-sided ``1 − alpha`` lower bound."""
    diff_upper: float
    """One-sided ``1 − alpha`` upper bound (non-superiority: below the margin)."""
    se: float
    """Standard error of the mean difference (bootstrap when ``D`` is given, else ``sd/√n``)."""
    mde: float
    """Minimum detectable effect at the stated power: ∞ when the test cannot reject, never 0."""


def _clip(lo: float, hi: float, span: tuple[float, float] | None) -> tuple[float, float]:
    if span is None:
        return lo, hi
    return max(lo, span[0]), min(hi, span[1])


def _hull(*pairs: tuple[float, float]) -> tuple[float, float]:
    ok = [p for p in pairs if np.isfinite(p[0]) and np.isfinite(p[1])]
    if not ok:
        return float("nan"), float("nan")
    return min(p[0] for p in ok), max(p[1] for p in ok)


def paired_inference(
    d: np.ndarray,
    matrix: np.ndarray | None = None,
    *,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    span: tuple[float, float] | None = None,
    exact_below: int = 10,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedInference:
    """Test, intervals, one-sided bounds and mde of the paired differences ``d`` (module docstring).

    Args:
        d: one paired difference per seed.
        matrix: optional seeds × queries per-query differences whose row means are ``d``.
        level: coverage of ``ci_low`` / ``ci_high``.
        alpha: level of the one-sided bounds (``1 − alpha``) and of the mde's test.
        power: power of the mde.
        span: the range of a difference (e.g. ``(−1, 1)`` for accuracy); intervals stay inside.
        exact_below: below this many seeds the test is the exact sign-flip test and the intervals
            include its inversion.
        n_boot: bootstrap resamples of the crossed bootstrap.
        seed: seed of every resampling.
    """
    x = np.asarray(d, dtype=np.float64)
    keep = np.isfinite(x)
    x = x[keep]
    n = int(x.size)
    nan = float("nan")
    if n < 2:
        return PairedInference(float(x.mean()) if n else nan, nan, n, "none", nan, nan, nan, "none", nan, nan, nan, nan, nan, nan)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    flat = sd <= _TOL * max(1.0, abs(mean))
    if n < exact_below or flat:
        test = "sign-flip exact" if n <= EXACT_MAX_N else "sign-flip Monte Carlo"
        p2 = sign_flip_p(x, "two-sided", seed=seed)
        pg, pl = sign_flip_p(x, "greater", seed=seed), sign_flip_p(x, "less", seed=seed)
    else:
        test = "paired t"
        res: Any = sps.ttest_1samp(x, 0.0)
        t_stat, df = float(res.statistic), n - 1
        p2 = float(res.pvalue)
        pg, pl = float(sps.t.sf(t_stat, df)), float(sps.t.cdf(t_stat, df))
    boot = None
    if matrix is not None:
        mat = np.asarray(matrix, dtype=np.float64)[keep]
        if mat.shape[0] != n or not np.allclose(mat.mean(axis=1), x, atol=1e-9):
            raise DataError(f"The per-query matrix ({mat.shape}) does not average to the {n} seed differences it should explain.")
        boot = crossed_bootstrap(mat, n_boot, seed)
        bg = float((1 + np.sum(boot <= 0.0)) / (1 + boot.size))
        bl = float((1 + np.sum(boot >= 0.0)) / (1 + boot.size))
        b2 = min(1.0, 2.0 * min(bg, bl))
        if test == "paired t" or (flat and n >= exact_below):
            test, p2, pg, pl = "seed×query bootstrap", b2, bg, bl
        else:
            test, p2, pg, pl = f"{test} | seed×query bootstrap", max(p2, b2), max(pg, bg), max(pl, bl)
    methods: list[str] = []
    two: list[tuple[float, float]] = []
    one: list[tuple[float, float]] = []
    if boot is not None:
        methods.append("seed×query bootstrap")
        two.append((float(np.quantile(boot, (1 - level) / 2)), float(np.quantile(boot, (1 + level) / 2))))
        one.append((float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))))
        se = float(boot.std(ddof=1))
    else:
        se = sd / np.sqrt(n)
    if n < exact_below or (boot is None and flat):
        methods.append("sign-flip inversion")
        two.append(sign_flip_interval(x, level, span, seed))
        one.append(sign_flip_interval(x, 1 - 2 * alpha, span, seed))
    if not methods:
        methods.append("t")
        half = float(sps.t.ppf((1 + level) / 2, n - 1)) * se
        half1 = float(sps.t.ppf(1 - alpha, n - 1)) * se
        two.append((mean - half, mean + half))
        one.append((mean - half1, mean + half1))
    lo, hi = _clip(*_hull(*two), span)
    lo1, hi1 = _clip(*_hull(*one), span)
    if test.startswith("sign-flip") and n <= EXACT_MAX_N and 2.0 / 2.0**n > alpha:
        mde = float("inf")  # the exact test's smallest p-value is above alpha: it can never reject
    elif not np.isfinite(se) or se <= _TOL:
        mde = float("inf")  # no variation at all: nothing to scale an effect by
    else:
        df = n - 1
        mde = float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se)
    return PairedInference(mean, sd, n, test, p2, pg, pl, " + ".join(methods), lo, hi, lo1, hi1, se, mde)
