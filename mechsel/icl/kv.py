"""Shared-prefix key/value caches, padded batches and answer-position unembedding.

The engine's speed comes from three habits, all exact:

1. **Prefix reuse.** Prompts that begin with the same tokens (BOS + the same demonstrations)
   share those tokens' keys and values: :func:`encode_prefix` runs the prefix once and
   :meth:`PrefixCache.for_batch` hands a batch of suffixes a TransformerLens
   ``TransformerLensKeyValueCache`` whose entries are that prefix, expanded (not copied) to the
   batch. Rotary positions continue from the prefix.
2. **Explicit padding.** :func:`pad_batch` pads on the side asked for and returns the attention
   mask; TransformerLens derives rotary positions from the mask (``cumsum - 1``), so either side
   gives the unpadded result. One exception is guarded by :func:`check_window`: left padding
   *after* a cached prefix puts pads between prefix and suffix, which stretches sliding-window
   distances (Gemma 3's local layers) once a row is longer than the window.
3. **Answer positions only.** :func:`final_residual` stops before the unembedding
   (``stop_at_layer=n_layers``); :func:`answer_logits` applies the final norm, ``W_U``, ``b_U``
   and the model's logit soft-cap to the few positions that are read. Gemma 3's vocabulary has
   262,144 entries: projecting every position would cost more than the rest of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from mechsel.errors import ConfigError

__all__ = [
    "PaddingSide",
    "PrefixCache",
    "common_prefix_length",
    "encode_prefix",
    "pad_batch",
    "window_ok",
    "check_window",
    "final_residual",
    "answer_logits",
    "model_device",
]

PaddingSide = Literal["left", "right"]
PADDING_SIDES = ("left", "right")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def common_prefix_length(rows: Sequence[Sequence[int]], cap: int) -> int:
    """Length of the longest common token prefix of ``rows``, at most ``cap``."""
    if not rows:
        return 0
    first = rows[0]
    n = min(cap, *(len(r) for r in rows))
    for i in range(max(n, 0)):
        t = first[i]
        if any(r[i] != t for r in rows):
            return i
    return max(n, 0)


@dataclass
class PrefixCache:
    """Keys and values of one prefix, per layer, batch size 1."""

    tokens: tuple[int, ...]
    """The prefix's token ids."""
    keys: list[Tensor]
    """Per layer ``[1, prefix, n_kv_heads, d_head]``."""
    values: list[Tensor]
    """Per layer ``[1, prefix, n_kv_heads, d_head]``."""

    def __len__(self) -> int:
        return len(self.tokens)

    def for_batch(self, batch_size: int, *, frozen: bool) -> TransformerLensKeyValueCache:
        """A cache for ``batch_size`` rows that all start with this prefix.

        ``frozen=True`` (scoring): the forward pass reads it without growing it. ``frozen=False``
        (generation): it grows by each step's keys and values.
        """
        entries = [
            TransformerLensKeyValueCacheEntry(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1), frozen=frozen)
            for k, v in zip(self.keys, self.values)
        ]
        mask = torch.ones(batch_size, len(self.tokens), dtype=torch.long, device=self.keys[0].device)
        return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=frozen)


def encode_prefix(model: HookedTransformer, tokens: Sequence[int]) -> PrefixCache:
    """Run ``tokens`` through every block once and keep their keys and values."""
    if not tokens:
        raise ConfigError("A shared prefix must hold at least one token.")
    device = model_device(model)
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch_size=1)
    ids = torch.tensor([list(tokens)], dtype=torch.long, device=device)
    model(ids, attention_mask=torch.ones_like(ids), past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
    return PrefixCache(tuple(int(t) for t in tokens), [e.past_keys for e in cache.entries], [e.past_values for e in cache.entries])


def pad_batch(
    rows: Sequence[Sequence[int]], side: PaddingSide, *, pad_id: int = 0, device: torch.device | str = "cpu"
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Pad ``rows`` to one length on ``side``.

    Returns:
        ``(tokens, attention_mask, offsets)``: ``offsets[b]`` is the index of row ``b``'s first
        real token (its number of left pads; 0 with right padding).
    """
    if side not in PADDING_SIDES:
        raise ConfigError(f"padding_side must be 'left' or 'right', got {side!r}.")
    if any(len(r) == 0 for r in rows):
        raise ConfigError("Cannot pad an empty row: every row needs at least one token.")
    length = max(len(r) for r in rows)
    tokens = torch.full((len(rows), length), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    offsets = torch.zeros(len(rows), dtype=torch.long)
    for b, r in enumerate(rows):
        start = length - len(r) if side == "left" else 0
        tokens[b, start : start + len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[b, start : start + len(r)] = 1
        offsets[b] = start
    return tokens.to(device), mask.to(device), offsets.to(device)


def window_ok(model: HookedTransformer, prefix_len: int, padded_len: int, side: PaddingSide, *, any_padding: bool) -> bool:
    """Whether a batch is exact: not (left pads after a cached prefix in rows longer than a sliding window)."""
    attn_types = getattr(model.cfg, "attn_types", None) or ()
    window = getattr(model.cfg, "window_size", None)
    if side != "left" or prefix_len == 0 or not any_padding or "local" not in attn_types or window is None:
        return True
    return prefix_len + padded_len <= window


def check_window(model: HookedTransformer, prefix_len: int, padded_len: int, side: PaddingSide, *, any_padding: bool) -> None:
    """Refuse left padding after a cached prefix when a row outgrows a sliding attention window."""
    if not window_ok(model, prefix_len, padded_len, side, any_padding=any_padding):
        raise ConfigError(
            f"Left padding after a shared prefix of {prefix_len} tokens puts pads inside rows of {prefix_len + padded_len} "
            f"tokens, longer than the model's sliding window ({model.cfg.window_size}); the local layers would measure "
            f"distances across the pads. Use padding_side='right' (exact at any length) or prefix_reuse=False."
        )


def final_residual(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    past_kv_cache: TransformerLensKeyValueCache | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream after the last block (before the final norm), without unembedding."""
    return model(tokens, attention_mask=attention_mask, past_kv_cache=past_kv_cache, stop_at_layer=model.cfg.n_layers)


def answer_logits(
    model: HookedTransformer, resid: Float[Tensor, "n d_model"], w_u_t: Float[Tensor, "d_vocab d_model"] | None = None
) -> Float[Tensor, "n d_vocab"]:
    """Full-vocabulary logits for a few final-residual rows: final norm, ``W_U``, ``b_U``, soft-cap.

    Equals ``model(...)``'s logits at those positions (the final norm acts per position).
    ``w_u_t``: ``model.W_U.T.contiguous()`` made once by a caller that calls this many times (the
    copy is 0.7 GB for a 262k-token vocabulary).
    """
    x = resid[:, None, :]
    if model.cfg.normalization_type is not None:
        x = model.ln_final(x)
    w_u_t = model.W_U.T.contiguous() if w_u_t is None else w_u_t
    logits = F.linear(x[:, 0, :], w_u_t, model.b_U)  # as TransformerLens's Unembed
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    if cap is not None and cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits
