"""How many padded tokens one scoring batch may hold: a fixed cap on a CPU, free memory on a GPU.

On 2 CPU cores small batches are fastest (``ScoringConfig.max_batch_tokens`` = 1,024 measured
best), but a GPU is used well only with large ones, and how large depends on the memory free on
it. :func:`batch_token_budget` estimates the bytes one batch token costs from the model's shapes —
its keys and values in every layer, the residual and MLP activations alive at once, and the
float32 attention scores against up to ``context`` positions — and divides ``fraction`` of the
free memory by it. An estimate, not a guarantee: ``max_batch_tokens`` set to a number overrides it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CPU_BATCH_TOKENS", "bytes_per_batch_token", "batch_token_budget"]

CPU_BATCH_TOKENS = 1024
"""The cap on a CPU (and the floor on a GPU)."""
MAX_BATCH_TOKENS = 262_144
"""The most a budget grants, whatever the free memory."""


def bytes_per_batch_token(cfg: Any, itemsize: int, context: int = 2048) -> int:
    """Bytes one padded token of a scoring batch costs (module docstring) for a
    ``HookedTransformerConfig``-like ``cfg`` with parameters of ``itemsize`` bytes."""
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    kv = 2 * cfg.n_layers * n_kv * cfg.d_head
    d_mlp = getattr(cfg, "d_mlp", None) or 4 * cfg.d_model
    transient = 6 * cfg.d_model + 3 * d_mlp + 2 * cfg.n_heads * cfg.d_head
    return int(itemsize * (kv + transient) + 4 * cfg.n_heads * min(context, cfg.n_ctx))


def batch_token_budget(model: Any, fraction: float = 0.5, free_bytes: int | None = None) -> int:
    """Padded tokens per scoring batch for ``model`` where it lives: :data:`CPU_BATCH_TOKENS` off
    CUDA; on CUDA ``fraction`` of the free memory (``torch.cuda.mem_get_info``, or
    ``free_bytes``) over :func:`bytes_per_batch_token`, between the CPU cap and
    :data:`MAX_BATCH_TOKENS`."""
    param = next(model.parameters())
    if param.device.type != "cuda" and free_bytes is None:
        return CPU_BATCH_TOKENS
    free = free_bytes if free_bytes is not None else int(torch.cuda.mem_get_info(param.device)[0])
    per = bytes_per_batch_token(model.cfg, param.element_size())
    return int(min(MAX_BATCH_TOKENS, max(CPU_BATCH_TOKENS, fraction * free // per)))
