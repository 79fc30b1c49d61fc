"""Float32 matmul precision, chosen explicitly and checked on the machine before it is used.

``torch.set_float32_matmul_precision`` lets float32 matrix products run on faster internal
formats (TF32, or bfloat16-based kernels). Some of these are as accurate as plain float32 on a
given machine and some are not (TF32 on CUDA keeps 10 mantissa bits; a single bfloat16 pass keeps
8), and which one a level selects depends on the hardware and PyTorch build. So a level other than
``highest`` is only ever used after :func:`measure_matmul_error` has measured, on model-sized
products on this device, that its error stays in float32's class (:data:`FLOAT32_CLASS_ERROR`).
Otherwise :func:`matmul_precision` runs at ``highest`` and logs why: a faster setting may make a run
quicker, never change its numbers beyond float32 rounding.

On the 2-core AMD EPYC (AVX512-BF16) these numbers were measured on, ``medium`` passes the check
(error 2.4e-7, as ``highest``) and, with the weight layout of :mod:`mechsel.models.layout`, scores
Gemma 3 270M's ICL prompts 2.2x faster than before with identical predictions; see
``benchmarks/scoring.py``. The check measures error, not how: PyTorch documents ``medium`` as
bfloat16-based, and on other hardware it may well fail the check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from mechsel.errors import ConfigError

__all__ = ["MatmulPrecision", "FLOAT32_CLASS_ERROR", "PrecisionCheck", "product_error", "measure_matmul_error", "matmul_precision"]

logger = logging.getLogger(__name__)

MatmulPrecision = Literal["highest", "high", "medium"]
"""Levels of ``torch.set_float32_matmul_precision``."""
MATMUL_PRECISIONS: tuple[str, ...] = get_args(MatmulPrecision)
FLOAT32_CLASS_ERROR = 1e-5
"""Largest accepted :func:`product_error`. On this project's CPU, float32 products measure 1.5e-7,
inputs rounded to TF32's 10-bit mantissa 1.0e-4 and inputs rounded to bfloat16 9.8e-4 (the
``1 + 2**-10`` probe)."""
PROBE_SHAPES = ((16, 640, 2048), (512, 640, 2048), (512, 2048, 640), (64, 1024, 1024))
"""``(m, k, n)`` products probed: model-like row counts and widths, small and large."""


@dataclass(frozen=True)
class PrecisionCheck:
    """Outcome of asking for a matmul precision."""

    requested: str
    """The level asked for."""
    effective: str
    """The level used: ``requested`` if its error passed the check, else ``highest``."""
    error: float
    """Measured error of ``requested`` (0 for ``highest``, which is not probed)."""
    device: str
    """Where it was measured."""

    def as_dict(self) -> dict[str, object]:
        return {"requested": self.requested, "effective": self.effective, "error": self.error, "device": self.device}


def _check_level(level: str) -> None:
    if level not in MATMUL_PRECISIONS:
        raise ConfigError(f"matmul precision must be one of {list(MATMUL_PRECISIONS)}, got {level!r}.")


def product_error(product: Callable[[Tensor, Tensor], Tensor], device: str | torch.device = "cpu") -> float:
    """Largest relative error of ``product(a, b)`` on float32 inputs, against float64.

    Each entry's error is divided by ``(|A| @ |B|)`` at that entry (the scale floating-point error
    bounds use), over :data:`PROBE_SHAPES`. Also multiplies ``1 + 2**-10`` (not a bfloat16
    number), which a kernel that rounds its inputs to bfloat16 gets wrong at once.
    """
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for m, k, n in PROBE_SHAPES:
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        got = product(a.to(device), b.to(device)).double().cpu()
        scale = a.double().abs() @ b.double().abs()
        worst = max(worst, float(((got - a.double() @ b.double()).abs() / scale).max()))
    one = torch.full((4, 64), 1 + 2**-10)
    exact = product(one.to(device), torch.ones(64, 4, device=device)).double().cpu()
    return max(worst, float((exact / 64 - (1 + 2**-10)).abs().max()) / (1 + 2**-10))


@torch.inference_mode()
def measure_matmul_error(level: MatmulPrecision, device: str | torch.device = "cpu") -> float:
    """:func:`product_error` of float32 ``a @ b`` at ``level`` on ``device`` (previous level restored)."""
    _check_level(level)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision(level)
        return product_error(lambda a, b: a @ b, device)
    finally:
        torch.set_float32_matmul_precision(previous)


@contextmanager
def matmul_precision(level: MatmulPrecision, device: str | torch.device = "cpu") -> Iterator[PrecisionCheck]:
    """Run the block at float32 matmul precision ``level`` if it is float32-accurate on ``device``.

    ``highest`` is used as is. Another level is measured first (:func:`measure_matmul_error`);
    if its error exceeds :data:`FLOAT32_CLASS_ERROR` the block runs at ``highest`` and a warning
    says so. The setting is process-wide in PyTorch; it is restored when the block ends.

    Yields:
        A :class:`PrecisionCheck` to record with the results.
    """
    _check_level(level)
    error = 0.0 if level == "highest" else measure_matmul_error(level, device)
    effective = level if error <= FLOAT32_CLASS_ERROR else "highest"
    if effective != level:
        logger.warning(
            "matmul precision %r computes float32 products on %s with relative error %.1e (> %.0e, not float32-accurate); "
            "running at 'highest' instead, so results keep float32 accuracy (only slower).",
            level,
            device,
            error,
            FLOAT32_CLASS_ERROR,
        )
    elif level != "highest":
        logger.info("matmul precision %r on %s: measured error %.1e, float32-accurate; using it.", level, device, error)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(effective)
    try:
        yield PrecisionCheck(level, effective, error, str(device))
    finally:
        torch.set_float32_matmul_precision(previous)
