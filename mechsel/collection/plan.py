"""Turning texts or prompts into padded batches, and each example into the token positions summarised.

A *row* is one example occurrence (a plain text, or one demo/query segment of a prompt). A
*sequence* is what one batch entry runs: a whole prompt (``full``, ``isolated``,
``isolated_inplace``), or BOS + one segment (``alone``; also ``isolated`` prompts longer than a
sliding attention window, which ``isolated`` cannot run in one pass but ``alone`` reproduces
exactly). Each sequence lists the rows it serves and, for each, the token positions whose
activations are summarised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mechsel.collection.config import CollectConfig
from mechsel.collection.stream import PaddedBatch, pad_right
from mechsel.errors import ConfigError, DataError
from mechsel.masks.hooks import local_window
from mechsel.masks.segments import Segment, SegmentedPrompt, alone_prompt
from mechsel.masks.strategies import alone_segments, get_mask
from mechsel.provenance import hash_json, hash_texts

__all__ = ["Plan", "PlannedSequence", "Batch", "build_plan", "make_batches", "pad_batch"]

_OWN_ROLES = {"all": ("text", "label"), "input": ("text",), "last": ("text", "label")}


@dataclass
class PlannedSequence:
    """One batch entry: a prompt, and ``(row, token positions)`` for every row it serves."""

    prompt: SegmentedPrompt
    groups: list[tuple[int, np.ndarray]] = field(default_factory=list)


@dataclass
class Plan:
    """All sequences of a run plus the description of every output row."""

    sequences: list[PlannedSequence]
    example_ids: list[Any]
    prompt_ids: list[int]
    segments: list[str]
    n_tokens: list[int]
    data_hash: str
    bos_policy: str
    n_truncated: int = 0
    n_reencoded: int = 0
    """Prompts whose segments ran alone because they exceed a sliding window (``isolated``)."""


@dataclass(frozen=True)
class Batch(PaddedBatch):
    """A right-padded batch of planned sequences (see :func:`~mechsel.collection.stream.pad_right`)
    with the collector's grouping of the selected tokens into output rows."""

    select: torch.Tensor
    """Flat indices (``b * length + pos``) of the summarised tokens, int64."""
    prompts: list[SegmentedPrompt]
    groups: torch.Tensor
    """Local group (0..n_groups-1) of each selected token, int64."""
    rows: np.ndarray
    """Output row of each local group."""


def _selection(prompt: SegmentedPrompt, seg: Segment, cfg: CollectConfig) -> np.ndarray:
    roles = set(_OWN_ROLES[cfg.positions])
    if cfg.include_template:
        roles |= {"template", "sep"}
    idx = np.array([i for i in range(seg.start, seg.end) if prompt.roles[i] in roles], dtype=np.int64)
    if cfg.positions == "last":
        idx = idx[-1:]
    if idx.size and cfg.include_bos and prompt.has_bos:
        bos = prompt.segments[0]
        idx = np.concatenate([np.arange(bos.start, bos.end, dtype=np.int64), idx])
    return idx


def _truncated(prompt: SegmentedPrompt, n: int) -> SegmentedPrompt:
    segs = tuple(Segment(s.kind, s.start, min(s.end, n), s.example_id) for s in prompt.segments if s.start < n)
    return SegmentedPrompt(prompt.tokens[:n], prompt.roles[:n], segs, prompt.pieces)


def _resolve_bos(model: Any, cfg: CollectConfig) -> int | None:
    if cfg.bos_token_id != "auto":
        return cfg.bos_token_id
    bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    if bos is None:
        raise ConfigError(
            "The model's tokenizer has no BOS token. Pass bos_token_id=<id> to choose the token "
            "prepended to every text, or bos_token_id=None to encode texts without BOS."
        )
    return int(bos)


def build_plan(model: Any, inputs: Iterable[Any], cfg: CollectConfig) -> Plan:
    """Validate the inputs and lay out sequences and rows (no forward pass)."""
    if isinstance(inputs, (str, bytes, SegmentedPrompt)) or not isinstance(inputs, Iterable):
        raise DataError(
            f"collect expects a list of texts or of SegmentedPrompts, got {type(inputs).__name__}; "
            f"wrap a single text in a list: collect(model, [text])."
        )
    inputs = list(inputs)
    if len(inputs) == 0:
        raise DataError("collect got no inputs; pass a non-empty list of texts or SegmentedPrompts.")
    n_ctx = model.cfg.n_ctx
    if all(isinstance(x, SegmentedPrompt) for x in inputs):
        return _plan_prompts(inputs, cfg, n_ctx, local_window(model))
    if any(isinstance(x, SegmentedPrompt) for x in inputs):
        raise DataError("collect got a mix of texts and SegmentedPrompts; pass one kind per call.")
    return _plan_texts(model, inputs, cfg, n_ctx)


