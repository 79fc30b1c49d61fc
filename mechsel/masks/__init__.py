"""Segmented prompts and attention-mask strategies (``full``, ``isolated``, ``isolated_inplace``, ``alone``)."""

from mechsel.masks.hooks import attention_mask_hooks, override_positions, strategy_hooks
from mechsel.masks.segments import PromptBuilder, Segment, SegmentedPrompt, alone_prompt
from mechsel.masks.strategies import (
    MASK_NAMES,
    MASKS,
    MaskName,
    MaskStrategy,
    allowed_matrix,
    alone_segments,
    batch_allowed,
    get_mask,
    position_ids,
)

__all__ = [
    "PromptBuilder",
    "Segment",
    "SegmentedPrompt",
    "alone_prompt",
    "MASK_NAMES",
    "MASKS",
    "MaskName",
    "MaskStrategy",
    "get_mask",
    "allowed_matrix",
    "batch_allowed",
    "position_ids",
    "alone_segments",
    "attention_mask_hooks",
    "override_positions",
    "strategy_hooks",
]
