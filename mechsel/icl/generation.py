"""Greedy decoding with a key/value cache, stop sequences and a length limit.

Prompts are decoded in batches, left-padded so every row's next token sits in the last column.
The prompts' longest common prefix is encoded once (as in scoring) when that stays exact, i.e.
unless left pads after the prefix would stretch a sliding attention window (see
:func:`mechsel.icl.kv.window_ok`); then the batch runs without the shared prefix. Each step feeds
one token per row and reads logits at that position only. A row stops at the first stop
sequence (cut from the text), at EOS, or after ``max_new_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from mechsel.errors import ConfigError, DataError
from mechsel.icl.kv import answer_logits, common_prefix_length, encode_prefix, final_residual, model_device, pad_batch, window_ok
from mechsel.masks.segments import SegmentedPrompt

__all__ = ["GenerationConfig", "Generation", "greedy_generate", "cut_at_stop"]

StopReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class GenerationConfig:
    """Greedy decoding settings."""

    max_new_tokens: int = 64
    """Length limit of each continuation, in tokens."""
    stop: tuple[str, ...] = ("\n",)
    """Decoding of a row stops at the first of these strings; the text is cut before it."""
    stop_at_eos: bool = True
    """Stop a row when it produces the tokenizer's EOS token."""
    batch_size: int = 8
    """Prompts decoded together."""
    prefix_reuse: bool = True
    """Encode the prompts' longest common prefix once."""
    min_prefix_tokens: int = 2
    """Shorter common prefixes are recomputed per row."""
    progress: bool = False
    """Show a tqdm bar over batches."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}.")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"stop sequences must be non-empty strings, got {list(self.stop)}.")


@dataclass(frozen=True)
class Generation:
    """One decoded continuation."""

    text: str
    """Decoded continuation, cut before the first stop sequence."""
    token_ids: tuple[int, ...]
    """Every generated token id (including those of the stop sequence or EOS)."""
    stopped_by: StopReason
    """``stop`` (a stop sequence), ``eos`` or ``length`` (``max_new_tokens`` reached)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop sequence, and whether one occurred."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def _decode_batch(
    model: HookedTransformer, rows: list[tuple[int, ...]], config: GenerationConfig, tokenizer: Any, eos: int | None
) -> list[Generation]:
    device = model_device(model)
    cap = min(len(r) for r in rows) - 1
    n_prefix = common_prefix_length(rows, cap) if config.prefix_reuse else 0
    longest = max(len(r) for r in rows)
    unequal = any(len(r) != longest for r in rows)
    if n_prefix < config.min_prefix_tokens or not window_ok(
        model, n_prefix, longest - n_prefix + config.max_new_tokens, "left", any_padding=unequal
    ):
        n_prefix = 0
    batch = len(rows)
    if n_prefix:
        cache = encode_prefix(model, rows[0][:n_prefix]).for_batch(batch, frozen=False)
    else:
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch_size=batch)
    tokens, mask, _ = pad_batch([r[n_prefix:] for r in rows], "left", device=device)
    generated: list[list[int]] = [[] for _ in rows]
    reason: list[StopReason | None] = [None] * batch
    texts = [""] * batch
    for _ in range(config.max_new_tokens):
        resid = final_residual(model, tokens, mask, cache)
        next_ids = answer_logits(model, resid[:, -1, :]).argmax(dim=-1)
        for b, t in enumerate(next_ids.tolist()):
            if reason[b] is not None:
                continue
            generated[b].append(t)
            if config.stop_at_eos and eos is not None and t == eos:
                reason[b] = "eos"
                texts[b] = tokenizer.decode(generated[b][:-1]) if tokenizer is not None else ""
                continue
            if tokenizer is not None:
                texts[b], hit = cut_at_stop(tokenizer.decode(generated[b]), config.stop)
                if hit:
                    reason[b] = "stop"
                    continue
            if len(generated[b]) == config.max_new_tokens:
                reason[b] = "length"
        if all(r is not None for r in reason):
            break
        tokens = next_ids[:, None]
        mask = torch.ones_like(tokens)
    return [Generation(texts[b], tuple(generated[b]), reason[b] or "length") for b in range(batch)]


@torch.inference_mode()
def greedy_generate(
    model: HookedTransformer,
    prompts: Sequence[SegmentedPrompt | Sequence[int]],
    config: GenerationConfig | None = None,
    *,
    tokenizer: Any = None,
) -> list[Generation]:
    """Greedy continuations of ``prompts`` (token ids or segmented prompts, BOS included as built).

    Args:
        model: a ``HookedTransformer``.
        prompts: the prompts; results come back in the same order.
        config: :class:`GenerationConfig`.
        tokenizer: decodes tokens for stop sequences and texts (default ``model.tokenizer``).
    """
    config = config or GenerationConfig()
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    if tokenizer is None and config.stop:
        raise ConfigError("Stop sequences need a tokenizer to decode with; pass tokenizer=... or stop=().")
    eos = getattr(tokenizer, "eos_token_id", None)
    rows = [p.tokens if isinstance(p, SegmentedPrompt) else tuple(int(t) for t in p) for p in prompts]
    if any(not r for r in rows):
        raise DataError("Cannot continue an empty prompt; every prompt needs at least one token (e.g. BOS).")
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    out: list[Generation | None] = [None] * len(rows)
    batches = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
    for idx in tqdm(batches, desc="generating", disable=not config.progress, leave=False):
        for i, g in zip(idx, _decode_batch(model, [rows[i] for i in idx], config, tokenizer, eos)):
            out[i] = g
    return out  # type: ignore[return-value]