def _plan_texts(model: Any, texts: list[Any], cfg: CollectConfig, n_ctx: int) -> Plan:
    if cfg.mask != "alone":
        raise ConfigError(
            f"mask={cfg.mask!r} needs prompts with several segments, but plain texts are each encoded "
            f"alone (BOS + text). Pass mask='alone', or build SegmentedPrompts with "
            f"mechsel.masks.segments.PromptBuilder."
        )
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError("The model has no tokenizer; attach one (model.set_tokenizer) or pass SegmentedPrompts.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"Input {i} is a {type(t).__name__}, not a string: {t!r}. Pass texts as str.")
        if not t.strip():
            raise DataError(f"Input {i} is empty (or only whitespace); remove it from the inputs.")
    bos = _resolve_bos(model, cfg)
    plan = Plan([], [], [], [], [], hash_texts(texts), "")
    for i, text in enumerate(texts):
        prompt = alone_prompt(model.tokenizer, text, bos_token_id=bos, example_id=i)
        if len(prompt) > n_ctx:
            if not cfg.truncate:
                raise DataError(
                    f"Input {i} has {len(prompt)} tokens (BOS included) but the model's context is "
                    f"{n_ctx}. Shorten it, or pass truncate=True to keep its first {n_ctx} tokens."
                )
            prompt = _truncated(prompt, n_ctx)
            plan.n_truncated += 1
        _add_rows(plan, PlannedSequence(prompt), prompt, [(prompt.example_segments()[0][1], i, "text")], i, cfg)
    where = "included in" if cfg.include_bos else "excluded from"
    plan.bos_policy = f"prepend BOS id {bos}; {where} statistics" if bos is not None else "no BOS"
    return plan


def _plan_prompts(prompts: list[SegmentedPrompt], cfg: CollectConfig, n_ctx: int, window: int | None) -> Plan:
    if cfg.truncate:
        raise ConfigError("truncate=True applies to plain texts only; shorten the prompts (fewer or shorter demos) instead.")
    has_bos = {p.has_bos for p in prompts}
    if len(has_bos) > 1:
        raise DataError("Some prompts start with a BOS segment and some do not; build them all with the same bos_token_id.")
    strategy = get_mask(cfg.mask)
    data = [[list(p.tokens), list(p.roles), [(s.kind, s.start, s.end, str(s.example_id)) for s in p.segments]] for p in prompts]
    plan = Plan([], [], [], [], [], hash_json(data), "")
    for j, prompt in enumerate(prompts):
        if len(prompt) > n_ctx:
            raise DataError(f"Prompt {j} has {len(prompt)} tokens but the model's context is {n_ctx}; use fewer or shorter demonstrations.")
        if not prompt.example_segments():
            raise DataError(f"Prompt {j} has no demo or query segment to summarise.")
        # isolated restarts positions, but a sliding window counts by sequence index: past the
        # window its one-pass form cannot see BOS, so such prompts run as alone (same numbers).
        past_window = strategy.restart_positions and window is not None and len(prompt) > window
        if strategy.reencode or past_window:
            plan.n_reencoded += int(past_window)
            for index, alone in alone_segments(prompt):
                seg = prompt.segments[index]
                ex = seg.example_id if seg.example_id is not None else f"{j}/{index}"
                _add_rows(plan, PlannedSequence(alone), alone, [(alone.segments[-1], ex, seg.kind)], j, cfg)
        else:
            rows = [(s, s.example_id if s.example_id is not None else f"{j}/{i}", s.kind) for i, s in prompt.example_segments()]
            _add_rows(plan, PlannedSequence(prompt), prompt, rows, j, cfg)
    where = "included in" if cfg.include_bos else "excluded from"
    plan.bos_policy = f"prompt's own BOS; {where} statistics" if has_bos == {True} else "no BOS"
    return plan


def _add_rows(plan: Plan, seq: PlannedSequence, prompt: SegmentedPrompt, rows: list, prompt_id: int, cfg: CollectConfig) -> None:
    for seg, example_id, kind in rows:
        idx = _selection(prompt, seg, cfg)
        if idx.size == 0:
            raise DataError(
                f"Example {example_id!r} (input {prompt_id}) has no tokens for positions={cfg.positions!r} "
                f"(roles in its segment: {sorted(set(prompt.roles[seg.start : seg.end]))}). Use positions='all', "
                f"include_template=True, or give it text tokens."
            )
        seq.groups.append((len(plan.example_ids), idx))
        plan.example_ids.append(example_id)
        plan.prompt_ids.append(prompt_id)
        plan.segments.append(kind)
        plan.n_tokens.append(int(idx.size))
    plan.sequences.append(seq)


def make_batches(plan: Plan, batch_size: int) -> list[list[PlannedSequence]]:
    """Group sequences of similar length (longest first) into batches of ``batch_size``."""
    order = sorted(range(len(plan.sequences)), key=lambda i: -len(plan.sequences[i].prompt))
    ordered = [plan.sequences[i] for i in order]
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def pad_batch(sequences: list[PlannedSequence], pad_token_id: int) -> Batch:
    """Right-pad a batch and flatten its selection."""
    positions, groups, rows = [], [], []
    for seq in sequences:
        positions.append(np.concatenate([idx for _, idx in seq.groups]))
        for row, idx in seq.groups:
            groups.append(np.full(idx.size, len(rows), dtype=np.int64))
            rows.append(row)
    padded = pad_right([s.prompt for s in sequences], pad_token_id, positions)
    assert padded.select is not None  # positions were given
    return Batch(
        tokens=padded.tokens,
        attention_mask=padded.attention_mask,
        select=padded.select,
        prompts=[s.prompt for s in sequences],
        groups=torch.from_numpy(np.concatenate(groups)),
        rows=np.asarray(rows, dtype=np.int64),
    )
