"""The ICL engine: a model bound to a task, turning (demonstrations, query) pairs into scores.

:class:`ICLRunner` owns the task's :class:`~mechsel.tasks.PromptEncoder` (template, BOS,
token budget) and a :class:`~mechsel.icl.scoring.LabelScorer` or greedy decoder, so that
example quality, evaluation and the selectors' confidence function all build and score prompts
the same way. Calls that share demonstrations should be made together: prompts are scored in the
order of the demonstration sets, and each call reuses its prompts' common prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError, DataError
from mechsel.icl.generation import Generation, GenerationConfig, greedy_generate
from mechsel.icl.metrics import rouge_l_scores, sentence_bleu
from mechsel.icl.scoring import LabelScorer, ScoringConfig, label_distribution
from mechsel.masks.segments import SegmentedPrompt
from mechsel.models import model_provenance
from mechsel.provenance import Provenance, hash_json
from mechsel.tasks.base import Example, TaskConfig, get_task
from mechsel.tasks.prompts import Overflow, PromptEncoder

__all__ = ["PairMetric", "ICLRunner", "pair_scores", "default_quality_metric"]

logger = logging.getLogger(__name__)

PairMetric = Literal["accuracy", "gold_prob", "gold_logprob", "rouge_l", "bleu"]
"""Score of one (prompt, query) pair: ``accuracy`` (0/1), ``gold_prob`` (probability of the gold
label among the labels), ``gold_logprob`` (its full-vocabulary log-probability); generation:
``rouge_l`` (F-measure, best reference) or ``bleu`` (smoothed sentence BLEU, 0–100)."""
PAIR_METRICS: tuple[str, ...] = get_args(PairMetric)
CLASSIFICATION_METRICS = ("accuracy", "gold_prob", "gold_logprob")
GENERATION_METRICS = ("rouge_l", "bleu")


def default_quality_metric(kind: str) -> PairMetric:
    """The one default quality metric, for the notebook API and the study alike: ``gold_prob``
    for classification (graded, where 0/1 accuracy of one query is coarse), ``rouge_l`` for
    generation."""
    return "gold_prob" if kind == "classification" else "rouge_l"


MIN_GROUP = 4
"""Queries sharing a demonstration set are scored in their own call (prefix reuse) from this many on."""


def pair_scores(
    metric: PairMetric,
    *,
    logprobs: np.ndarray | None = None,
    gold: np.ndarray | None = None,
    texts: Sequence[str] | None = None,
    references: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Per-pair scores: from label log-probabilities ``[..., n_labels]`` and gold labels
    (classification metrics) or from generated texts and references (generation metrics)."""
    if metric not in PAIR_METRICS:
        raise ConfigError(f"Unknown metric {metric!r}; choose one of {PAIR_METRICS}.")
    if metric in CLASSIFICATION_METRICS:
        if logprobs is None or gold is None:
            raise ConfigError(f"Metric {metric!r} needs label log-probabilities and gold labels (a classification task).")
        lp = np.asarray(logprobs, dtype=np.float64)
        g = np.broadcast_to(np.asarray(gold), lp.shape[:-1])[..., None]
        if metric == "accuracy":
            return (lp.argmax(axis=-1) == g[..., 0]).astype(np.float64)
        if metric == "gold_logprob":
            return np.take_along_axis(lp, g, axis=-1)[..., 0]
        return np.take_along_axis(label_distribution(lp.reshape(-1, lp.shape[-1])).reshape(lp.shape), g, axis=-1)[..., 0]
    if texts is None or references is None:
        raise ConfigError(f"Metric {metric!r} needs generated texts and references (a generation task).")
    if metric == "rouge_l":
        return rouge_l_scores(texts, references)
    return np.array([sentence_bleu(t, r) for t, r in zip(texts, references)])


