"""Moment statistics of an example's activations, computed inside the collector's hooks.

Two families, both registered in :data:`~mechsel.stats.base.STATISTICS`:

``moments`` (:class:`Moments`) — one distribution per example: all selected positions ×
``d_model`` values pooled together.

* ``mean``, ``variance`` (population, ``ddof=0``), ``skewness`` and ``kurtosis`` (excess) — the
  conventions of ``scipy.stats.skew(bias=True)`` and ``scipy.stats.kurtosis(fisher=True,
  bias=True)``: ``m3 / m2**1.5`` and ``m4 / m2**2 - 3`` with central moments ``m_k``;
* ``max_abs`` — the largest absolute value ("massive activation");
* ``l2_norm`` — the L2 norm of all selected values (Frobenius norm of the ``[tokens, d]`` block;
  it grows with the number of tokens).

``token_moments`` (:class:`TokenMoments`) — moments of each token's ``d_model`` values, averaged
over the example's tokens: ``token_variance``, ``token_skewness``, ``token_kurtosis``,
``token_max_abs``, ``token_l2_norm``. (The token-averaged mean equals ``mean``, so it is not
repeated.)

**Precision.** Values are cast to float64 before any arithmetic; moments are exact two-pass
(mean first, then central powers), which is possible because all of an example's tokens are in
the same forward pass. The float64 copies are made a few rows at a time, so the reducers' extra
memory stays bounded (about 16k values per temporary) whatever the batch size.

**NaN policy (constant activations).** When a distribution is constant up to float64 precision
— ``m2 <= (eps(float64) * mean)**2``, the test ``scipy.stats`` uses — its skewness and
kurtosis are NaN (``0/0`` has no meaningful value); variance is 0 and the other statistics are
finite. Token-averaged statistics propagate a NaN from any token. Nothing raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechsel.errors import ConfigError, did_you_mean
from mechsel.stats.base import STATISTICS

__all__ = ["Moments", "TokenMoments", "DEFAULT_MOMENTS", "MOMENT_NAMES", "TOKEN_MOMENT_NAMES"]

MOMENT_NAMES: tuple[str, ...] = ("mean", "variance", "skewness", "kurtosis", "max_abs", "l2_norm")
TOKEN_MOMENT_NAMES: tuple[str, ...] = ("token_variance", "token_skewness", "token_kurtosis", "token_max_abs", "token_l2_norm")
DEFAULT_MOMENTS: tuple[str, ...] = MOMENT_NAMES
"""The statistics :func:`mechsel.collect` computes unless told otherwise."""

_EPS = float(np.finfo(np.float64).eps)
_CHUNK_VALUES = 1 << 14


def _check_names(requested: Sequence[str] | None, valid: tuple[str, ...], family: str) -> tuple[str, ...]:
    if requested is None:
        return valid
    names = tuple(requested)
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"The {family!r} family has no statistic {name!r}.{did_you_mean(name, valid)} It computes: {', '.join(valid)}."
            )
    if not names:
        raise ConfigError(f"Ask the {family!r} family for at least one of: {', '.join(valid)}.")
    return names


def _float64_capable(acts: Tensor) -> Tensor:
    """``acts`` on a device that computes in float64 (Apple MPS does not: use the CPU there)."""
    return acts.cpu() if acts.device.type == "mps" else acts


def _row_reductions(acts: Tensor, fn: Any, *, with_rows: bool = False) -> tuple[Tensor, ...]:
    """Apply ``fn`` to float64 chunks of rows of ``acts`` and concatenate its per-row outputs.

    Chunking bounds the float64 temporaries to about ``_CHUNK_VALUES`` values whatever the batch.
    """
    step = max(1, _CHUNK_VALUES // max(1, acts.shape[1]))
    parts = []
    for start in range(0, acts.shape[0], step):
        rows = slice(start, start + step)
        x = acts[rows].to(torch.float64)
        parts.append(fn(x, rows) if with_rows else fn(x))
    return tuple(torch.cat(column) for column in zip(*parts))


def _shape_skew_kurt(m2: Tensor, m3: Tensor, m4: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    """Skewness and excess kurtosis from central moments, NaN where the distribution is constant."""
    constant = m2 <= (_EPS * mean) ** 2
    safe = torch.where(constant, torch.ones_like(m2), m2)
    nan = torch.full_like(m2, float("nan"))
    skew = torch.where(constant, nan, m3 / safe.pow(1.5))
    kurt = torch.where(constant, nan, m4 / (safe * safe) - 3.0)
    return skew, kurt


@STATISTICS.register("moments")
class Moments:
    """Moments of all selected values of an example (see the module docstring).

    Args:
        statistics: the subset of :data:`MOMENT_NAMES` to compute (default: all of them).
    """

    family: ClassVar[str] = "moments"

    def __init__(self, statistics: Sequence[str] | None = None) -> None:
        self.names = _check_names(statistics, MOMENT_NAMES, self.family)

    def statistic_names(self) -> tuple[str, ...]:
        return self.names

    def reduce(
        self, acts: Float[Tensor, "tokens d"], groups: Int[Tensor, " tokens"], n_groups: int, layer: int
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        acts = _float64_capable(acts)
        groups = groups.to(acts.device)
        need = set(self.names)
        count = torch.bincount(groups, minlength=n_groups).to(torch.float64) * acts.shape[1]

        def per_group(per_token: Tensor) -> Tensor:
            return torch.zeros(n_groups, dtype=torch.float64, device=acts.device).index_add_(0, groups, per_token)

        first = _row_reductions(acts, lambda x: (x.sum(1), x.abs().amax(1), (x * x).sum(1)))
        mean = per_group(first[0]) / count
        out: dict[str, Tensor] = {"mean": mean}
        if need & {"variance", "skewness", "kurtosis"}:
            token_mean = mean[groups]

            def central(x: Tensor, rows: slice) -> tuple[Tensor, ...]:
                c = x - token_mean[rows, None]
                c2 = c * c
                return c2.sum(1), (c2 * c).sum(1), (c2 * c2).sum(1)

            m2, m3, m4 = (per_group(t) / count for t in _row_reductions(acts, central, with_rows=True))
            out["variance"] = m2
            out["skewness"], out["kurtosis"] = _shape_skew_kurt(m2, m3, m4, mean)
        if "max_abs" in need:
            out["max_abs"] = torch.zeros(n_groups, dtype=torch.float64, device=acts.device).scatter_reduce_(
                0, groups, first[1], reduce="amax", include_self=False
            )
        if "l2_norm" in need:
            out["l2_norm"] = per_group(first[2]).sqrt()
        return {name: out[name] for name in self.names}


@STATISTICS.register("token_moments")
class TokenMoments:
    """Per-token moments over ``d_model`` values, averaged over an example's tokens.

    Args:
        statistics: the subset of :data:`TOKEN_MOMENT_NAMES` to compute (default: all of them).
    """

    family: ClassVar[str] = "token_moments"

    def __init__(self, statistics: Sequence[str] | None = None) -> None:
        self.names = _check_names(statistics, TOKEN_MOMENT_NAMES, self.family)

    def statistic_names(self) -> tuple[str, ...]:
        return self.names

    def reduce(
        self, acts: Float[Tensor, "tokens d"], groups: Int[Tensor, " tokens"], n_groups: int, layer: int
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        acts = _float64_capable(acts)
        groups = groups.to(acts.device)

        def per_token_moments(x: Tensor) -> tuple[Tensor, ...]:
            mean = x.mean(1, keepdim=True)
            c = x - mean
            c2 = c * c
            m2, m3, m4 = c2.mean(1), (c2 * c).mean(1), (c2 * c2).mean(1)
            skew, kurt = _shape_skew_kurt(m2, m3, m4, mean[:, 0])
            return m2, skew, kurt, x.abs().amax(1), (x * x).sum(1).sqrt()

        per_token = dict(zip(TOKEN_MOMENT_NAMES, _row_reductions(acts, per_token_moments)))
        n = torch.bincount(groups, minlength=n_groups).to(torch.float64)
        out = {}
        for name in self.names:
            total = torch.zeros(n_groups, dtype=torch.float64, device=acts.device).index_add_(0, groups, per_token[name])
            out[name] = total / n
        return out
