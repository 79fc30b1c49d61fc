"""Evaluating a selection on test queries, and the model's confidence for selectors.

:func:`evaluate` takes demonstrations as a fixed set (every query sees the same prompt prefix,
encoded once), a per-query mapping ``query_id → demonstrations`` or a callable ``query →
demonstrations`` (retrieval), orders them by an :data:`~mechsel.tasks.OrderPolicy`, and returns
the test score with a percentile-bootstrap CI over queries and every query's prediction.

:func:`label_probabilities` and :func:`make_confidence_fn` give selectors (uncertainty, vote-k
stage 2) the model's label distribution for each pool example under given demonstrations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mechsel.errors import ConfigError, DataError
from mechsel.icl.calibration import calibrate as apply_calibration
from mechsel.icl.calibration import content_free_distribution
from mechsel.icl.metrics import accuracy, bleu_from_statistics, bleu_statistics, bootstrap_ci, macro_f1, rouge_l_scores
from mechsel.icl.runner import ICLRunner, gold_labels
from mechsel.icl.scoring import label_distribution
from mechsel.provenance import Provenance, hash_json
from mechsel.tasks.base import Example
from mechsel.tasks.prompts import OrderPolicy, order_demonstrations
from mechsel.tasks.splits import examples_hash

__all__ = ["DemoSpec", "EvalResult", "evaluate", "resolve_demo_sets", "label_probabilities", "make_confidence_fn"]

DemoSpec = Sequence[Example] | Mapping[Any, Sequence[Example]] | Callable[[Example], Sequence[Example]]
"""A fixed demonstration set, ``{query_id: demonstrations}``, or ``query -> demonstrations``."""


@dataclass
class EvalResult:
    """Test-set score of a selection, with CIs and per-query predictions."""

    task: str
    """Task name."""
    metric: str
    """The headline metric (``accuracy`` or ``bleu``)."""
    score: float
    """Value of the headline metric."""
    ci: tuple[float, float]
    """Its percentile-bootstrap interval over queries."""
    scores: dict[str, float]
    """Every metric computed (classification: accuracy, macro_f1; generation: bleu, rouge_l)."""
    cis: dict[str, tuple[float, float]]
    """Bootstrap interval of every metric."""
    predictions: pd.DataFrame
    """One row per query: id, prediction, gold/references, per-label probabilities, demos used."""
    provenance: Provenance
    """Model, BOS, padding, task, data and selection hashes."""


def resolve_demo_sets(queries: Sequence[Example], demos: DemoSpec, *, order: OrderPolicy = "given", seed: int = 0) -> list[list[Example]]:
    """One ordered demonstration list per query from any :data:`DemoSpec`."""
    if order in ("ascending", "descending"):
        raise ConfigError(f"order={order!r} needs per-demonstration scores; sort the demonstrations yourself and pass order='given'.")
    if callable(demos) and not isinstance(demos, Mapping):
        sets = [list(demos(q)) for q in queries]
    elif isinstance(demos, Mapping):
        missing = [q.id for q in queries if q.id not in demos]
        if missing:
            raise DataError(f"No demonstrations for queries {missing[:5]} ({len(missing)} in all); the mapping needs every query id.")
        sets = [list(demos[q.id]) for q in queries]
    else:
        fixed = order_demonstrations(list(demos), order, seed=seed)
        return [fixed for _ in queries]
    if order == "random":
        return [order_demonstrations(s, "random", seed=int(np.random.default_rng([seed, i]).integers(2**31))) for i, s in enumerate(sets)]
    return [order_demonstrations(s, order) for s in sets]


def _distinct(demo_sets: list[list[Example]]) -> tuple[list[list[Example]], np.ndarray]:
    keys: dict[tuple, int] = {}
    index = np.array([keys.setdefault(tuple((d.split, str(d.id)) for d in ds), len(keys)) for ds in demo_sets])
    firsts = {v: i for i, v in reversed(list(enumerate(index)))}
    return [demo_sets[firsts[v]] for v in range(len(keys))], index


def evaluate(
    runner: ICLRunner,
    queries: Sequence[Example],
    demos: DemoSpec,
    *,
    order: OrderPolicy = "given",
    seed: int = 0,
    calibrate: bool = False,
    n_boot: int = 1000,
    level: float = 0.95,
) -> EvalResult:
    """Score a selection on ``queries`` (labelled, or with references for generation).

    Args:
        runner: the model bound to the task.
        queries: the test queries.
        demos: a fixed set, a per-query mapping, or a callable (see :data:`DemoSpec`).
        order: ``given``, ``reverse`` or ``random`` (seeded; per query for per-query sets).
        seed: seed of ``random`` ordering and of the bootstrap.
        calibrate: contextual calibration (classification; one content-free estimate per distinct set).
        n_boot: bootstrap resamples; ``level``: interval coverage.
    """
    if not queries:
        raise DataError("No queries to evaluate on.")
    demo_sets = resolve_demo_sets(queries, demos, order=order, seed=seed)
    frame = pd.DataFrame({"query_id": [q.id for q in queries]})
    frame["n_demos"] = runner.n_demos(demo_sets, queries)
    frame["demo_ids"] = [[d.id for d in ds][len(ds) - n :] for ds, n in zip(demo_sets, frame["n_demos"])]
    n = len(queries)
    if runner.task.kind == "classification":
        gold = gold_labels(queries)
        probs = label_distribution(runner.label_logprobs(demo_sets, queries))
        if calibrate:
            distinct, index = _distinct(demo_sets)
            p_cf = content_free_distribution(runner.scorer, runner.encoder, distinct, max_tokens=runner.max_tokens)  # type: ignore[arg-type]
            frame["pred_uncalibrated"] = probs.argmax(axis=1)
            probs = apply_calibration(probs, p_cf[index])
        pred = probs.argmax(axis=1)
        frame["gold"], frame["pred"], frame["correct"] = gold, pred, pred == gold
        for j, name in enumerate(runner.task.label_names):
            frame[f"p_{name}"] = probs[:, j]
        labels = list(range(runner.task.n_labels))
        stats = {"accuracy": lambda idx: accuracy(pred[idx], gold[idx]), "macro_f1": lambda idx: macro_f1(pred[idx], gold[idx], labels)}
        headline = "accuracy"
    else:
        if calibrate:
            raise ConfigError("Contextual calibration applies to classification tasks only.")
        texts = [g.text for g in runner.generate(demo_sets, queries)]
        refs = [list(q.references) for q in queries]
        rouge = rouge_l_scores(texts, refs)
        bstats = bleu_statistics(texts, refs)
        frame["prediction"], frame["references"], frame["rouge_l"] = texts, refs, rouge
        stats = {"bleu": lambda idx: bleu_from_statistics(bstats[idx]), "rouge_l": lambda idx: float(rouge[idx].mean())}
        headline = "bleu"
    everything = np.arange(n)
    scores = {name: float(f(everything)) for name, f in stats.items()}
    cis = {name: bootstrap_ci(f, n, n_boot=n_boot, level=level, seed=seed) for name, f in stats.items()}
    prov = runner.provenance(
        data_hash=examples_hash(list(queries)),
        selection=hash_json([[str(i) for i in ids] for ids in frame["demo_ids"]]),
        order=order,
        seed=seed,
        calibrate=calibrate,
    )
    return EvalResult(runner.task.name, headline, scores[headline], cis[headline], scores, cis, frame, prov)


def label_probabilities(runner: ICLRunner, examples: Sequence[Example], demos: DemoSpec, *, order: OrderPolicy = "given") -> np.ndarray:
    """``[n, n_labels]`` label distributions (rows sum to 1) of ``examples`` under ``demos``.

    The input of :class:`mechsel.selectors.Pool`'s ``label_probs`` (margin, entropy, least
    confidence). Labels of ``examples`` are not needed.
    """
    if not examples:
        raise DataError("No examples to score.")
    return label_distribution(runner.label_logprobs(resolve_demo_sets(examples, demos, order=order), list(examples)))


ConfidenceKind = Literal["renormalised", "reference"]
"""How :func:`make_confidence_fn` turns label log-probabilities into one confidence per example."""


def make_confidence_fn(
    runner: ICLRunner,
    pool: Sequence[Example],
    *,
    k: int = 4,
    embeddings: np.ndarray | None = None,
    kind: ConfidenceKind = "renormalised",
) -> Callable[[list[int]], np.ndarray]:
    """A vote-k / least-confidence ``confidence_fn(selected_positions) -> [n]``.

    Each pool example is prompted with up to ``k`` selected examples (never itself): with
    ``embeddings`` (``[n, d]``), its ``k`` most cosine-similar selected examples, most similar
    last; without, the first ``k`` selected in selection order.

    ``kind`` says what the confidence is:

    * ``"renormalised"`` (default): the largest label probability after renormalising over the
      label words, ``max_y p(y | prompt, y ∈ labels)``;
    * ``"reference"``: what the vote-k reference code ranks by (MetaICL's option loss): the
      predicted option's mean per-token log-probability under the full-vocabulary softmax,
      ``max_y log p(y | prompt) / len(tokens(y))``. Unlike the renormalised one it falls when the
      model puts its mass outside the label words.
    """
    if kind not in ("renormalised", "reference"):
        raise ConfigError(f"kind must be 'renormalised' or 'reference', got {kind!r}.")
    pool = list(pool)
    if not pool:
        raise DataError("The pool is empty: there is nothing to compute confidences for.")
    if k < 1:
        raise ConfigError(f"k must be ≥ 1, got {k}.")
    unit = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.shape[0] != len(pool) or emb.ndim != 2:
            raise DataError(f"embeddings must have shape [{len(pool)}, d], got {emb.shape}.")
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def confidence_fn(selected: list[int]) -> np.ndarray:
        sel = [int(s) for s in selected]
        if not sel:
            raise DataError("confidence_fn needs at least one selected example to use as a demonstration.")
        if any(not 0 <= s < len(pool) for s in sel):
            raise DataError(f"Selected positions must lie in 0..{len(pool) - 1}.")
        sets = []
        for i in range(len(pool)):
            others = [s for s in sel if s != i]
            if unit is not None and others:
                sims = unit[others] @ unit[i]
                others = [others[j] for j in np.argsort(-sims, kind="stable")[:k]][::-1]
            else:
                others = others[:k]
            sets.append([pool[s] for s in others])
        logprobs = runner.label_logprobs(sets, pool)
        if kind == "reference":
            n_tokens = np.array([len(ids) for ids in runner.encoder.label_token_ids], dtype=np.float64)
            return (np.asarray(logprobs, dtype=np.float64) / n_tokens).max(axis=1)
        return label_distribution(logprobs).max(axis=1)

    return confidence_fn