class ICLRunner:
    """A model bound to a task.

    Args:
        model: a ``HookedTransformer`` with a tokenizer (or pass ``tokenizer``).
        task: a task name or config.
        bos: start every prompt with the tokenizer's BOS token (explicit; it changes every score).
        scoring: batching and caching of label scoring.
        generation: decoding settings; default: the task's ``stop`` and ``max_new_tokens``.
        max_tokens: prompt budget in tokens (answer tokens included); default the model's ``n_ctx``.
        overflow: ``"drop_front"`` (drop the demonstrations farthest from the query) or ``"raise"``.
        tokenizer: overrides ``model.tokenizer``.

    Building one logs a warning for each label word that may bias the scores (no leading space
    after the template's text, or several tokens): :meth:`PromptEncoder.label_word_problems`.
    """

    def __init__(
        self,
        model: HookedTransformer,
        task: str | TaskConfig,
        *,
        bos: bool = True,
        scoring: ScoringConfig | None = None,
        generation: GenerationConfig | None = None,
        max_tokens: int | None = None,
        overflow: Overflow = "drop_front",
        tokenizer: Any = None,
    ) -> None:
        self.model = model
        self.task = get_task(task)
        self.tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        if self.tokenizer is None:
            raise ConfigError("The model has no tokenizer; pass tokenizer=... (anything with encode(text, add_special_tokens=False)).")
        bos_id = getattr(self.tokenizer, "bos_token_id", None)
        if bos and bos_id is None:
            raise ConfigError("bos=True but the tokenizer has no bos_token_id; pass bos=False to build prompts without BOS.")
        self.bos = bos
        self.encoder = PromptEncoder(self.task, self.tokenizer, bos_token_id=bos_id if bos else None)
        self.scoring = scoring or ScoringConfig()
        self.generation = generation or GenerationConfig(max_new_tokens=self.task.max_new_tokens, stop=self.task.stop)
        self.max_tokens = int(max_tokens) if max_tokens is not None else int(model.cfg.n_ctx)
        self.overflow: Overflow = overflow
        for problem in self.encoder.label_word_problems():  # once per runner, i.e. once per task of a run
            logger.warning(problem)
        if self.task.kind == "classification":
            self.scorer: LabelScorer | None = LabelScorer(model, self.encoder.label_token_ids, self.scoring)
            self.reserve = max(len(ids) for ids in self.encoder.label_token_ids) - 1
        else:
            self.scorer = None
            self.reserve = self.generation.max_new_tokens

    @property
    def quality_metric(self) -> PairMetric:
        """The metric a quality is scored with when none is given (:func:`default_quality_metric`)."""
        return default_quality_metric(self.task.kind)

    def prompts(self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example]) -> list[SegmentedPrompt]:
        """One prompt per query, ``demo_sets[i]`` (ordered) before ``queries[i]``."""
        if len(demo_sets) != len(queries):
            raise DataError(f"{len(demo_sets)} demonstration sets for {len(queries)} queries; give one set per query.")
        return [
            self.encoder.build(d, q, max_tokens=self.max_tokens, overflow=self.overflow, reserve=self.reserve)
            for d, q in zip(demo_sets, queries)
        ]

    def _grouped(self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example], run: Any) -> list:
        """Call ``run(prompts)`` on groups of queries that share a demonstration set (so each call
        reuses that set's prefix); sets shared by fewer than :data:`MIN_GROUP` queries are pooled
        into one call (batched, no shared prefix beyond BOS). Results come back in query order."""
        prompts = self.prompts(demo_sets, queries)
        groups: dict[tuple, list[int]] = {}
        for i, ds in enumerate(demo_sets):
            groups.setdefault(tuple((d.split, str(d.id)) for d in ds), []).append(i)
        calls = [idx for idx in groups.values() if len(idx) >= MIN_GROUP]
        rest = sorted(i for idx in groups.values() if len(idx) < MIN_GROUP for i in idx)
        if rest:
            calls.append(rest)
        out: list = [None] * len(prompts)
        for idx in calls:
            for i, value in zip(idx, run([prompts[i] for i in idx])):
                out[i] = value
        return out

    def label_logprobs(self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example]) -> np.ndarray:
        """``[n_queries, n_labels]`` full-vocabulary log-probabilities of each label word."""
        if self.scorer is None:
            raise ConfigError(f"Task {self.task.name!r} is a generation task; use generate().")
        if not queries:
            return np.zeros((0, self.task.n_labels), dtype=np.float32)
        return np.stack(self._grouped(demo_sets, queries, lambda prompts: self.scorer.logprobs(prompts).numpy()))  # type: ignore[union-attr]

    def generate(self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example]) -> list[Generation]:
        """Greedy continuations of each query's prompt."""
        if self.task.kind != "generation":
            raise ConfigError(f"Task {self.task.name!r} is a classification task; use label_logprobs().")
        return self._grouped(
            demo_sets, queries, lambda prompts: greedy_generate(self.model, prompts, self.generation, tokenizer=self.tokenizer)
        )

    def n_demos(self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example]) -> list[int]:
        """How many demonstrations each query's prompt keeps after the overflow rule."""
        return [
            len(self.encoder.fit(d, q, max_tokens=self.max_tokens, overflow=self.overflow, reserve=self.reserve))
            for d, q in zip(demo_sets, queries)
        ]

    def pair_scores(
        self, demo_sets: Sequence[Sequence[Example]], queries: Sequence[Example], metric: PairMetric | None = None
    ) -> tuple[np.ndarray, np.ndarray | list[str]]:
        """Per-query scores under ``metric`` and the raw outputs (label log-probs or texts)."""
        metric = metric or self.quality_metric
        self.check_metric(metric)
        if self.task.kind == "classification":
            lp = self.label_logprobs(demo_sets, queries)
            return pair_scores(metric, logprobs=lp, gold=gold_labels(queries)), lp
        texts = [g.text for g in self.generate(demo_sets, queries)]
        return pair_scores(metric, texts=texts, references=[q.references for q in queries]), texts

    def check_metric(self, metric: str) -> None:
        """Raise unless ``metric`` suits the task's kind."""
        valid = CLASSIFICATION_METRICS if self.task.kind == "classification" else GENERATION_METRICS
        if metric not in valid:
            raise ConfigError(f"Metric {metric!r} does not apply to {self.task.kind} task {self.task.name!r}; choose one of {valid}.")

    def provenance(self, data_hash: str = "", **extra: Any) -> Provenance:
        """Provenance of results produced by this runner (model, BOS, padding, task, budget)."""
        details = {
            "task": self.task.describe(),
            "task_hash": hash_json(self.task.describe()),
            "max_tokens": self.max_tokens,
            "overflow": self.overflow,
            **extra,
        }
        return model_provenance(
            self.model,
            bos_policy="prepend BOS" if self.bos else "no BOS",
            padding_side=self.scoring.padding_side if self.task.kind == "classification" else "left",
            data_hash=data_hash,
            extra=details,
        )


def gold_labels(queries: Sequence[Example]) -> np.ndarray:
    """Gold label indices of ``queries``; raises if one is unlabelled."""
    missing = [q.id for q in queries if q.label is None]
    if missing:
        raise DataError(f"Queries {missing[:5]} have no gold label; classification scores need labelled queries.")
    return np.array([q.label for q in queries], dtype=np.int64)
