"""Relational selectors: examples related through the model's own heads (family ``internal-relational``).

* ``qk_affinity`` (per-query retrieval): rank the annotated examples by how strongly the model's
  top induction heads would match the query against each of them, i.e. the similarity of the
  query's *query* vector and the candidate's *key* vector through those heads' ``W_Q`` / ``W_K``.
  After Kato et al. 2025, "Affinity and Diversity: A Unified Metric for Demonstration Selection
  via Internal Representations" (arXiv 2502.14380), whose *affinity* is the mean cosine similarity
  between the query representation and the demonstrations' label-token representations in the
  ``W_Q^T W_K`` space of an induction head (they use the single most influential one).
* ``fv_alignment`` (a fixed set): the candidates whose 1-shot function-vector-head output points
  most along the task's function vector (Todd et al. 2024, :mod:`mechsel.heads.function_vectors`),
  chosen greedily with a penalty on candidates whose outputs resemble those already chosen.

Both read the model itself (``needs`` holds ``"model"``; the experiment passes ``model=``), find
their heads with :mod:`mechsel.heads` (scores cached on disk per model and settings), encode
every text on its own (``BOS`` + text, or ``BOS`` + the task's template when a ``task`` is set),
run it once and keep only the activations they read at its last token (reduced inside the hook,
stored on the CPU, cached in the selector instance keyed by the token ids). Both are
deterministic: the ``seed`` of ``select`` / ``retrieve`` changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError, DataError
from mechsel.heads import (
    FunctionVectorConfig,
    FVMetric,
    InductionConfig,
    function_vector_scores,
    induction_scores,
    record_head_outputs,
    task_function_vector,
)
from mechsel.models import model_info
from mechsel.selectors.base import Pool, Queries, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.graphs import unit_rows
from mechsel.selectors.head_reads import bos_id, qk_vectors, run_last_token, task_examples
from mechsel.selectors.retrieval import LengthFn, _BudgetConfig, _BudgetRetriever, _fill
from mechsel.tasks import PromptEncoder, content_free_example, get_task

__all__ = [
    "QKSimilarity",
    "QKAffinityConfig",
    "QKAffinitySelector",
    "FVAlignmentConfig",
    "FVAlignmentSelector",
    "greedy_mmr",
]

QKSimilarity = Literal["cosine", "logit"]
"""How a query vector q and a key vector k are compared: ``cosine`` (Kato et al.'s affinity) or
``logit``, the head's pre-softmax attention score ``q·k / attn_scale`` (``attn_scale`` is
``sqrt(d_head)`` unless the model sets another)."""
QK_SIMILARITIES: tuple[str, ...] = get_args(QKSimilarity)
Head = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------
def greedy_mmr(relevance: Float[np.ndarray, " n"], unit: Float[np.ndarray, "n d"], lam: float, k: int) -> tuple[list[int], list[float]]:
    """Greedy maximal marginal relevance (Carbonell & Goldstein 1998) with an additive penalty.

    Step ``t`` picks ``argmax_j relevance[j] - lam * max(0, max_{s in S} unit[j]·unit[s])`` over
    the rows not yet picked (``S``: the picks so far). Similar rows are penalised, dissimilar ones
    are not rewarded; the first pick has no penalty, and ``lam = 0`` is a sort by relevance.
    Ties go to the lowest row. Returns the ``k`` picks and each one's gain when it was made.
    """
    rel = relevance.astype(np.float64)
    u = unit.astype(np.float64)
    closest = np.zeros_like(rel)  # max(0, largest similarity of each row to the picks so far)
    taken = np.zeros(rel.shape[0], dtype=bool)
    picks: list[int] = []
    gains: list[float] = []
    for _ in range(k):
        gain = rel - lam * closest
        gain[taken] = -np.inf
        j = int(np.argmax(gain))
        picks.append(j)
        gains.append(float(gain[j]))
        taken[j] = True
        closest = np.maximum(closest, u @ u[j])
    return picks, gains


def _check_lam(owner: str, lam: Any) -> None:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ConfigError(
            f"{owner}.lam must be a finite number ≥ 0 (0: no diversity term; larger: stronger penalty on picks "
            f"that resemble earlier ones), got {lam!r}."
        )


def _check_positive(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{owner}.{name} must be a positive integer, got {value!r}.")


def _check_task(owner: str, task: Any, *, required: bool) -> None:
    if task is None:
        if required:
            raise ConfigError(
                f"{owner}.task is required: name the classification task whose template builds the prompts "
                f"(e.g. task: sst2 in the run's params; restrict the run to that task with the run's tasks: [sst2])."
            )
        return
    if not isinstance(task, str) or not task:
        raise ConfigError(f"{owner}.task must be a registered task name (e.g. 'sst2') or None, got {task!r}.")
    kind = get_task(task).kind  # unknown names raise a ConfigError listing the registered tasks
    if kind != "classification":
        raise ConfigError(
            f"{owner}.task {task!r} is a {kind} task; {owner} shows demonstrations with their label word, so it needs a "
            f"classification task{' (or task: null to read the bare texts)' if not required else ''}."
        )


# ---------------------------------------------------------------------------------------------
# qk_affinity
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QKAffinityConfig(_BudgetConfig):
    """Settings of ``qk_affinity`` (plus the retrieval rules ``skip_duplicates``, ``max_tokens``,
    ``max_example_tokens`` shared with ``knn``)."""

    n_heads: int = 4
    """Number of heads, the highest by :func:`mechsel.heads.induction_scores` (default
    :class:`~mechsel.heads.InductionConfig`); ignored when ``heads`` is given."""
    heads: tuple[tuple[int, int], ...] | None = None
    """Explicit ``(layer, head)`` pairs to use instead of the top induction heads."""
    task: str | None = None
    """``None``: every text is encoded as ``BOS + text`` and read at its last token. A task name:
    a query is ``BOS`` + the task's template without answer, read at its last token (where the
    answer is predicted); a candidate is ``BOS`` + its template with its gold label word, read at
    the label's last token (Kato et al.'s label-token key). Needs ``pool.labels``."""
    similarity: QKSimilarity = "cosine"
    """How q and k are compared (:data:`QKSimilarity`); the per-head values are averaged over heads."""
    lam: float = 0.0
    """Diversity weight (≥ 0): with ``lam > 0`` the demonstrations of a query are picked by
    :func:`greedy_mmr`, penalising a candidate by ``lam`` times its largest (positive) key-space
    cosine with a candidate already picked for that query; 0 is a pure ranking by affinity. The
    penalty is in the affinity's units (with ``similarity="logit"`` scale ``lam`` accordingly)."""
    center: bool = True
    """Subtract the annotated set's mean key before the diversity cosines (affinity is never centred)."""
    batch_size: int = 16
    """Texts per forward pass (speed and memory only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "qk_affinity"
        _check_positive(owner, "n_heads", self.n_heads)
        _check_positive(owner, "batch_size", self.batch_size)
        _check_lam(owner, self.lam)
        _check_task(owner, self.task, required=False)
        if self.similarity not in QK_SIMILARITIES:
            raise ConfigError(f"{owner}.similarity must be one of {QK_SIMILARITIES}, got {self.similarity!r}.")
        if self.heads is not None:
            try:
                heads = tuple((int(layer), int(head)) for layer, head in self.heads)
            except (TypeError, ValueError):
                raise ConfigError(f"{owner}.heads must be a list of [layer, head] pairs, got {self.heads!r}.") from None
            if not heads or len(set(heads)) != len(heads) or min(min(h) for h in heads) < 0:
                raise ConfigError(f"{owner}.heads must be distinct, non-negative [layer, head] pairs (at least one), got {self.heads!r}.")
            object.__setattr__(self, "heads", heads)


@register_selector("qk_affinity")
class QKAffinitySelector(_BudgetRetriever[QKAffinityConfig]):
    """Per-query retrieval by induction-head query/key affinity (after Kato et al. 2025).

    For every text (the query, and each annotated candidate) the residual stream entering each
    chosen head's block (``blocks.L.hook_resid_pre``) is read at the text's last token, the text
    encoded alone (``BOS + text``; with ``task``: the template, see :attr:`QKAffinityConfig.task`).
    Head ``(L, h)`` maps the query's to ``q`` and the candidate's to ``k`` (:func:`~mechsel.selectors.head_reads.qk_vectors`:
    ``ln1``, ``W_Q`` / ``W_K`` with biases, q/k norm, no rotary). The affinity of a candidate is
    the mean over the heads of ``cos(q, k)`` (``similarity="cosine"``, as in the paper) or of
    ``q·k / attn_scale`` (``"logit"``). Heads: the ``n_heads`` highest induction scores (the
    paper uses the one head whose ablation hurts accuracy most), or ``heads``.

    The candidates are then walked from the highest affinity down (or in :func:`greedy_mmr` order
    when ``lam > 0``), skipping exact duplicates of the query and over-long examples, and stop at
    ``k`` or the token budget, as ``knn`` does; the chosen come most relevant **last**. Score: the
    affinity (``lam = 0``) or the MMR gain. Retrieval only: a fixed set would need the test
    distribution, which a selective-annotation call does not see.
    """

    Config = QKAffinityConfig
    family = "internal-relational"
    needs = ("model",)

    @classmethod
    def needs_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        """``model``, and ``labels`` when a ``task`` template shows each candidate's label."""
        return frozenset({"model", "labels"} if params.get("task") else {"model"})

    def __init__(
        self,
        config: QKAffinityConfig | None = None,
        *,
        model: HookedTransformer | None = None,
        length_fn: LengthFn | None = None,
        **params: Any,
    ) -> None:
        super().__init__(config, length_fn=length_fn, **params)
        if model is None:
            raise ConfigError("qk_affinity needs model=<HookedTransformer> (the experiment pipeline passes it).")
        self.model = model
        self._resid: dict[tuple[tuple[int, ...], int], Tensor] = {}
        self._heads: list[Head] | None = None

    def heads(self) -> list[Head]:
        """The ``(layer, head)`` pairs it reads (computed once per instance)."""
        if self._heads is None:
            cfg = self.config
            m = self.model.cfg
            if cfg.heads is not None:
                bad = [h for h in cfg.heads if h[0] >= m.n_layers or h[1] >= m.n_heads]
                if bad:
                    raise ConfigError(
                        f"qk_affinity.heads {bad} do not exist: the model has layers 0..{m.n_layers - 1}, heads 0..{m.n_heads - 1}."
                    )
                self._heads = list(cfg.heads)
            else:
                self._heads = induction_scores(self.model, InductionConfig()).top(cfg.n_heads)
        return self._heads

    def _rows(self, texts: Sequence[str], ids: Sequence[Any], labels: Sequence[Any] | None, role: str) -> list[tuple[int, ...]]:
        cfg = self.config
        bos = bos_id(self.model, "qk_affinity")
        if cfg.task is None:
            tok = self.model.tokenizer
            assert tok is not None  # bos_id raised if the model had no tokenizer
            return [(bos, *(int(i) for i in tok.encode(t, add_special_tokens=False))) for t in texts]
        task = get_task(cfg.task)
        encoder = PromptEncoder(task, self.model.tokenizer, bos_token_id=bos)
        examples = task_examples(task, texts, ids, labels, role)
        if labels is None:  # queries: the template without answer
            return [tuple(encoder.build([], e).tokens) for e in examples]
        return [tuple(encoder.demonstrations([e]).tokens) for e in examples]

    def _read(self, rows: list[tuple[int, ...]], layers: list[int]) -> Float[Tensor, "n layer d_model"]:
        """``hook_resid_pre`` of each of ``layers`` at each row's last token (cached per row and layer)."""
        missing = list(dict.fromkeys(r for r in rows if any((r, layer) not in self._resid for layer in layers)))
        found: dict[int, Tensor] = {}

        def recorder(last: Tensor) -> AbstractContextManager[Any]:
            def keep(act: Tensor, hook: Any) -> None:
                found[int(hook.name.split(".")[1])] = act[torch.arange(len(last), device=act.device), last.to(act.device)].float().cpu()

            return self.model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", keep) for layer in layers])

        cfg = self.config
        for start in range(0, len(missing), cfg.batch_size):
            part = missing[start : start + cfg.batch_size]
            run_last_token(self.model, part, recorder, max(layers) + 1)
            for i, row in enumerate(part):
                for layer in layers:
                    self._resid[row, layer] = found[layer][i]
        return torch.stack([torch.stack([self._resid[r, layer] for layer in layers]) for r in rows])

    def _retrieve(self, pool: Pool, annotated: np.ndarray, queries: Queries, k: int, seed: int) -> list[SelectionResult]:
        if queries.texts is None:
            raise DataError("qk_affinity reads the query texts; pass them as a list of strings or Queries(texts=...).")
        cfg = self.config
        heads = self.heads()
        layers = sorted({layer for layer, _ in heads})
        labels = None if cfg.task is None else pool.require("labels", self.name)
        cand_labels = None if labels is None else [labels[int(i)] for i in annotated]
        cand_rows = self._rows([pool.texts[int(i)] for i in annotated], [pool.ids[int(i)] for i in annotated], cand_labels, "pool")
        query_rows = self._rows(list(queries.texts), list(range(len(queries))), None, "query")
        cand, qry = self._read(cand_rows, layers), self._read(query_rows, layers)
        affinity = torch.zeros(len(query_rows), len(cand_rows), dtype=torch.float64)
        keys = []
        for layer, head in heads:
            li = layers.index(layer)
            q = qk_vectors(self.model, layer, head, qry[:, li], "q").double()
            kv = qk_vectors(self.model, layer, head, cand[:, li], "k").double()
            if cfg.similarity == "cosine":
                affinity += torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(kv, dim=-1).T
            else:
                affinity += q @ kv.T / float(self.model.blocks[layer].attn.attn_scale)
            keys.append(unit_rows(kv.numpy(), center=cfg.center) / math.sqrt(len(heads)))
        scores = (affinity / len(heads)).numpy()
        unit = np.concatenate(keys, axis=1)  # unit·unit = mean over heads of the key cosines
        fits = self._fits(pool, annotated)
        out = []
        for qi, text in enumerate(queries.texts):
            dup = np.array([cfg.skip_duplicates and pool.texts[int(i)] == text for i in annotated])
            keep = np.flatnonzero(~dup & fits)
            if keep.size == 0:
                out.append(([], [], {"skipped_duplicates": int(dup.sum()), "heads": heads}))
                continue
            s = scores[qi, keep]
            if cfg.lam:
                order, values = greedy_mmr(s, unit[keep], cfg.lam, min(k, keep.size))
            else:
                order = np.lexsort((annotated[keep], -s)).tolist()
                values = s[order].tolist()
            picked, picked_scores, _ = _fill(annotated[keep][order], np.asarray(values), pool, text, k, cfg, self.length_fn)
            out.append((picked, picked_scores, {"skipped_duplicates": int(dup.sum()), "heads": heads}))
        return out

    def _fits(self, pool: Pool, annotated: np.ndarray) -> np.ndarray:
        """Which annotated examples pass ``max_example_tokens`` (all when unset)."""
        cfg = self.config
        if cfg.max_example_tokens is None or self.length_fn is None:
            return np.ones(annotated.size, dtype=bool)
        return np.array([self.length_fn(pool.texts[int(i)]) <= cfg.max_example_tokens for i in annotated])


