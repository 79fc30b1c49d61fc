"""Function-vector heads: each head's average indirect effect on the gold label (Todd et al., ICLR 2024).

Todd et al., "Function Vectors in Large Language Models", find a few attention heads whose output
at the last prompt token carries the task demonstrated in context. The procedure here, for a
classification task of :mod:`mechsel.tasks`:

1. **Prompts.** ``n_prompts`` few-shot prompts, each of ``n_shots`` demonstrations and one query,
   drawn without repetition within a prompt from the given labelled examples by one seeded
   generator (:attr:`FunctionVectorConfig.seed`), built by the task's
   :class:`~mechsel.tasks.PromptEncoder` (the project's template, separator and BOS; a prompt
   that does not fit the model's ``n_ctx`` raises, never silently drops demonstrations).
2. **Mean head outputs.** Over the *clean* prompts, every head's ``blocks.L.attn.hook_z`` at the
   final prompt token (the position whose next token is the answer) is averaged:
   ``mean[L, h]``, ``[n_layers, n_heads, d_head]``.
3. **Corrupted prompts.** The same demonstrations and queries with the demonstrations' labels
   shuffled: a seeded permutation of the prompt's own demonstration labels (Todd et al.'s
   "shuffled labels"), so the label words and their frequencies stay but the input–label mapping
   is broken. With few labels a permutation often changes nothing, so two redraws make every
   corrupted prompt differ from its clean one: a demonstration set whose labels are all the same
   (nothing to shuffle) is redrawn, and so is a permutation that leaves every label in place. The
   clean prompts are therefore drawn from demonstration sets holding at least two labels.
4. **Indirect effect.** For every head ``(L, h)`` and corrupted prompt ``p``, ``hook_z`` of that
   head at the final token is replaced by ``mean[L, h]`` and the gold label's probability is read:
   ``IE = P_patched(gold) - P_corrupted(gold)``. A head's score is the mean IE over the prompts
   (the **average indirect effect**, AIE), with its standard error over prompts.

Choices:

* **The probability read** (:attr:`FunctionVectorConfig.metric`): ``vocab_prob`` (default, as in
  the paper) is the softmax over the whole vocabulary of the first token of the gold label word;
  ``label_prob`` renormalises over the labels' first tokens (the project's ``gold_prob`` for
  one-token label words). Only first tokens are read, so the labels' first tokens must differ
  (checked).
* The patched forward pass reuses the corrupted prompt's residual stream before block ``L``
  (``start_at_layer``): the blocks before ``L`` do not depend on the patch, so this is exact and
  saves about half of the compute. Only the final position is unembedded.
* Batches are right-padded with an explicit attention mask (:func:`mechsel.icl.kv.pad_batch`),
  so real tokens keep positions ``0..n-1`` and never see padding.
* The mean is taken over the clean versions of the same prompts whose corrupted versions are
  patched (the paper uses a separate draw; with few prompts the same draw keeps both small).
* Sizes default small (8 prompts of 4 shots): the cost is about ``n_prompts × n_heads × n_layers / 2``
  prompt forward passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from mechsel.collection.stream import pad_token_id
from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.heads.cache import cached_scores
from mechsel.heads.patching import patch_head_outputs, record_head_outputs
from mechsel.heads.scores import HeadScores
from mechsel.icl.kv import answer_logits, model_device, pad_batch
from mechsel.masks.segments import SegmentedPrompt
from mechsel.models import model_info, model_provenance
from mechsel.provenance import hash_json
from mechsel.tasks import Example, PromptEncoder, TaskConfig, get_task

__all__ = [
    "FVMetric",
    "FunctionVectorConfig",
    "FVPrompts",
    "build_fv_prompts",
    "head_means",
    "answer_probs",
    "indirect_effects",
    "function_vector_scores",
    "task_function_vector",
]

FVMetric = Literal["vocab_prob", "label_prob"]
"""Probability read at the answer position: of the gold label's first token over the whole
vocabulary (``vocab_prob``) or over the labels' first tokens only (``label_prob``)."""
FV_METRICS: tuple[str, ...] = get_args(FVMetric)
_MAX_DRAWS = 1000
"""Demonstration sets drawn per prompt before giving up on finding one with two labels."""


