"""Context managers that apply a mask strategy to a TransformerLens model through hooks.

All hooks are added with ``model.hooks(...)`` and removed when the block exits, also on error.

* :func:`attention_mask_hooks` — on ``blocks.{L}.attn.hook_attn_scores``, sets every entry that
  the ``allowed`` matrix forbids to the attention module's own ``IGNORE`` value (``-inf``), after
  TransformerLens has applied its causal / sliding-window / padding mask. Entries are only ever
  removed, so the model's own masking always stays in force.
* :func:`override_positions` — runs tokens at chosen positions. For rotary models it re-rotates
  ``hook_rot_q`` / ``hook_rot_k`` from the positions TransformerLens used to the requested ones
  with the attention module's own sin/cos tables (exact up to float rounding, for any rotary
  variant whose tables TransformerLens precomputes); for learned absolute embeddings it replaces
  ``hook_pos_embed``. Other position schemes raise.
* :func:`strategy_hooks` — both of the above, as a strategy requires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from mechsel.errors import ConfigError
from mechsel.masks.segments import SegmentedPrompt
from mechsel.masks.strategies import MaskStrategy, batch_allowed, get_mask, position_ids

__all__ = ["attention_mask_hooks", "override_positions", "strategy_hooks", "default_position_ids", "local_window"]


def default_position_ids(attention_mask: Int[Tensor, "batch pos"] | None, batch: int, length: int) -> Int[Tensor, "batch pos"]:
    """The positions TransformerLens gives each token for this ``attention_mask`` (no KV cache)."""
    if attention_mask is None:
        return torch.arange(length).expand(batch, length)
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@contextlib.contextmanager
def attention_mask_hooks(model: Any, allowed: Bool[Tensor, "batch pos pos"], layers: Sequence[int] | None = None) -> Iterator[None]:
    """Forbid attention wherever ``allowed[b, q, k]`` is False, in ``layers`` (default: all)."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    cache: dict[torch.device, Tensor] = {}

    def hook(scores: Tensor, hook: Any, layer: int) -> Tensor:
        if scores.shape[-2:] != allowed.shape[-2:] or scores.shape[0] != allowed.shape[0]:
            raise ConfigError(
                f"Attention scores of shape {tuple(scores.shape)} do not match the mask "
                f"{tuple(allowed.shape)}; mask hooks need the whole sequence in one forward pass "
                f"(no past_kv_cache) with the batch the mask was built for."
            )
        mask = cache.get(scores.device)
        if mask is None:
            mask = cache[scores.device] = allowed.to(scores.device)[:, None]
        ignore = model.blocks[layer].attn.IGNORE.to(scores.device, scores.dtype)
        return torch.where(mask, scores, ignore)

    fwd = [(f"blocks.{layer}.attn.hook_attn_scores", _bind(hook, layer)) for layer in layers]
    with model.hooks(fwd_hooks=fwd):
        yield


def _bind(fn: Any, layer: int) -> Any:
    def bound(tensor: Tensor, hook: Any) -> Tensor:
        return fn(tensor, hook, layer)

    return bound


def _rerotate(x: Tensor, attn: Any, src: Tensor, dst: Tensor) -> Tensor:
    """Rotary-encoded ``x`` [batch, pos, head, d_head] moved from positions ``src`` to ``dst``."""
    rd = attn.cfg.rotary_dim
    if int(dst.max()) >= attn.rotary_cos.shape[0]:
        raise ConfigError(
            f"Position {int(dst.max())} is beyond the rotary table TransformerLens has built so far "
            f"({attn.rotary_cos.shape[0]} positions); move tokens to positions below that."
        )
    cos = attn.rotary_cos.to(x.device)
    sin = attn.rotary_sin.to(x.device)
    src, dst = src.to(x.device), dst.to(x.device)
    c0, s0 = cos[src][:, :, None, :], sin[src][:, :, None, :]
    c1, s1 = cos[dst][:, :, None, :], sin[dst][:, :, None, :]
    y = x[..., :rd].to(c0.dtype)
    # Tables may carry a scale (YaRN attention factor): invert [[c, -s], [s, c]] exactly.
    plain = (y * c0 - attn.rotate_every_two(y) * s0) / (c0 * c0 + s0 * s0)
    moved = plain * c1 + attn.rotate_every_two(plain) * s1
    changed = (src != dst)[:, :, None, None]
    out = torch.where(changed, moved.to(x.dtype), x[..., :rd])
    return torch.cat([out, x[..., rd:]], dim=-1)