# ---------------------------------------------------------------------------------------------
# fv_alignment
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FVAlignmentConfig(SelectorConfig):
    """Settings of ``fv_alignment``."""

    task: str | None = None
    """Required: the classification task (registered name) whose template, separator and label
    words build every prompt, and whose function vector the candidates are aligned with."""
    n_heads: int = 10
    """Function-vector heads: the ``n_heads`` highest average indirect effects (Todd et al. use
    10); both the task's function vector and each candidate's output sum over them."""
    n_prompts: int = 8
    """Few-shot prompts behind the head scores and the function vector (:class:`~mechsel.heads.FunctionVectorConfig`)."""
    n_shots: int = 4
    """Demonstrations per such prompt (≥ 2; the pool must hold at least ``n_shots + 1`` examples)."""
    fv_seed: int = 0
    """Seed of those prompts (fixed, so the scores are cached across selection seeds and budgets)."""
    metric: FVMetric = "vocab_prob"
    """Probability read by the indirect effects (:data:`~mechsel.heads.FVMetric`)."""
    neutral_query: str = "N/A"
    """Content-free text put in every input field of the fixed query of each 1-shot prompt (Zhao et al. 2021)."""
    lam: float = 0.5
    """Diversity weight (≥ 0) of :func:`greedy_mmr`: a candidate's alignment minus ``lam`` times
    its largest (positive) output cosine with a candidate already chosen; 0 ranks by alignment alone."""
    center: bool = True
    """Subtract the pool's mean output before the diversity cosines (the shared template and
    query otherwise make every pair look alike); the alignment with the FV is never centred."""
    batch_size: int = 16
    """Prompts per forward pass (speed and memory only; also the FV scorer's batch size)."""

    def __post_init__(self) -> None:
        owner = "fv_alignment"
        _check_task(owner, self.task, required=True)
        for name in ("n_heads", "n_prompts", "n_shots", "batch_size"):
            _check_positive(owner, name, getattr(self, name))
        _check_lam(owner, self.lam)
        if not isinstance(self.neutral_query, str) or not self.neutral_query.strip():
            raise ConfigError(f"{owner}.neutral_query must be a non-blank text such as 'N/A', got {self.neutral_query!r}.")
        self.fv_config()  # validates n_shots, fv_seed and metric with FunctionVectorConfig's messages

    def fv_config(self) -> FunctionVectorConfig:
        """The :class:`~mechsel.heads.FunctionVectorConfig` of the head scores."""
        return FunctionVectorConfig(
            n_prompts=self.n_prompts, n_shots=self.n_shots, seed=self.fv_seed, metric=self.metric, batch_size=self.batch_size
        )