@dataclass(frozen=True)
class FunctionVectorConfig:
    """Settings of :func:`function_vector_scores`; every field is part of the cache key."""

    n_prompts: int = 8
    """Few-shot prompts drawn; the means and the AIE average over them."""
    n_shots: int = 4
    """Demonstrations per prompt, at least 2 (the examples must hold at least ``n_shots + 1``)."""
    seed: int = 0
    """Seed of the one generator that draws the prompts and the label permutations."""
    metric: FVMetric = "vocab_prob"
    """Probability of the gold label read at the answer position (:data:`FVMetric`)."""
    prepend_bos: bool = True
    """Start every prompt with the tokenizer's BOS token."""
    batch_size: int = 16
    """Most rows per forward pass (a patched pass holds ``n_heads`` rows per prompt). Changes
    speed and memory only (numbers up to float32 rounding)."""

    def __post_init__(self) -> None:
        for name in ("n_prompts", "n_shots", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FunctionVectorConfig.{name} must be a positive integer, got {value!r}.")
        if self.n_shots < 2:
            raise ConfigError(
                f"FunctionVectorConfig.n_shots must be ≥ 2: the labels of one demonstration cannot be shuffled (got {self.n_shots})."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"FunctionVectorConfig.seed must be an integer, got {self.seed!r}.")
        if self.metric not in FV_METRICS:
            raise ConfigError(f"FunctionVectorConfig.metric must be one of {FV_METRICS}, got {self.metric!r}.")


@dataclass(frozen=True)
class FVPrompts:
    """The clean and corrupted prompts of one function-vector run, in the same order."""

    clean: tuple[SegmentedPrompt, ...]
    """Few-shot prompts with the demonstrations' true labels."""
    corrupted: tuple[SegmentedPrompt, ...]
    """The same prompts with the demonstrations' labels shuffled."""
    gold: tuple[int, ...]
    """Gold label index of each prompt's query."""
    answer_ids: tuple[int, ...]
    """First token id of each label word, in label order."""

    @property
    def gold_tokens(self) -> tuple[int, ...]:
        """The token whose probability is read for each prompt."""
        return tuple(self.answer_ids[g] for g in self.gold)


def _answer_ids(encoder: PromptEncoder) -> tuple[int, ...]:
    firsts = tuple(ids[0] for ids in encoder.label_token_ids)
    if len(set(firsts)) != len(firsts):
        words = list(encoder.task.label_words)
        raise ConfigError(
            f"Task {encoder.task.name!r}: the label words {words} start with the same token for this tokenizer "
            f"(first tokens {list(firsts)}); function-vector scores read the first answer token only. Use label words "
            f"whose first tokens differ (e.g. single-token words)."
        )
    return firsts


def build_fv_prompts(
    model: HookedTransformer, task: str | TaskConfig, examples: Sequence[Example], config: FunctionVectorConfig
) -> FVPrompts:
    """Draw the clean and corrupted prompts of :func:`function_vector_scores` (module docstring, steps 1 and 3)."""
    cfg = get_task(task)
    if cfg.kind != "classification":
        raise ConfigError(f"Task {cfg.name!r} is a {cfg.kind} task; function-vector scores need a classification task.")
    examples = list(examples)
    unlabelled = [e.id for e in examples if e.label is None]
    if unlabelled:
        raise DataError(f"Examples {unlabelled[:5]} have no label; function-vector prompts need labelled examples.")
    need = config.n_shots + 1
    if len(examples) < need:
        raise DataError(
            f"{len(examples)} examples cannot fill a prompt of n_shots={config.n_shots} demonstrations and a query; "
            f"pass at least {need} examples or lower FunctionVectorConfig.n_shots."
        )
    bos = getattr(model.tokenizer, "bos_token_id", None) if config.prepend_bos else None
    if config.prepend_bos and not isinstance(bos, int):
        raise ConfigError("FunctionVectorConfig.prepend_bos is True but the tokenizer has no bos_token_id; set prepend_bos=False.")
    encoder = PromptEncoder(cfg, model.tokenizer, bos_token_id=bos)
    answer_ids = _answer_ids(encoder)
    rng = np.random.default_rng(config.seed)
    clean, corrupted, gold = [], [], []
    for _ in range(config.n_prompts):
        for _attempt in range(_MAX_DRAWS):
            idx = rng.choice(len(examples), size=need, replace=False)
            demos, query = [examples[i] for i in idx[:-1]], examples[idx[-1]]
            if len({d.label for d in demos}) > 1:
                break
        else:
            raise DataError(
                f"{_MAX_DRAWS} draws of {config.n_shots} demonstrations all had a single label, so their labels cannot be shuffled; "
                f"pass examples of at least two labels (labels present: {sorted({str(e.label) for e in examples})}) or raise n_shots."
            )
        perm = rng.permutation(config.n_shots)
        while all(demos[j].label == d.label for d, j in zip(demos, perm)):
            perm = rng.permutation(config.n_shots)
        shuffled = [dataclasses.replace(d, label=demos[j].label) for d, j in zip(demos, perm)]
        clean.append(encoder.build(demos, query, max_tokens=model.cfg.n_ctx, overflow="raise"))
        corrupted.append(encoder.build(shuffled, query, max_tokens=model.cfg.n_ctx, overflow="raise"))
        gold.append(int(query.label or 0))  # labels checked above
    return FVPrompts(tuple(clean), tuple(corrupted), tuple(gold), answer_ids)


def _batch(model: HookedTransformer, prompts: Sequence[SegmentedPrompt]) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded tokens, attention mask and final positions, on the model's device."""
    tokens, mask, _ = pad_batch([p.tokens for p in prompts], "right", pad_id=pad_token_id(model), device=model_device(model))
    return tokens, mask, mask.sum(-1) - 1


def _read(logits: Tensor, answer_ids: Sequence[int], gold_tokens: Sequence[int], metric: FVMetric) -> np.ndarray:
    """The gold probability of each row under ``metric`` (float64)."""
    logits = logits.double()
    gold = torch.as_tensor(list(gold_tokens), device=logits.device)
    if metric == "label_prob":
        ids = torch.as_tensor(list(answer_ids), device=logits.device)
        probs = torch.softmax(logits[:, ids], dim=-1)
        col = (gold[:, None] == ids[None, :]).double().argmax(-1)
        return probs.gather(1, col[:, None])[:, 0].cpu().numpy()
    return torch.softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0].cpu().numpy()


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _check_model(model: HookedTransformer) -> None:
    if model.cfg.positional_embedding_type == "shortformer":
        raise ConfigError("Function-vector scores do not support shortformer positional embeddings (patched passes start mid-model).")