@contextlib.contextmanager
def override_positions(
    model: Any,
    positions: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    layers: Sequence[int] | None = None,
) -> Iterator[None]:
    """Run the next forward passes with token ``positions`` instead of TransformerLens's own.

    ``attention_mask`` must be the one passed to the forward call (it determines the positions
    TransformerLens computes). Positions must lie in ``[0, n_ctx)``.
    """
    kind = model.cfg.positional_embedding_type
    batch, length = positions.shape
    src = default_position_ids(attention_mask, batch, length).to(positions.device)
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= model.cfg.n_ctx):
        raise ConfigError(f"Positions must lie in [0, {model.cfg.n_ctx}); got {int(positions.min())}..{int(positions.max())}.")
    if kind == "rotary":
        layers = range(model.cfg.n_layers) if layers is None else layers

        def hook(x: Tensor, hook: Any, layer: int) -> Tensor:
            return _rerotate(x, model.blocks[layer].attn, src, positions)

        fwd = []
        for layer in layers:
            fwd.append((f"blocks.{layer}.attn.hook_rot_q", _bind(hook, layer)))
            fwd.append((f"blocks.{layer}.attn.hook_rot_k", _bind(hook, layer)))
    elif kind == "standard":

        def pos_hook(pos_embed: Tensor, hook: Any) -> Tensor:
            new = model.pos_embed.W_pos[positions.to(pos_embed.device)].to(pos_embed.dtype)
            return torch.where((src != positions).to(pos_embed.device)[..., None], new, pos_embed)

        fwd = [("hook_pos_embed", pos_hook)]
    else:
        raise ConfigError(
            f"Cannot move token positions for positional_embedding_type={kind!r}; only rotary and "
            f"standard (learned absolute) embeddings are supported. Use mask='isolated_inplace' or 'alone'."
        )
    with model.hooks(fwd_hooks=fwd):
        yield


def local_window(model: Any) -> int | None:
    """The sliding-window size of the model's local attention layers, or ``None`` if it has none."""
    window = getattr(model.cfg, "window_size", None)
    local = getattr(model.cfg, "use_local_attn", False) and "local" in (getattr(model.cfg, "attn_types", None) or ())
    return window if local and isinstance(window, int) else None


def _check_window(model: Any, length: int) -> None:
    window = local_window(model)
    if window is not None and length > window:
        raise ConfigError(
            f"mask='isolated' cannot reproduce 'alone' on a {length}-token sequence: this model's local "
            f"layers hide keys more than {window} tokens back by sequence index, BOS included, whatever "
            f"the positions. Use mask='alone' (collect does this by itself for such prompts) or shorter prompts."
        )


@contextlib.contextmanager
def strategy_hooks(
    model: Any,
    strategy: str | MaskStrategy,
    prompts: Sequence[SegmentedPrompt],
    *,
    length: int,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    layers: Sequence[int] | None = None,
) -> Iterator[None]:
    """Apply ``strategy`` to a right-padded batch of ``prompts`` (padded to ``length``).

    ``full`` and ``alone`` need no hooks (right padding keeps real tokens away from padding);
    ``isolated_inplace`` adds the block-diagonal mask; ``isolated`` also restarts positions per
    segment (and refuses sequences longer than a sliding window, see :mod:`mechsel.masks.strategies`).
    """
    strategy = get_mask(strategy)
    with contextlib.ExitStack() as stack:
        if strategy.needs_hooks:
            allowed = batch_allowed(prompts, strategy, length)
            stack.enter_context(attention_mask_hooks(model, allowed, layers))
        if strategy.restart_positions:
            _check_window(model, length)
            pos = default_position_ids(attention_mask, len(prompts), length).clone()
            for b, prompt in enumerate(prompts):
                pos[b, : len(prompt)] = torch.from_numpy(position_ids(prompt, strategy))
            stack.enter_context(override_positions(model, pos, attention_mask=attention_mask, layers=layers))
        yield
