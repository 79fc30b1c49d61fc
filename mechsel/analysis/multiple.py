"""Benjamini–Hochberg control of the false discovery rate across a grid of tests."""

from __future__ import annotations

import numpy as np

from mechsel.errors import ConfigError, DataError

__all__ = ["benjamini_hochberg"]


def benjamini_hochberg(p_values: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg adjusted p-values (q-values) and rejections at FDR ``alpha``.

    The adjustment is ``q_(i) = min_{j ≥ i} min(1, m · p_(j) / j)`` over the ``m`` finite
    p-values sorted ascending; NaN p-values (untestable cells) are left out of ``m`` and get NaN
    q-values and no rejection. Equals ``scipy.stats.false_discovery_control(p, method="bh")``
    on finite inputs.

    Returns:
        ``(q_values, rejected)``, both shaped like ``p_values``.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"FDR level alpha must lie in (0, 1), got {alpha}.")
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise DataError("p-values must lie in [0, 1].")
    q = np.full(p.shape, np.nan)
    vals = p[finite]
    m = vals.size
    if m:
        order = np.argsort(vals, kind="stable")
        scaled = vals[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
        out = np.empty(m)
        out[order] = adjusted
        q[finite] = out
    rejected = np.zeros(p.shape, dtype=bool)
    rejected[finite] = q[finite] <= alpha
    return q, rejected
