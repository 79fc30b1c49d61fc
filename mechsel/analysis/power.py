"""Power of the paired t-test: the minimum detectable effect of a comparison over seeds.

For ``n`` paired seeds whose differences have standard deviation ``sd``, the two-sided paired
t-test at level ``alpha`` rejects with probability

    power(δ) = P(|T| > t_{1−α/2, n−1}),   T ~ noncentral t(n − 1, δ √n / sd),

and the *minimum detectable effect* is the δ at which that probability reaches ``power``
(0.8 by convention). It is solved exactly on the noncentral t (``scipy.stats.nct``), not with the
normal approximation ``(z_{1−α/2} + z_{power}) sd / √n``, which is too optimistic at 5 seeds.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from scipy import optimize
from scipy import stats as sps

from mechsel.errors import ConfigError

__all__ = ["paired_t_power", "paired_mde"]


def _check(alpha: float, power: float | None = None) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}.")
    if power is not None and not alpha < power < 1.0:
        raise ConfigError(f"power must lie in (alpha, 1), got {power} (alpha {alpha}); 0.8 is the convention.")


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Probability that the two-sided paired t-test at ``alpha`` rejects when the mean difference
    is ``effect`` and the differences' sd is ``sd`` over ``n`` pairs (NaN if ``n < 2`` or sd ≤ 0)."""
    _check(alpha)
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    df = n - 1
    crit = sps.t.isf(alpha / 2.0, df)
    nc = abs(effect) * np.sqrt(n) / sd
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
    if not np.isfinite(power):  # scipy's nct can fail at large df, where T is normal to within 1/df
        power = float(sps.norm.sf(crit - nc) + sps.norm.cdf(-crit - nc))
    return power


def paired_mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean difference the two-sided paired t-test at ``alpha`` detects with probability
    ``power``, given the sd of the differences and ``n`` pairs.

    NaN when it is undefined (fewer than 2 pairs, a NaN sd); 0 when the differences have no
    spread (any nonzero difference is then certain to be seen).
    """
    _check(alpha, power)
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    if sd <= 0:
        return 0.0
    hi = sd
    while paired_t_power(hi, sd, n, alpha) < power:
        hi *= 2.0
    # scipy leaves brentq unannotated: the checker takes rtol's type from its float64 default and
    # cannot see that, without full_output, the result is the root alone.
    root = optimize.brentq(lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd, rtol=1e-10)  # pyright: ignore[reportArgumentType]
    return float(cast(float, root))
