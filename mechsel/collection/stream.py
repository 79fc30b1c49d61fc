"""Activation streaming: run the model over a batch and hand each hook's activations to a callback.

The loops that read activations (the statistics collector, SAE training activations, NeuFS
neuron sets, LM embeddings) run their batches through :func:`stream_batch`, so they share one
policy; each keeps its own batch composition. (ICL scoring and generation pad on a chosen side
and reuse KV caches; they live in :mod:`mechsel.icl.kv`.)

* **Tokens as given.** Sequences are token ids (or :class:`~mechsel.masks.segments.SegmentedPrompt`
  objects) that already carry BOS or not; BOS is decided where they are encoded
  (:func:`~mechsel.masks.segments.alone_prompt`, :func:`~mechsel.sae.activations.encode_texts`)
  and kept out of the results by the positions the caller selects.
* **Right padding with an explicit attention mask**, padded with :func:`pad_token_id`. With
  right padding and causal attention no real position ever sees a padding token, and real
  positions keep ids ``0..n-1``, so the mask changes nothing there; passing it means
  TransformerLens never infers one from the tokenizer's padding side (it does when that side is
  ``"left"``, as Gemma's is).
* **Only what is asked for.** Hooks are added with ``model.hooks(...)`` (removed on exit, also
  on error), the forward pass runs under ``torch.inference_mode()`` and stops after the last
  hooked block (``stop_at_layer = max(layer) + 1``). Inside each hook the activations of the
  selected positions are gathered and passed to the callback at once, one layer of one batch at
  a time; nothing caches all layers. Callers reduce inside the callback or move to the CPU.

Padding never reaches a callback: selected positions must lie inside their sequence, and without
a selection the whole ``[batch, pos, ...]`` block is delivered with padded positions set to 0.
The unit tests check the delivered activations against ``run_with_cache`` on each sequence
run alone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import SegmentedPrompt

__all__ = ["ActivationCallback", "PaddedBatch", "pad_token_id", "right_pad", "pad_right", "hooked_layers", "stream_batch"]

ActivationCallback = Callable[[str, Tensor], None]
"""``callback(hook_name, acts)``: called once per hook and batch, inside the hook, in forward
order. ``acts`` is ``[selected, *rest]`` (the selected positions, row by row) or, for a batch
without selection, ``[batch, pos, *rest]`` with padding zeroed; a new tensor on the model's
device. Reduce it or move it to the CPU there: holding device tensors across batches is what
streaming avoids."""

_BLOCK_HOOK = re.compile(r"blocks\.(\d+)\..+")


def pad_token_id(model: Any) -> int:
    """The id used to pad batches: the tokenizer's pad id, else 0.

    Any valid id gives the same numbers: padding is right of every real token, masked out of
    attention and never selected; 0 is a valid id of every vocabulary.
    """
    pad = getattr(getattr(model, "tokenizer", None), "pad_token_id", None)
    return 0 if pad is None else int(pad)


def right_pad(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Stack token lists into ``[batch, max_len]`` int64 with padding on the right, plus their lengths."""
    lengths = torch.tensor([len(t) for t in token_lists], dtype=torch.long)
    out = torch.full((len(token_lists), int(lengths.max())), int(pad_id), dtype=torch.long)
    for i, t in enumerate(token_lists):
        out[i, : len(t)] = torch.tensor(list(t), dtype=torch.long)
    return out, lengths


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded token ids, their attention mask, and the positions whose activations are delivered."""

    tokens: Int[Tensor, "batch pos"]
    """int64 token ids, padded on the right with :func:`pad_token_id`."""
    attention_mask: Int[Tensor, "batch pos"]
    """int64, 1 on real tokens, 0 on padding."""
    select: Int[Tensor, " selected"] | None
    """Flat indices ``b * pos + p`` of the selected positions, row by row (int64); ``None``:
    deliver every position (padding zeroed)."""


def pad_right(
    sequences: Sequence[Sequence[int] | SegmentedPrompt],
    pad_id: int,
    positions: Sequence[Sequence[int] | np.ndarray] | None = None,
) -> PaddedBatch:
    """Right-pad a batch of sequences and flatten the selected ``positions`` (one list per sequence).

    Raises:
        DataError: no sequences, an empty sequence, a positions list per sequence missing, or a
            position outside its sequence (padding is never selected).
    """
    token_lists = [s.tokens if isinstance(s, SegmentedPrompt) else s for s in sequences]
    if not token_lists or any(len(t) == 0 for t in token_lists):
        raise DataError(f"pad_right needs at least one sequence and no empty ones; got lengths {[len(t) for t in token_lists]}.")
    tokens, lengths = right_pad(token_lists, pad_id)
    length = tokens.shape[1]
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    if positions is None:
        return PaddedBatch(tokens, attention_mask, None)
    if len(positions) != len(token_lists):
        raise DataError(f"pad_right got {len(positions)} position lists for {len(token_lists)} sequences; give one per sequence.")
    flat = []
    for b, (pos, n) in enumerate(zip(positions, lengths.tolist())):
        idx = np.asarray(pos, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(
                f"Sequence {b} has {n} tokens, but positions {idx.min()}..{idx.max()} were selected; select positions in [0, {n})."
            )
        flat.append(b * length + idx)
    return PaddedBatch(tokens, attention_mask, torch.from_numpy(np.concatenate(flat)))


def hooked_layers(hook_names: Sequence[str]) -> list[int]:
    """The block index of each ``blocks.<L>.<hook>`` name; other names raise."""
    layers = []
    for name in hook_names:
        match = _BLOCK_HOOK.fullmatch(name)
        if match is None:
            raise ConfigError(f"Hook {name!r} is not inside a block; activations are streamed from hooks named 'blocks.<L>.<hook>'.")
        layers.append(int(match.group(1)))
    return layers


def stream_batch(
    model: Any,
    batch: PaddedBatch,
    hook_names: Sequence[str],
    callback: ActivationCallback,
    *,
    extra_hooks: Sequence[AbstractContextManager[Any]] = (),
) -> Float[Tensor, "batch pos d_model"]:
    """Run ``model`` on ``batch`` up to the last hooked block, calling ``callback(name, acts)`` inside each hook.

    Args:
        model: a TransformerLens ``HookedTransformer``.
        batch: from :func:`pad_right`.
        hook_names: ``blocks.<L>.<hook>`` names; the forward pass stops after the highest ``L``.
        callback: see :data:`ActivationCallback`.
        extra_hooks: other hook context managers for this forward pass (e.g. a mask strategy's
            :func:`~mechsel.masks.hooks.strategy_hooks`), entered inside inference mode before
            the streaming hooks and exited after the pass.

    Returns:
        The residual stream after the last hooked block (an inference tensor; further work on it
        must also run under ``torch.inference_mode()``).
    """
    if not hook_names:
        raise ConfigError("stream_batch needs at least one hook name ('blocks.<L>.<hook>').")
    stop = max(hooked_layers(hook_names)) + 1
    select = batch.select
    on_device: dict[torch.device, Tensor] = {}  # the selection (or the padding mask) per device

    def deliver(act: Tensor, hook: Any) -> None:
        if select is None:
            pad = on_device.get(act.device)
            if pad is None:
                pad = on_device[act.device] = (batch.attention_mask == 0).to(act.device)
            callback(hook.name, act.masked_fill(pad.reshape(*pad.shape, *[1] * (act.ndim - 2)), 0))
        else:
            idx = on_device.get(act.device)
            if idx is None:
                idx = on_device[act.device] = select.to(act.device)
            callback(hook.name, act.flatten(0, 1).index_select(0, idx))

    device = model.cfg.device
    with torch.inference_mode(), contextlib.ExitStack() as stack:
        for extra in extra_hooks:
            stack.enter_context(extra)
        stack.enter_context(model.hooks(fwd_hooks=[(name, deliver) for name in hook_names]))
        return model(batch.tokens.to(device), attention_mask=batch.attention_mask.to(device), stop_at_layer=stop)
