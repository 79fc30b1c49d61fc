"""Reading and overwriting single heads' outputs (``hook_z``) at one position per row.

``blocks.L.attn.hook_z`` is ``[batch, pos, head, d_head]``: each head's attention-weighted values,
before ``W_O`` mixes the heads into the residual stream, so one head can be read or replaced
without touching the others. Both context managers attach their hooks with ``model.hooks(...)``,
which removes them on exit, also on error; run the forward pass inside the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError

__all__ = ["z_hook", "record_head_outputs", "patch_head_outputs"]


def z_hook(layer: int) -> str:
    """The hook holding every head's output of block ``layer``."""
    return f"blocks.{layer}.attn.hook_z"


def _check_layer(model: HookedTransformer, layer: int) -> None:
    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"Layer {layer} does not exist; the model has layers 0..{model.cfg.n_layers - 1}.")


@contextlib.contextmanager
def record_head_outputs(
    model: HookedTransformer, positions: Int[Tensor, " batch"], layers: Sequence[int], out: dict[int, Tensor]
) -> Iterator[dict[int, Tensor]]:
    """Store ``out[L] = hook_z[b, positions[b]]`` (``[batch, head, d_head]``, float32, on CPU) for each layer.

    Only the selected rows are kept (reduced inside the hook); ``out`` is filled during the
    forward pass run inside the block, and yielded for convenience.
    """
    for layer in layers:
        _check_layer(model, layer)
    rows_by_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def record(z: Tensor, hook: Any) -> None:
        idx = rows_by_device.get(z.device)
        if idx is None:
            pos = positions.to(z.device)
            idx = rows_by_device[z.device] = (torch.arange(len(pos), device=z.device), pos)
        out[int(hook.name.split(".")[1])] = z[idx[0], idx[1]].float().cpu()

    with model.hooks(fwd_hooks=[(z_hook(layer), record) for layer in layers]):
        yield out


@contextlib.contextmanager
def patch_head_outputs(
    model: HookedTransformer,
    layer: int,
    positions: Int[Tensor, " batch"],
    heads: Int[Tensor, " batch"],
    values: Float[Tensor, "batch d_head"],
) -> Iterator[None]:
    """Replace ``hook_z[b, positions[b], heads[b]]`` by ``values[b]`` at block ``layer``, for every row ``b``.

    Every other head, position and row is left as computed.
    """
    _check_layer(model, layer)
    if not (len(positions) == len(heads) == len(values)):
        raise ConfigError(
            f"patch_head_outputs needs one position, head and value per row; got {len(positions)}, {len(heads)}, {len(values)}."
        )
    if len(heads) and not (0 <= int(heads.min()) and int(heads.max()) < model.cfg.n_heads):
        raise ConfigError(f"Head indices must lie in 0..{model.cfg.n_heads - 1}; got {int(heads.min())}..{int(heads.max())}.")

    def patch(z: Tensor, hook: Any) -> Tensor:
        if z.shape[0] != len(positions):
            raise ConfigError(f"patch_head_outputs was set up for {len(positions)} rows but the forward pass has {z.shape[0]}.")
        rows = torch.arange(z.shape[0], device=z.device)
        z = z.clone()
        z[rows, positions.to(z.device), heads.to(z.device)] = values.to(z.device, z.dtype)
        return z

    with model.hooks(fwd_hooks=[(z_hook(layer), patch)]):
        yield