@torch.inference_mode()
def head_means(model: HookedTransformer, prompts: Sequence[SegmentedPrompt], *, batch_size: int = 16) -> Float[Tensor, "layer head d_head"]:
    """Every head's ``hook_z`` at each prompt's final token, averaged over ``prompts`` (float32, CPU)."""
    if not prompts:
        raise DataError("head_means needs at least one prompt.")
    layers = list(range(model.cfg.n_layers))
    total = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head, dtype=torch.float64)
    for part in _chunks(len(prompts), batch_size):
        tokens, mask, last = _batch(model, prompts[part])
        found: dict[int, Tensor] = {}
        with record_head_outputs(model, last, layers, found):
            model(tokens, attention_mask=mask, stop_at_layer=model.cfg.n_layers)
        total += torch.stack([found[layer] for layer in layers], dim=1).double().sum(0)
    return (total / len(prompts)).float()


@torch.inference_mode()
def answer_probs(
    model: HookedTransformer, prompts: Sequence[SegmentedPrompt], fvp: FVPrompts, metric: FVMetric, *, batch_size: int = 16
) -> np.ndarray:
    """Gold probability (``metric``) after each of ``prompts``, whose gold labels are ``fvp.gold``, without intervention."""
    if len(prompts) != len(fvp.gold):
        raise DataError(f"{len(prompts)} prompts for {len(fvp.gold)} gold labels; give one prompt per gold label.")
    out = []
    for part in _chunks(len(prompts), batch_size):
        tokens, mask, last = _batch(model, prompts[part])
        resid = model(tokens, attention_mask=mask, stop_at_layer=model.cfg.n_layers)
        logits = answer_logits(model, resid[torch.arange(len(last), device=resid.device), last])
        out.append(_read(logits, fvp.answer_ids, fvp.gold_tokens[part], metric))
    return np.concatenate(out)


