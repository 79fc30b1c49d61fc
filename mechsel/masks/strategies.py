"""Attention-mask strategies: who may attend to whom inside a segmented prompt.

A prompt (:class:`~mechsel.masks.segments.SegmentedPrompt`) is BOS, then demonstration,
separator and query segments. A strategy decides which earlier tokens each token may attend to,
and at which positions the tokens sit:

``full``
    Ordinary causal attention: every token sees every earlier token, so each demonstration is
    read in the context of the ones before it. Nothing is hooked.
``isolated``
    Block-diagonal causal attention: a token sees the earlier tokens of its own segment and the
    BOS token, nothing else (separators are segments of their own, so they are isolated too),
    and each segment's positions restart right after BOS (BOS at 0, the segment's first token at
    1, ...). Every segment is therefore computed exactly as if it had been encoded ``alone``,
    while all segments of a prompt share one forward pass.
``isolated_inplace``
    The same block-diagonal mask, but every segment keeps the absolute positions it has in the
    prompt: "the demonstration where it sits, without seeing the other demonstrations".
``alone``
    Each demonstration/query segment is re-encoded as its own sequence, BOS + the segment (the
    prompt's BOS, if it has one), with ordinary causal attention. Nothing is hooked.

**What is exact, and why positions restart under ``isolated``.** A mask only removes attention
entries; it cannot change positions. With rotary embeddings (Gemma, Llama, Qwen) an attention
score depends on the query and key positions only through their difference, so inside a segment
a mask alone already reproduces the relative positions of ``alone``, but the distance from a
token to BOS would be its prompt position rather than its offset within the segment (with
absolute position embeddings every position would differ). ``isolated`` removes that difference
by re-rotating queries and keys to the restarted positions (see
:func:`mechsel.masks.hooks.override_positions`); ``isolated_inplace`` keeps it on purpose. The
exactness checks (``tests/unit/test_masks_exact.py``, ``tests/integration/test_collect_real.py``):

* ``isolated`` == ``alone`` for every segment (float error only, rotary or absolute positions);
* ``isolated_inplace`` == ``alone`` encoded at the segment's prompt positions (BOS at 0, the
  segment at its own prompt positions), i.e. the mask blocks every path from the other segments;
* ``isolated_inplace`` != ``alone`` on rotary models, through the distance to BOS.

Sliding windows: TransformerLens applies local (windowed) attention by sequence index, not by
position, so a token more than ``window_size`` tokens after BOS cannot see BOS in the local
layers (exactly as under ``full``). Restarted positions cannot undo this, so the hooks refuse
``isolated`` on a sequence longer than the window (Gemma 3: 512 tokens); :func:`mechsel.collect`
encodes such prompts' segments ``alone`` instead, which gives the same numbers by definition.

Masks compose with the model's own masking: the hook sets extra entries of
``blocks.{L}.attn.hook_attn_scores`` to the value TransformerLens uses for masked entries
(``-inf``) and never re-enables one, so causal and sliding-window (Gemma 3 local layers) masking
stay in force. Batches are right-padded, so real tokens never see padding under any strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from mechsel.masks.segments import SegmentedPrompt
from mechsel.registry import Registry

__all__ = [
    "MaskName",
    "MASK_NAMES",
    "MaskStrategy",
    "MASKS",
    "get_mask",
    "allowed_matrix",
    "position_ids",
    "batch_allowed",
    "alone_segments",
]

MaskName = Literal["full", "isolated", "isolated_inplace", "alone"]
"""Names of the built-in strategies (see the module docstring)."""
MASK_NAMES: tuple[str, ...] = get_args(MaskName)

EQUAL_MASKS: tuple[tuple[str, str], ...] = (("isolated", "alone"),)
"""Pairs of strategies that compute the same numbers by construction (checked to 1e-4 in the
tests): collecting both only duplicates a grid, so configs refuse it."""


@dataclass(frozen=True)
class MaskStrategy:
    """How a strategy treats a prompt; built-in instances live in :data:`MASKS`."""

    name: str
    """Registry name (``full``, ``isolated``, ``isolated_inplace``, ``alone``)."""
    description: str
    """One line for listings and error messages."""
    cross_segment: bool
    """Whether a token may attend to earlier segments other than BOS."""
    restart_positions: bool
    """Whether each segment's positions restart right after BOS."""
    reencode: bool
    """Whether each demo/query segment is run as its own sequence (BOS + segment)."""

    @property
    def needs_hooks(self) -> bool:
        """Whether running the strategy needs attention-score (and position) hooks."""
        return not self.cross_segment and not self.reencode


