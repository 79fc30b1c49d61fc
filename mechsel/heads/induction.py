"""Induction scores of every attention head, on repeated random tokens.

The standard test (Olsson et al. 2022, "In-context learning and induction heads"): a sequence of
``R`` random tokens repeated once, ``[BOS] t_1 .. t_R t_1 .. t_R``. An induction head at a token of
the second repeat looks back to the same token in the first repeat and attends to the token that
followed it, which it can then copy. With the first repeat at positions ``o .. o+R-1`` (``o = 1``
with BOS, ``0`` without), the destinations are the ``R`` positions ``i`` of the second repeat and
the source each should attend to is ``i - R + 1``. A head's **induction score** is its attention
weight from ``i`` to ``i - R + 1``, averaged over those ``R`` destinations and over every sequence.
It lies in ``[0, 1]``: 1 for a perfect induction head; a head attending uniformly scores about the
mean of ``1 / (i + 1)``, e.g. 0.03 for ``R = 50``.

Choices:

* Tokens are drawn uniformly with replacement (one seeded :func:`numpy.random.default_rng`
  stream for all batches) from the model's vocabulary without the tokenizer's special ids (BOS,
  EOS, padding, unknown, ...), so no random token can be mistaken for padding or BOS. A token may
  occur twice within one repeat; that happens at the same rate for every head, so rankings are
  unaffected, but with a small vocabulary a perfect induction head then scores below 1.
* BOS is explicit (:attr:`InductionConfig.prepend_bos`); its position is never a destination.
* Every sequence has the same length, so there is no padding; the attention mask is passed as all
  ones so TransformerLens never infers one from the tokenizer.
* Only ``blocks.L.attn.hook_pattern`` is hooked, the stripe is reduced to ``[batch, head]`` inside
  the hook, the pass stops after the last block (no unembedding) and runs under
  ``torch.inference_mode()``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError
from mechsel.heads.cache import cached_scores
from mechsel.heads.scores import HeadScores
from mechsel.icl.kv import model_device
from mechsel.models import model_provenance
from mechsel.provenance import Provenance

__all__ = ["InductionConfig", "repeated_random_tokens", "induction_stripe", "induction_scores"]


@dataclass(frozen=True)
class InductionConfig:
    """Settings of :func:`induction_scores`; every field changes the numbers (and the cache key)."""

    n_random_tokens: int = 50
    """``R``, the length of the random block; each sequence is ``[BOS] + 2R`` tokens and must fit
    the model's ``n_ctx``."""
    n_batches: int = 4
    """Number of forward passes."""
    batch_size: int = 8
    """Sequences per forward pass; the score averages ``n_batches * batch_size`` sequences."""
    seed: int = 0
    """Seed of the random tokens (one generator for all batches)."""
    prepend_bos: bool = True
    """Start every sequence with the tokenizer's BOS token (the model's usual context)."""

    def __post_init__(self) -> None:
        for name in ("n_random_tokens", "n_batches", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"InductionConfig.{name} must be a positive integer, got {value!r}.")
        if self.n_random_tokens < 2:
            raise ConfigError(f"InductionConfig.n_random_tokens must be ≥ 2 (a repeat needs a next token), got {self.n_random_tokens}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"InductionConfig.seed must be an integer, got {self.seed!r}.")

    @property
    def sequence_length(self) -> int:
        return 2 * self.n_random_tokens + int(self.prepend_bos)


def _special_ids(tokenizer: Any) -> set[int]:
    ids: set[int] = {int(i) for i in getattr(tokenizer, "all_special_ids", None) or ()}
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            ids.add(value)
    return ids


def _bos_id(model: HookedTransformer) -> int:
    bos = getattr(model.tokenizer, "bos_token_id", None)
    if not isinstance(bos, int):
        raise ConfigError(
            "InductionConfig.prepend_bos is True but the model has no tokenizer with a bos_token_id; attach a tokenizer "
            "(model.tokenizer = ...) or set prepend_bos=False."
        )
    return bos


def repeated_random_tokens(model: HookedTransformer, config: InductionConfig) -> list[Int[Tensor, "batch pos"]]:
    """The ``n_batches`` token batches of the test, ``[batch_size, (BOS) + 2R]`` int64 each, on CPU."""
    length = config.sequence_length
    if length > model.cfg.n_ctx:
        raise ConfigError(
            f"InductionConfig.n_random_tokens={config.n_random_tokens} gives sequences of {length} tokens, over the model's "
            f"n_ctx={model.cfg.n_ctx}; use n_random_tokens ≤ {(model.cfg.n_ctx - int(config.prepend_bos)) // 2}."
        )
    bos = _bos_id(model) if config.prepend_bos else None
    special = _special_ids(model.tokenizer) if model.tokenizer is not None else set()
    candidates = np.array([t for t in range(model.cfg.d_vocab) if t not in special], dtype=np.int64)
    if candidates.size < 2:
        raise ConfigError(f"The vocabulary has {candidates.size} non-special tokens; random sequences need at least 2.")
    rng = np.random.default_rng(config.seed)
    batches = []
    for _ in range(config.n_batches):
        block = rng.choice(candidates, size=(config.batch_size, config.n_random_tokens), replace=True)
        parts = [np.full((config.batch_size, 1), bos, dtype=np.int64)] if bos is not None else []
        batches.append(torch.from_numpy(np.concatenate([*parts, block, block], axis=1)))
    return batches


def induction_stripe(
    pattern: Float[Tensor, "batch head query key"], n_random_tokens: int, offset: int
) -> Float[Tensor, "batch head repeat"]:
    """Attention from each token of the second repeat to the token after its first occurrence.

    ``offset`` is the position of ``t_1`` in the first repeat (1 with BOS, 0 without).
    """
    r = n_random_tokens
    dest = torch.arange(offset + r, offset + 2 * r, device=pattern.device)
    return pattern[:, :, dest, dest - r + 1]


def _data_hash(batches: list[Tensor]) -> str:
    h = hashlib.sha256()
    for b in batches:
        h.update(str(tuple(b.shape)).encode())
        h.update(b.numpy().tobytes())
    return h.hexdigest()[:16]


def _stripe_hook(found: dict[int, Tensor], config: InductionConfig) -> Any:
    """A hook storing ``found[L]``: each sequence's mean induction stripe per head, ``[batch, head]`` on CPU."""

    def reduce(pattern: Tensor, hook: Any) -> None:
        stripe = induction_stripe(pattern, config.n_random_tokens, int(config.prepend_bos))
        found[int(hook.name.split(".")[1])] = stripe.mean(-1).float().cpu()

    return reduce


def _compute(model: HookedTransformer, config: InductionConfig, batches: list[Tensor], provenance: Provenance) -> HeadScores:
    n_layers = model.cfg.n_layers
    per_sequence: list[Tensor] = []  # [batch, layer, head] per batch
    device = model_device(model)
    for tokens in batches:
        found: dict[int, Tensor] = {}
        with (
            torch.inference_mode(),
            model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", _stripe_hook(found, config)) for layer in range(n_layers)]),
        ):
            ids = tokens.to(device)
            model(ids, attention_mask=torch.ones_like(ids), stop_at_layer=n_layers)
        per_sequence.append(torch.stack([found[layer] for layer in range(n_layers)], dim=1))
    values = torch.cat(per_sequence).double().numpy()
    n = values.shape[0]
    return HeadScores(
        scores=values.mean(0),
        kind="induction",
        provenance=provenance,
        stderr=values.std(0, ddof=1) / np.sqrt(n) if n > 1 else None,
        meta={"n_sequences": n, "sequence_length": config.sequence_length},
    )


def induction_scores(model: HookedTransformer, config: InductionConfig | None = None, *, cache: bool = True) -> HeadScores:
    """Induction score of every head (see the module docstring for the exact definition).

    Args:
        model: any ``HookedTransformer``; with ``prepend_bos`` it needs a tokenizer with a BOS id.
        config: test sizes and seed; default :class:`InductionConfig`.
        cache: reuse and store the scores under ``cache_dir()/heads/induction`` keyed by the
            model's weight fingerprint and these settings (:mod:`mechsel.heads.cache`).

    Returns:
        :class:`~mechsel.heads.HeadScores` of kind ``"induction"``: ``scores[L, h]`` in ``[0, 1]``,
        ``stderr`` over the sequences.
    """
    config = config or InductionConfig()
    batches = repeated_random_tokens(model, config)
    provenance = model_provenance(
        model,
        hook="attn.hook_pattern",
        mask="full",
        positions=f"second repeat: destination i attends source i-{config.n_random_tokens}+1",
        bos_policy="prepend BOS" if config.prepend_bos else "no BOS",
        padding_side="none (equal lengths)",
        data_hash=_data_hash(batches),
        extra={"kind": "induction", "config": dataclasses.asdict(config)},
    )
    return cached_scores("induction", provenance, lambda: _compute(model, config, batches, provenance), cache=cache)