def _keeper(store: dict[int, Tensor]) -> Any:
    """A hook storing ``store[L]`` = the whole activation of block ``L`` (kept on its device)."""

    def keep(act: Tensor, hook: Any) -> None:
        store[int(hook.name.split(".")[1])] = act

    return keep


@torch.inference_mode()
def indirect_effects(
    model: HookedTransformer, fvp: FVPrompts, means: Float[Tensor, "layer head d_head"], config: FunctionVectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(P_corrupted [n_prompts], IE [n_prompts, n_layers, n_heads])`` (module docstring, step 4).

    ``IE[p, L, h]`` is the gold probability (``config.metric``) after ``fvp.corrupted[p]`` with head
    ``h`` of block ``L`` set to ``means[L, h]`` at the final token, minus ``P_corrupted[p]``.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    base, effects = [], []
    for part in _chunks(len(fvp.corrupted), max(1, config.batch_size // n_heads)):
        tokens, mask, last = _batch(model, fvp.corrupted[part])
        c, gold = len(last), fvp.gold_tokens[part]
        resid_pre: dict[int, Tensor] = {}
        with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", _keeper(resid_pre)) for layer in range(n_layers)]):
            resid = model(tokens, attention_mask=mask, stop_at_layer=n_layers)
        p_corrupt = _read(answer_logits(model, resid[torch.arange(c, device=resid.device), last]), fvp.answer_ids, gold, config.metric)
        heads = torch.arange(n_heads, device=tokens.device).repeat_interleave(c)  # row h * c + p patches head h of prompt p
        rows_last, rows_mask = last.repeat(n_heads), mask.repeat(n_heads, 1)
        rows = torch.arange(len(heads), device=tokens.device)
        ie = np.zeros((c, n_layers, n_heads))
        for layer in range(n_layers):
            values = means[layer][heads.cpu()].to(resid.device)
            with patch_head_outputs(model, layer, rows_last, heads, values):
                out = model(resid_pre[layer].repeat(n_heads, 1, 1), start_at_layer=layer, stop_at_layer=n_layers, attention_mask=rows_mask)
            patched = _read(answer_logits(model, out[rows, rows_last]), fvp.answer_ids, gold * n_heads, config.metric)
            ie[:, layer, :] = patched.reshape(n_heads, c).T - p_corrupt[:, None]
        base.append(p_corrupt)
        effects.append(ie)
    return np.concatenate(base), np.concatenate(effects)


def function_vector_scores(
    model: HookedTransformer,
    task: str | TaskConfig,
    examples: Sequence[Example],
    config: FunctionVectorConfig | None = None,
    *,
    cache: bool = True,
) -> HeadScores:
    """Average indirect effect of every head on the gold label (see the module docstring).

    Args:
        model: a ``HookedTransformer`` with a tokenizer.
        task: a classification task name or config.
        examples: labelled examples of the task to draw demonstrations and queries from.
        config: sizes, seed and metric; default :class:`FunctionVectorConfig`.
        cache: reuse and store the scores under ``cache_dir()/heads/function_vector`` keyed by
            the model's weight fingerprint, the task, the prompts and the config.

    Returns:
        :class:`~mechsel.heads.HeadScores` of kind ``"function_vector"``: ``scores[L, h]`` the AIE
        (a difference of probabilities, in ``[-1, 1]``), ``stderr`` over prompts, ``head_means``
        the clean mean outputs, and in ``meta`` the mean clean and corrupted gold probabilities.
    """
    config = config or FunctionVectorConfig()
    _check_model(model)
    cfg = get_task(task)
    fvp = build_fv_prompts(model, cfg, examples, config)
    provenance = model_provenance(
        model,
        hook="attn.hook_z",
        mask="full",
        positions="last prompt token",
        bos_policy="prepend BOS" if config.prepend_bos else "no BOS",
        padding_side="right",
        data_hash=hash_json([[p.tokens for p in fvp.clean], [p.tokens for p in fvp.corrupted], list(fvp.gold)]),
        extra={
            "kind": "function_vector",
            "task": cfg.describe(),
            "config": dataclasses.asdict(config),
            "answer_ids": list(fvp.answer_ids),
        },
    )

    def compute() -> HeadScores:
        means = head_means(model, fvp.clean, batch_size=config.batch_size)
        p_clean = answer_probs(model, fvp.clean, fvp, config.metric, batch_size=config.batch_size)
        p_corrupt, ie = indirect_effects(model, fvp, means, config)
        n = ie.shape[0]
        return HeadScores(
            scores=ie.mean(0),
            kind="function_vector",
            provenance=provenance,
            stderr=ie.std(0, ddof=1) / np.sqrt(n) if n > 1 else None,
            head_means=means.numpy(),
            meta={
                "n_prompts": n,
                "metric": config.metric,
                "clean_prob": float(p_clean.mean()),
                "corrupted_prob": float(p_corrupt.mean()),
            },
        )

    return cached_scores("function_vector", provenance, compute, cache=cache)


def task_function_vector(model: HookedTransformer, scores: HeadScores, n: int = 10) -> Float[Tensor, " d_model"]:
    """The task's function vector: ``Σ_{(L, h) ∈ top n} mean[L, h] @ W_O[L, h]`` (Todd et al., eq. 5).

    Each of the ``n`` highest-AIE heads' mean output (``scores.head_means``) is mapped into the
    residual stream by its own ``W_O`` slice; the output bias ``b_O`` belongs to the layer, not to
    a head, and is left out. Returned on the model's device, in its dtype.

    Raises:
        ConfigError: ``scores`` are not function-vector scores (no head means).
        ProvenanceMismatchError: ``scores`` were computed on other weights.
    """
    if scores.kind != "function_vector" or scores.head_means is None:
        raise ConfigError(
            f"task_function_vector needs function-vector scores with head means (from function_vector_scores), got {scores.kind!r} scores."
        )
    weight_hash = model_info(model).weight_hash
    if scores.provenance.weight_hash != weight_hash:
        raise ProvenanceMismatchError(
            f"The scores were computed on weights {scores.provenance.weight_hash} ({scores.provenance.model_name}) but the model has "
            f"weights {weight_hash}; compute function_vector_scores on this model."
        )
    W_O = model.W_O  # [layer, head, d_head, d_model]
    means = torch.tensor(np.array(scores.head_means), device=W_O.device, dtype=W_O.dtype)
    vector = torch.zeros(model.cfg.d_model, device=W_O.device, dtype=W_O.dtype)
    for layer, head in scores.top(n):
        vector = vector + means[layer, head] @ W_O[layer, head]
    return vector.detach()
