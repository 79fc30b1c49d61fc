"""Weight memory layout that spares TransformerLens a weight copy on every forward pass.

TransformerLens stores gated-MLP weights as ``[d_in, d_out]`` and multiplies with
``F.linear(x, W.T.contiguous())``, the unembedding with ``F.linear(x, W_U.T.contiguous())``, the
query weights ``[head, d_model, d_head]`` after rearranging them to ``[(head d_head), d_model]``
and the output weights after rearranging to ``[d_model, (head d_head)]``. Each forward pass
therefore copies these weights (for full logits, the whole ``[d_model, d_vocab]`` unembedding) into
freshly laid-out buffers. :func:`transpose_friendly_layout` stores them once in the memory order
those rearrangements ask for (same shapes, same values, other strides), so the views are already
contiguous and no copy is made. The products receive the very same contiguous matrices as before,
so the outputs are bit-identical (tested); only the copies disappear. Set-ups that take other code
paths (``use_split_qkv_input``, ``use_attn_in``, ``use_attn_result``) are left untouched.
"""

from __future__ import annotations

import copy

import torch
from transformer_lens import HookedTransformer
from transformer_lens.components.mlps.gated_mlp import GatedMLP

__all__ = ["LINEAR_WEIGHTS", "transpose_friendly_layout", "contiguous_copy"]

LINEAR_WEIGHTS = ("W_in", "W_gate", "W_out")
"""Gated-MLP parameters TransformerLens multiplies as ``F.linear(x, W.T.contiguous())``. Plain MLPs
(``batch_addmm`` on ``W`` itself) are left as they are: there a new layout would change the kernel."""


def _reorder(param: torch.nn.Parameter, order: tuple[int, ...]) -> None:
    """Lay ``param`` out so that ``param.permute(order)`` is contiguous (values and shape unchanged)."""
    if not param.permute(order).is_contiguous():
        inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
        with torch.no_grad():
            param.data = param.data.permute(order).contiguous().permute(inverse)


def transpose_friendly_layout(model: HookedTransformer) -> HookedTransformer:
    """Lay out gated-MLP, query, output and unembedding weights as TransformerLens multiplies them
    (in place; values and shapes unchanged; outputs bit-identical). Returns ``model``."""
    cfg = model.cfg
    plain_attention = not (cfg.use_split_qkv_input or cfg.use_attn_in or cfg.use_attn_result)
    for block in model.blocks:
        attn = getattr(block, "attn", None)
        if plain_attention and isinstance(w_q := getattr(attn, "W_Q", None), torch.nn.Parameter) and w_q.ndim == 3:
            _reorder(w_q, (0, 2, 1))  # viewed as [(head d_head), d_model]
        if plain_attention and isinstance(w_o := getattr(attn, "W_O", None), torch.nn.Parameter) and w_o.ndim == 3:
            _reorder(w_o, (2, 0, 1))  # viewed as [d_model, (head d_head)]
        mlp = getattr(block, "mlp", None)
        if not isinstance(mlp, GatedMLP):
            continue
        for name in LINEAR_WEIGHTS:
            param = getattr(mlp, name, None)
            if isinstance(param, torch.nn.Parameter) and param.ndim == 2:
                _reorder(param, (1, 0))
    unembed = getattr(model, "unembed", None)
    if isinstance(w_u := getattr(unembed, "W_U", None), torch.nn.Parameter):
        _reorder(w_u, (1, 0))
    return model


def contiguous_copy(model: HookedTransformer) -> HookedTransformer:
    """A deep copy of ``model`` with every parameter contiguous, as TransformerLens loads it: the
    baseline that :func:`transpose_friendly_layout` is compared with in tests and benchmarks."""
    plain = copy.deepcopy(model)
    for p in plain.parameters():
        p.data = p.data.contiguous()
    return plain
