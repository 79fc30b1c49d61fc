"""Classification scoring: the log-probability of every label's word(s) after each prompt.

``log p(label | prompt) = Σ_t log p(w_t | prompt, w_<t)`` over the verbaliser's tokens
``w_1..w_m`` (teacher-forced; one token for the built-in tasks). Log-probabilities are normalised
over the full vocabulary, exactly as a plain forward pass + ``log_softmax`` would give them; use
:func:`label_distribution` for the distribution over the labels only.

:class:`LabelScorer` needs one forward pass per prompt (per prompt *and* multi-token label when a
verbaliser has several tokens), reuses the keys and values of the prompts' longest common prefix,
batches the rest with explicit padding and unembeds only the answer positions (see
:mod:`mechsel.icl.kv`). :func:`naive_label_logprobs` is the slow reference it is tested and
benchmarked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError, DataError
from mechsel.icl.kv import (
    PADDING_SIDES,
    PaddingSide,
    answer_logits,
    check_window,
    common_prefix_length,
    encode_prefix,
    final_residual,
    model_device,
    pad_batch,
)
from mechsel.masks.segments import SegmentedPrompt
from mechsel.models.memory import batch_token_budget

__all__ = ["ScoringConfig", "LabelScorer", "token_batches", "naive_label_logprobs", "label_distribution"]


PromptLike = SegmentedPrompt | Sequence[int]
UNEMBED_ROWS = 128
"""Answer positions unembedded per call (a ``[128, d_vocab]`` float32 block: 134 MB for Gemma 3)."""


@dataclass(frozen=True)
class ScoringConfig:
    """How prompts are batched and cached when scoring (every choice gives the same results up to float32 rounding)."""

    batch_size: int = 16
    """Most prompt suffixes per forward pass."""
    max_batch_tokens: int | Literal["auto"] | None = "auto"
    """Also cap a batch at this many padded suffix tokens (rows × the batch's longest suffix after
    the shared prefix; at least one row per batch), so long prompts go in small batches. On 2 CPU
    cores, per-query 8-shot AG News prompts (~430 tokens) score 1.4x faster two at a time than 16
    at a time, and 4-shot SST-2 prompts (~100 tokens) 1.4x faster eight at a time. ``auto``: 1,024
    on a CPU, and on a GPU what its free memory holds (:func:`mechsel.models.memory.batch_token_budget`;
    raise ``batch_size`` there too). ``None``: ``batch_size`` alone decides."""
    padding_side: PaddingSide = "right"
    """Side padded in a batch. Both are exact; ``right`` stays exact past a sliding window."""
    prefix_reuse: bool = True
    """Encode the prompts' longest common prefix once and reuse its keys and values."""
    min_prefix_tokens: int = 2
    """A common prefix shorter than this is not worth a cache and is recomputed per row."""
    progress: bool = False
    """Show a tqdm bar over batches."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}.")
        if (
            self.max_batch_tokens != "auto"
            and self.max_batch_tokens is not None
            and (isinstance(self.max_batch_tokens, bool) or not isinstance(self.max_batch_tokens, int) or self.max_batch_tokens < 1)
        ):
            raise ConfigError(f"max_batch_tokens must be an integer ≥ 1, 'auto' or None, got {self.max_batch_tokens!r}.")
        if self.padding_side not in PADDING_SIDES:
            raise ConfigError(f"padding_side must be one of {PADDING_SIDES}, got {self.padding_side!r}.")
        if self.min_prefix_tokens < 1:
            raise ConfigError(f"min_prefix_tokens must be ≥ 1, got {self.min_prefix_tokens}.")


def _as_tokens(prompt: PromptLike) -> tuple[int, ...]:
    tokens = prompt.tokens if isinstance(prompt, SegmentedPrompt) else tuple(int(t) for t in prompt)
    if not tokens:
        raise DataError("Cannot score an empty prompt; every prompt needs at least one token (e.g. BOS).")
    return tokens


def _check_labels(label_token_ids: Sequence[Sequence[int]], d_vocab: int) -> tuple[tuple[int, ...], ...]:
    labels = tuple(tuple(int(t) for t in ids) for ids in label_token_ids)
    if len(labels) < 1 or any(not ids for ids in labels):
        raise ConfigError(f"Every label needs at least one token id, got {labels}.")
    bad = [t for ids in labels for t in ids if not 0 <= t < d_vocab]
    if bad:
        raise ConfigError(
            f"Label token id {bad[0]} is outside the model's vocabulary (0..{d_vocab - 1}); was it encoded by another tokenizer?"
        )
    return labels


class LabelScorer:
    """Scores label words after prompts on a TransformerLens model.

    Args:
        model: any ``HookedTransformer``.
        label_token_ids: token ids of each label's verbaliser (see
            :attr:`mechsel.tasks.PromptEncoder.label_token_ids`).
        config: batching and caching (:class:`ScoringConfig`).
    """

    def __init__(self, model: HookedTransformer, label_token_ids: Sequence[Sequence[int]], config: ScoringConfig | None = None) -> None:
        self.model = model
        self.labels = _check_labels(label_token_ids, model.cfg.d_vocab_out)
        self.config = config or ScoringConfig()

    def _rows(self, prompts: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """Rows to run and the reads ``(row, position, token, prompt, label)`` that score them."""
        multi = [j for j, ids in enumerate(self.labels) if len(ids) > 1]
        rows: list[tuple[int, ...]] = []
        reads: list[tuple[int, int, int, int, int]] = []
        for i, p in enumerate(prompts):
            base = len(rows)
            for j in multi:
                rows.append(p + self.labels[j][:-1])
                reads.extend((len(rows) - 1, len(p) - 1 + t, tok, i, j) for t, tok in enumerate(self.labels[j]))
            if not multi:
                rows.append(p)
            reads.extend((base, len(p) - 1, ids[0], i, j) for j, ids in enumerate(self.labels) if len(ids) == 1)
        return rows, np.asarray(reads, dtype=np.int64).reshape(-1, 5)

    @torch.inference_mode()
    def logprobs(self, prompts: Sequence[PromptLike]) -> Float[Tensor, "n n_labels"]:
        """``[n_prompts, n_labels]`` log-probabilities (float32, on CPU) of each label after each prompt.

        Put prompts that share a beginning in one call: their longest common prefix is encoded
        once. Prompt order does not matter otherwise (rows are sorted by length internally).
        """
        prompts_t = [_as_tokens(p) for p in prompts]
        if not prompts_t:
            return torch.zeros((0, len(self.labels)))
        model, cfg = self.model, self.config
        device = model_device(model)
        rows, reads = self._rows(prompts_t)
        cap = min(len(p) for p in prompts_t) - 1  # every row's first read must lie after the prefix
        n_prefix = common_prefix_length(rows, cap) if cfg.prefix_reuse else 0
        prefix = encode_prefix(model, rows[0][:n_prefix]) if n_prefix >= cfg.min_prefix_tokens else None
        n_prefix = len(prefix) if prefix is not None else 0
        out = torch.zeros((len(prompts_t), len(self.labels)), dtype=torch.float64)
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
        reads_by_row: dict[int, list[int]] = {}
        for k, r in enumerate(reads[:, 0]):
            reads_by_row.setdefault(int(r), []).append(k)
        cap_tokens = batch_token_budget(model) if cfg.max_batch_tokens == "auto" else cfg.max_batch_tokens
        batches = token_batches([len(rows[r]) - n_prefix for r in order], cfg.batch_size, cap_tokens)
        batches = [[order[i] for i in b] for b in batches]
        finals: list[Tensor] = []  # final residuals of answer positions, unembedded together below
        final_rows, read_ids = [], []
        n_final = 0
        for batch in tqdm(batches, desc="scoring", disable=not cfg.progress, leave=False):
            suffixes = [rows[r][n_prefix:] for r in batch]
            tokens, mask, offsets = pad_batch(suffixes, cfg.padding_side, device=device)
            check_window(model, n_prefix, tokens.shape[1], cfg.padding_side, any_padding=bool((mask == 0).any()))
            cache = prefix.for_batch(len(batch), frozen=True) if prefix is not None else None
            resid = final_residual(model, tokens, mask, cache)
            ks = [k for r in batch for k in reads_by_row[r]]
            local_row = {r: b for b, r in enumerate(batch)}
            b_idx = torch.tensor([local_row[int(reads[k, 0])] for k in ks], dtype=torch.long, device=device)
            p_idx = torch.tensor([int(reads[k, 1]) - n_prefix for k in ks], dtype=torch.long, device=device) + offsets[b_idx]
            pairs, inverse = torch.unique(torch.stack([b_idx, p_idx]), dim=1, return_inverse=True)
            finals.append(resid[pairs[0], pairs[1]])
            final_rows.append(inverse + n_final)
            read_ids.extend(ks)
            n_final += pairs.shape[1]
        # The unembedding reads all of W_U ([d_model, d_vocab]: 168M numbers for Gemma 3) per call,
        # so it runs once per UNEMBED_ROWS answer positions rather than once per (small) batch.
        final, rows_of_read = torch.cat(finals), torch.cat(final_rows)
        ids = np.asarray(read_ids, dtype=np.int64)
        tok = torch.as_tensor(reads[ids, 2], device=device)
        values = torch.zeros(len(ids), dtype=torch.float64)
        for start in range(0, n_final, UNEMBED_ROWS):
            logp = answer_logits(model, final[start : start + UNEMBED_ROWS]).float().log_softmax(dim=-1)
            sel = (rows_of_read >= start) & (rows_of_read < start + UNEMBED_ROWS)
            values[sel.cpu()] = logp[rows_of_read[sel] - start, tok[sel]].double().cpu()
        out.index_put_((torch.as_tensor(reads[ids, 3]), torch.as_tensor(reads[ids, 4])), values, accumulate=True)
        return out.float()


def token_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """Consecutive batches of row positions ``0..n-1`` (rows sorted longest first): at most
    ``batch_size`` rows, and rows × the batch's longest row ≤ ``max_tokens`` (``None``: no cap),
    but never fewer than one row."""
    batches: list[list[int]] = []
    for i, n in enumerate(lengths):
        batch = batches[-1] if batches else None
        longest = max([lengths[j] for j in batch] + [n]) if batch else n
        if batch and len(batch) < batch_size and (max_tokens is None or (len(batch) + 1) * longest <= max_tokens):
            batch.append(i)
        else:
            batches.append([i])
    return batches


@torch.inference_mode()
def naive_label_logprobs(
    model: HookedTransformer, prompts: Sequence[PromptLike], label_token_ids: Sequence[Sequence[int]]
) -> Float[Tensor, "n n_labels"]:
    """Reference implementation: one plain forward pass with full logits per prompt (and per
    multi-token label), ``log_softmax`` over the vocabulary at every position, then read the
    label tokens. Slow by design; used to test and benchmark :class:`LabelScorer`."""
    labels = _check_labels(label_token_ids, model.cfg.d_vocab_out)
    device = model_device(model)
    out = torch.zeros((len(prompts), len(labels)))
    for i, prompt in enumerate(prompts):
        p = _as_tokens(prompt)
        groups = [[j] for j, ids in enumerate(labels) if len(ids) > 1]
        single = [j for j, ids in enumerate(labels) if len(ids) == 1]
        if single:
            groups.append(single)
        for group in groups:
            cont = labels[group[0]][:-1] if len(group) == 1 and len(labels[group[0]]) > 1 else ()
            logp = model(torch.tensor([p + cont], device=device)).float().log_softmax(dim=-1)[0]
            for j in group:
                out[i, j] = sum(logp[len(p) - 1 + t, tok] for t, tok in enumerate(labels[j]))
    return out


def label_distribution(logprobs: Float[Tensor, "n n_labels"] | np.ndarray) -> np.ndarray:
    """Softmax over the labels of label log-probabilities: ``p(label | prompt, label ∈ labels)``."""
    lp = torch.as_tensor(logprobs, dtype=torch.float64)
    return torch.softmax(lp, dim=-1).numpy()