MASKS: Registry[MaskStrategy] = Registry("mask strategy")
for _strategy in (
    MaskStrategy("full", "ordinary causal attention; each segment sees the earlier ones", True, False, False),
    MaskStrategy("isolated", "each segment sees only itself and BOS, positions restarted after BOS (equals alone)", False, True, False),
    MaskStrategy("isolated_inplace", "each segment sees only itself and BOS, at its prompt positions", False, False, False),
    MaskStrategy("alone", "each segment re-encoded on its own as BOS + segment", True, False, True),
):
    MASKS.add(_strategy.name, _strategy)


def get_mask(name: str | MaskStrategy) -> MaskStrategy:
    """The strategy called ``name`` (unknown names raise and list the valid ones)."""
    return name if isinstance(name, MaskStrategy) else MASKS.get(name)


def position_ids(prompt: SegmentedPrompt, strategy: str | MaskStrategy) -> Int[np.ndarray, " pos"]:
    """Position of every token under ``strategy``: ``0..n-1``, or restarted after BOS per segment."""
    strategy = get_mask(strategy)
    n = len(prompt)
    if not strategy.restart_positions:
        return np.arange(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    offset = 1 if prompt.has_bos else 0
    for seg in prompt.segments:
        if seg.kind == "bos":
            out[seg.start : seg.end] = np.arange(len(seg))
        else:
            out[seg.start : seg.end] = offset + np.arange(len(seg))
    return out


def allowed_matrix(prompt: SegmentedPrompt, strategy: str | MaskStrategy) -> Bool[np.ndarray, "pos pos"]:
    """``allowed[q, k]``: may token ``q`` attend to token ``k`` (causality included)?"""
    strategy = get_mask(strategy)
    n = len(prompt)
    causal = np.tril(np.ones((n, n), dtype=bool))
    if strategy.cross_segment:
        return causal
    seg = prompt.segment_ids()
    same = seg[:, None] == seg[None, :]
    bos_keys = np.zeros(n, dtype=bool)
    for i, s in enumerate(prompt.segments):
        if s.kind == "bos":
            bos_keys[seg == i] = True
    return causal & (same | bos_keys[None, :])


def batch_allowed(prompts: Sequence[SegmentedPrompt], strategy: str | MaskStrategy, length: int) -> Bool[Tensor, "batch pos pos"]:
    """Stack :func:`allowed_matrix` of right-padded prompts into ``[batch, length, length]``.

    Padding rows may attend causally to the padding before them (they must attend to something,
    and nothing reads them); real rows never see a padding column.
    """
    out = torch.zeros((len(prompts), length, length), dtype=torch.bool)
    pad_causal = torch.tril(torch.ones((length, length), dtype=torch.bool))
    for b, prompt in enumerate(prompts):
        n = len(prompt)
        out[b, :n, :n] = torch.from_numpy(allowed_matrix(prompt, strategy))
        out[b, n:, n:] = pad_causal[n:, n:]
    return out


def alone_segments(prompt: SegmentedPrompt) -> list[tuple[int, SegmentedPrompt]]:
    """``(segment index, BOS + segment)`` for every demo/query segment of ``prompt`` (``alone``).

    The BOS is the prompt's own BOS token; a prompt without BOS gives segments without BOS.
    Roles and the segment's ``example_id`` are kept.
    """
    bos_tokens: tuple[int, ...] = ()
    bos_roles: tuple = ()
    bos_segs: tuple = ()
    if prompt.has_bos:
        b = prompt.segments[0]
        bos_tokens = prompt.tokens[b.start : b.end]
        bos_roles = prompt.roles[b.start : b.end]
        bos_segs = (b,)
    out = []
    for index, seg in prompt.example_segments():
        off = len(bos_tokens)
        moved = type(seg)(seg.kind, off, off + len(seg), seg.example_id)
        out.append(
            (
                index,
                SegmentedPrompt(
                    tokens=bos_tokens + prompt.tokens[seg.start : seg.end],
                    roles=bos_roles + prompt.roles[seg.start : seg.end],
                    segments=bos_segs + (moved,),
                ),
            )
        )
    return out