@register_selector("fv_alignment")
class FVAlignmentSelector(Selector[FVAlignmentConfig]):
    """A fixed set whose 1-shot function-vector-head outputs align with the task's function vector.

    1. **Heads and function vector.** :func:`mechsel.heads.function_vector_scores` on the pool's
       labelled examples (``n_prompts`` prompts of ``n_shots`` demonstrations, ``fv_seed``), the
       top ``n_heads`` heads, and :func:`mechsel.heads.task_function_vector` over them:
       ``FV = Σ_(L,h) mean_z[L, h] @ W_O[L, h]``.
    2. **Each candidate's output.** Its 1-shot prompt is ``BOS`` + the candidate as the one
       demonstration (template + its gold label word) + separator + a fixed content-free query
       (``neutral_query`` in every input field, template without answer), built by the task's
       :class:`~mechsel.tasks.PromptEncoder`. At the prompt's last token (where the answer is
       predicted and where the FV heads were scored) ``o_c = Σ_(L,h) hook_z[L, h] @ W_O[L, h]``
       over the same heads (no ``b_O``, as in the FV).
    3. **Alignment** ``a_c = cos(o_c, FV)``; picks by :func:`greedy_mmr` with relevance ``a_c``
       and similarity the cosine of the (by default pool-centred) outputs, weight ``lam``.

    Score: the gain of each pick (the alignment itself for the first pick, or when ``lam = 0``).
    It reads the pool's gold labels (to build the FV and show each candidate with its label), so
    it is not label-free selective annotation: it compares how the model reads labelled
    candidates.
    """

    Config = FVAlignmentConfig
    family = "internal-relational"
    needs = ("model", "labels")
    modes = frozenset({"annotate"})

    def __init__(self, config: FVAlignmentConfig | None = None, *, model: HookedTransformer | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        if model is None:
            raise ConfigError("fv_alignment needs model=<HookedTransformer> (the experiment pipeline passes it).")
        self.model = model
        self._outputs: dict[tuple[tuple[int, ...], tuple[Head, ...]], Tensor] = {}

    def candidate_outputs(self, prompts: list[tuple[int, ...]], heads: list[Head]) -> Float[Tensor, "n d_model"]:
        """``o_c`` of each prompt: the sum over ``heads`` of ``hook_z @ W_O`` at its last token (cached)."""
        key_heads = tuple(heads)
        missing = list(dict.fromkeys(p for p in prompts if (p, key_heads) not in self._outputs))
        layers = sorted({layer for layer, _ in heads})
        W_O = self.model.W_O.detach()
        cfg = self.config
        found: dict[int, Tensor] = {}
        for start in range(0, len(missing), cfg.batch_size):
            part = missing[start : start + cfg.batch_size]
            run_last_token(self.model, part, lambda last: record_head_outputs(self.model, last, layers, found), max(layers) + 1)
            total = torch.zeros(len(part), self.model.cfg.d_model, dtype=torch.float64)
            for layer, head in heads:
                total += (found[layer][:, head].to(W_O.device, W_O.dtype) @ W_O[layer, head]).double().cpu()
            for i, p in enumerate(part):
                self._outputs[p, key_heads] = total[i].float()
        return torch.stack([self._outputs[p, key_heads] for p in prompts])

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        assert cfg.task is not None  # required; a classification task, checked in the config
        task = get_task(cfg.task)
        examples = task_examples(task, pool.texts, pool.ids, pool.require("labels", self.name), "pool")
        scores = function_vector_scores(self.model, task, examples, cfg.fv_config())
        heads = scores.top(cfg.n_heads)
        fv = task_function_vector(self.model, scores, cfg.n_heads).double().cpu()
        if not torch.linalg.vector_norm(fv) > 0:
            raise DataError("The task's function vector is zero (the top heads' mean outputs vanish); raise fv_alignment.n_heads.")
        encoder = PromptEncoder(task, self.model.tokenizer, bos_token_id=bos_id(self.model, "fv_alignment"))
        query = content_free_example(task, cfg.neutral_query)
        prompts = [tuple(encoder.build([e], query, max_tokens=self.model.cfg.n_ctx, overflow="raise").tokens) for e in examples]
        outputs = self.candidate_outputs(prompts, heads).double()
        alignment = (torch.nn.functional.normalize(outputs, dim=-1) @ (fv / torch.linalg.vector_norm(fv))).numpy()
        picks, gains = greedy_mmr(alignment, unit_rows(outputs.numpy(), center=cfg.center), cfg.lam, k)
        return (
            picks,
            gains,
            {
                "heads": heads,
                "alignment": [float(alignment[i]) for i in picks],
                "fv_norm": float(torch.linalg.vector_norm(fv)),
                "fv_scores": {"data_hash": scores.provenance.data_hash, "weight_hash": scores.provenance.weight_hash},
                "model": model_info(self.model).name,
            },
        )
