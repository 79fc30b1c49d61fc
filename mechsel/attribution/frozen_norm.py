"""Frozen normalisation: a LayerNorm/RMSNorm read as the linear map it applies to one input.

A TransformerLens norm computes ``y = P(x) / s(x) * w + b``, with ``P`` the mean-centring
projection (LayerNorm; the identity for RMSNorm), ``s(x)`` the input's scale (``hook_scale``) and
``w``/``b`` its weight and bias (absent once folded: ``LayerNormPre``/``RMSNormPre``). With the
scale frozen at its cached value, ``y`` is affine in ``x``, so a sum of residual components
``x = Σ c`` maps to ``Σ P(c) / s * w + b`` exactly: this is the standard frozen-LayerNorm
linearisation of direct logit attribution. Each component's share is exact for that forward pass;
it is not what the component would give alone (the scale depends on every component).

Only the transpose is needed: the read-out ``y · r`` of a direction ``r`` equals
``x · pullback(r) + b · r`` with ``pullback(r) = P(w * r) / s`` (``P`` is symmetric).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.components.layer_norm import LayerNorm
from transformer_lens.components.layer_norm_pre import LayerNormPre
from transformer_lens.components.rms_norm import RMSNorm
from transformer_lens.components.rms_norm_pre import RMSNormPre

from mechsel.errors import ConfigError

__all__ = ["pull_back"]


def pull_back(norm: nn.Module, scale: float, direction: Float[Tensor, " d_model"]) -> tuple[Float[Tensor, " d_model"], float]:
    """The input direction and constant whose read-out equals reading ``direction`` after ``norm``.

    Args:
        norm: a TransformerLens ``LayerNorm``, ``LayerNormPre``, ``RMSNorm``, ``RMSNormPre`` or
            ``nn.Identity`` (models without normalisation).
        scale: the scale the norm divided by in this forward pass (its cached ``hook_scale``).
        direction: the read-out direction in the norm's output space (float64).

    Returns:
        ``(pulled, constant)`` with ``norm(x) · direction == x · pulled + constant`` for this ``x``.
    """
    if isinstance(norm, nn.Identity):
        return direction, 0.0
    if not isinstance(norm, (LayerNorm, LayerNormPre, RMSNorm, RMSNormPre)):
        raise ConfigError(
            f"Cannot linearise a {type(norm).__name__} normalisation; attribution supports TransformerLens LayerNorm, "
            "LayerNormPre, RMSNorm and RMSNormPre (normalization_type 'LN', 'LNPre', 'RMS', 'RMSPre' or None)."
        )
    weight = getattr(norm, "w", None)
    bias = getattr(norm, "b", None)
    pulled = direction * weight.detach().to(direction) if isinstance(weight, Tensor) else direction
    if isinstance(norm, (LayerNorm, LayerNormPre)):
        pulled = pulled - pulled.mean()
    constant = float(torch.dot(bias.detach().to(direction), direction)) if isinstance(bias, Tensor) else 0.0
    return pulled / scale, constant
