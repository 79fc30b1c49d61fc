"""Reconstruction and sparsity metrics of an SAE on a block of activations."""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["evaluate_sae"]


@torch.no_grad()
def evaluate_sae(
    sae: Any,
    acts: Float[Tensor, "tokens d_in"],
    *,
    baseline_mean: Float[Tensor, " d_in"] | None = None,
    batch_size: int = 2048,
) -> dict[str, float]:
    """Metrics of ``sae`` on ``acts`` (typically held-out tokens).

    Returns a dict with:

    * ``mse``: mean over tokens of ``||x - x̂||²``;
    * ``fvu``: fraction of variance unexplained, ``Σ||x - x̂||² / Σ||x - x̄||²`` with ``x̄`` the
      mean of ``acts`` (sae-lens's ``explained_variance`` is ``1 - fvu``);
    * ``explained_variance``: ``1 - fvu``;
    * ``l0``: mean number of active latents per token;
    * ``dead_fraction``: fraction of latents active on none of these tokens;
    * ``cosine``: mean cosine similarity between ``x`` and ``x̂``;
    * ``baseline_fvu`` (when ``baseline_mean`` is given): the FVU of predicting every token as
      ``baseline_mean`` (e.g. the training mean), the "mean-activation baseline";
    * ``n_tokens``.
    """
    x_all = acts.to(torch.float64)
    mean = x_all.mean(0)
    total_var = (x_all - mean).pow(2).sum().item()
    sse = l0 = cos = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    was_training = sae.training
    sae.eval()
    try:
        for start in range(0, acts.shape[0], batch_size):
            x = acts[start : start + batch_size].to(sae.device, sae.dtype)
            feats = sae.encode(x)
            recon = sae.decode(feats).to(torch.float64)
            x64 = x.to(torch.float64)
            active = feats > 0
            sse += (x64 - recon).pow(2).sum().item()
            l0 += active.sum().item()
            cos += torch.nn.functional.cosine_similarity(x64, recon, dim=-1).sum().item()
            fired |= active.any(0).cpu()
    finally:
        sae.train(was_training)
    n = acts.shape[0]
    fvu = sse / total_var if total_var > 0 else float("nan")
    out = {
        "mse": sse / n,
        "fvu": fvu,
        "explained_variance": 1.0 - fvu,
        "l0": l0 / n,
        "dead_fraction": 1.0 - fired.float().mean().item(),
        "cosine": cos / n,
        "n_tokens": float(n),
    }
    if baseline_mean is not None:
        base = (x_all - baseline_mean.to(torch.float64)).pow(2).sum().item()
        out["baseline_fvu"] = base / total_var if total_var > 0 else float("nan")
    return out
