"""Example quality, the paper's target variable.

**1-shot quality** of a candidate = its mean score over a fixed dev subset when it is the only
demonstration. :func:`quality_matrix` computes every (candidate, dev query) pair, keeping the
raw outputs (full-vocabulary label log-probabilities ``[n_candidates, n_dev, n_labels]`` for
classification; generated texts for generation) so other analyses can re-score them under any
metric; :meth:`QualityResult.table` gives the tidy table ``example_id, quality, se, n_dev``.
Each candidate's prompts share BOS + the demonstration, which is encoded once and reused for all
dev queries (:mod:`mechsel.icl.kv`).

**Marginal gain** (optional) of a candidate = the mean, over seeds, of the dev-score change when
it is appended (last, next to the query) to a random ``k``-shot context drawn from the pool.

Long runs checkpoint: with ``checkpoint_dir``, the pairs of every block of candidates are written
atomically as ``block_<first>.npz`` next to ``meta.json`` (provenance of the run); a rerun with
the same settings loads finished blocks and computes only the rest, and a rerun with different
settings is refused rather than mixed. The blocks are independent (:func:`quality_block`); a
distributed run computes them elsewhere and assembles them with :func:`quality_from_blocks`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.icl.runner import ICLRunner, PairMetric, gold_labels, pair_scores
from mechsel.paths import atomic_write_bytes, atomic_write_text
from mechsel.provenance import Provenance, check_compatible, hash_json
from mechsel.tasks.base import Example
from mechsel.tasks.prompts import sample_demonstrations
from mechsel.tasks.splits import examples_hash

__all__ = [
    "QualityResult",
    "quality_matrix",
    "quality_provenance",
    "quality_block",
    "quality_from_blocks",
    "marginal_gain",
    "marginal_gain_block",
    "quality_table",
]


def quality_table(ids: Sequence[object], scores: np.ndarray, *, value: str = "quality", count: str = "n_dev") -> pd.DataFrame:
    """Tidy per-example table from a ``[n_examples, n_obs]`` score matrix (NaN = missing):
    ``example_id``, the mean (``value``), its standard error ``se`` (std with ddof 1 / √n), ``count``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise DataError(f"Expected a [n_examples, n_obs] score matrix, got shape {s.shape}.")
    n = np.sum(~np.isnan(s), axis=1)
    mean, se = np.full(len(s), np.nan), np.full(len(s), np.nan)
    some, several = n > 0, n > 1
    mean[some] = np.nanmean(s[some], axis=1)
    se[several] = np.nanstd(s[several], axis=1, ddof=1) / np.sqrt(n[several])
    return pd.DataFrame({"example_id": list(ids), value: mean, "se": se, count: n.astype(np.int64)})


@dataclass
class QualityResult:
    """Every (candidate, dev query) pair of a 1-shot run, and the provenance of the run."""

    candidate_ids: list
    """Candidate ids, in row order."""
    dev_ids: list
    """Dev query ids, in column order."""
    metric: str
    """Default metric of :meth:`pair_scores` and :meth:`table`."""
    provenance: Provenance
    """Model, BOS, padding, task, data hashes."""
    label_logprobs: np.ndarray | None = None
    """Classification: ``[n_candidates, n_dev, n_labels]`` full-vocabulary label log-probabilities."""
    gold: np.ndarray | None = None
    """Classification: ``[n_dev]`` gold label indices."""
    texts: np.ndarray | None = None
    """Generation: ``[n_candidates, n_dev]`` generated texts."""
    references: list = field(default_factory=list)
    """Generation: each dev query's references."""

    def label_probs(self) -> np.ndarray:
        """``[n_candidates, n_dev, n_labels]`` distributions over the labels (rows sum to 1)."""
        if self.label_logprobs is None:
            raise ConfigError("label_probs needs a classification run.")
        lp = self.label_logprobs.astype(np.float64)
        p = np.exp(lp - lp.max(axis=-1, keepdims=True))
        return p / p.sum(axis=-1, keepdims=True)

    def pair_scores(self, metric: PairMetric | None = None) -> np.ndarray:
        """``[n_candidates, n_dev]`` per-pair scores under ``metric`` (default :attr:`metric`)."""
        metric = metric or self.metric  # type: ignore[assignment]
        if self.label_logprobs is not None:
            return pair_scores(metric, logprobs=self.label_logprobs, gold=self.gold)  # type: ignore[arg-type]
        texts = self.texts.reshape(-1).tolist()  # type: ignore[union-attr]
        refs = [r for _ in self.candidate_ids for r in self.references]
        return pair_scores(metric, texts=texts, references=refs).reshape(len(self.candidate_ids), len(self.dev_ids))  # type: ignore[arg-type]

    def table(self, metric: PairMetric | None = None) -> pd.DataFrame:
        """``example_id, quality, se, n_dev``: mean and standard error of each candidate's dev scores."""
        return quality_table(self.candidate_ids, self.pair_scores(metric))


class _Checkpoint:
    """Atomic per-block files under ``root`` with a ``meta.json`` guarding their provenance."""

    def __init__(self, root: str | os.PathLike[str], prov: Provenance, block_size: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / "meta.json"
        meta = {"provenance": prov.to_dict(), "block_size": block_size}
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            fields = (*Provenance.STRICT_FIELDS, "data_hash", "task_hash", "candidates", "dev", "max_tokens", "overflow", "kind")
            check_compatible(Provenance.from_dict(old["provenance"]), prov, fields, what=f"the checkpoint in {self.root}")
            if old["block_size"] != block_size:
                raise ProvenanceMismatchError(
                    f"The checkpoint in {self.root} used block_size={old['block_size']}; pass that or use a new directory."
                )
        else:
            atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str))

    def path(self, start: int) -> Path:
        return self.root / f"block_{start:06d}.npz"

    def load(self, start: int) -> dict[str, np.ndarray] | None:
        path = self.path(start)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        # The keys are array names, never savez's own allow_pickle keyword.
        np.savez(buf, **arrays)  # pyright: ignore[reportArgumentType]
        atomic_write_bytes(self.path(start), buf.getvalue())


def _check_inputs(candidates: Sequence[Example], dev: Sequence[Example]) -> None:
    if not candidates:
        raise DataError(
            "No candidates: the pool to estimate quality for is empty. Pass the candidate pool, e.g. "
            "make_splits(task, SplitConfig(pool_size=...)).pool."
        )
    if not dev:
        raise DataError("No dev queries: quality is a mean over dev queries; pass a non-empty dev subset.")
    for name, exs in (("candidate", candidates), ("dev", dev)):
        if len({e.id for e in exs}) != len(exs):
            raise DataError(f"{name} ids must be unique; drop the duplicated examples (or give them distinct ids).")


def quality_matrix(
    runner: ICLRunner,
    candidates: Sequence[Example],
    dev: Sequence[Example],
    *,
    metric: PairMetric | None = None,
    block_size: int = 8,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> QualityResult:
    """Score every candidate as the single demonstration for every dev query.

    Args:
        runner: the model bound to the task (:class:`~mechsel.icl.runner.ICLRunner`).
        candidates: the candidate demonstrations.
        dev: the dev queries (labelled, or with references).
        metric: default metric of the result (the raw outputs are kept either way).
        block_size: candidates per checkpoint block.
        checkpoint_dir: directory for resumable progress (see the module docstring).
        progress: tqdm bar over candidate blocks.
    """
    metric = metric or runner.quality_metric
    prov = quality_provenance(runner, candidates, dev, metric)
    if block_size < 1:
        raise ConfigError(f"block_size must be ≥ 1, got {block_size}.")
    ckpt = _Checkpoint(checkpoint_dir, prov, block_size) if checkpoint_dir is not None else None
    outputs: list[np.ndarray] = []
    starts = list(range(0, len(candidates), block_size))
    for start in tqdm(starts, desc="quality", disable=not progress):
        saved = ckpt.load(start) if ckpt is not None else None
        if saved is not None:
            outputs.append(saved["out"])
            continue
        out = quality_block(runner, candidates[start : start + block_size], dev)
        if ckpt is not None:
            ckpt.save(start, {"out": out})
        outputs.append(out)
    return quality_from_blocks(candidates, dev, outputs, kind=runner.task.kind, metric=metric, provenance=prov)


def quality_provenance(runner: ICLRunner, candidates: Sequence[Example], dev: Sequence[Example], metric: PairMetric) -> Provenance:
    """The provenance of a 1-shot quality run, after checking its inputs and ``metric`` (what
    :func:`quality_matrix` does before its first block)."""
    _check_inputs(candidates, dev)
    runner.check_metric(metric)
    return runner.provenance(
        data_hash=hash_json([examples_hash(list(candidates)), examples_hash(list(dev))]),
        candidates=examples_hash(list(candidates)),
        dev=examples_hash(list(dev)),
        kind="1-shot quality",
        generation=asdict(runner.generation) if runner.task.kind == "generation" else None,
    )


def quality_block(runner: ICLRunner, block: Sequence[Example], dev: Sequence[Example]) -> np.ndarray:
    """The raw outputs of one block of candidates, each the single demonstration of every dev
    query: ``[len(block), n_dev, n_labels]`` label log-probabilities (classification) or
    ``[len(block), n_dev]`` generated texts. Blocks are independent: :func:`quality_matrix` runs
    them in order, the Ray engine on several workers, with the same numbers."""
    demo_sets = [[c] for c in block for _ in dev]
    queries = [q for _ in block for q in dev]
    per_cand = []
    for i in range(len(block)):  # one call per candidate: its prompts share BOS + demonstration
        sl = slice(i * len(dev), (i + 1) * len(dev))
        if runner.task.kind == "classification":
            per_cand.append(runner.label_logprobs(demo_sets[sl], queries[sl]))
        else:
            per_cand.append(np.array([g.text for g in runner.generate(demo_sets[sl], queries[sl])]))
    return np.stack(per_cand)


def quality_from_blocks(
    candidates: Sequence[Example],
    dev: Sequence[Example],
    outputs: Sequence[np.ndarray],
    *,
    kind: str,
    metric: str,
    provenance: Provenance,
) -> QualityResult:
    """The :class:`QualityResult` of the blocks' outputs (:func:`quality_block`, in candidate order)."""
    result = QualityResult(candidate_ids=[c.id for c in candidates], dev_ids=[q.id for q in dev], metric=metric, provenance=provenance)
    stacked = np.concatenate(list(outputs), axis=0)
    if len(stacked) != len(candidates):
        raise DataError(f"The blocks hold {len(stacked)} candidates' outputs, expected {len(candidates)}; pass every block, in order.")
    if kind == "classification":
        result.label_logprobs = stacked.astype(np.float32)
        result.gold = gold_labels(dev)
    else:
        result.texts = stacked
        result.references = [list(q.references) for q in dev]
    return result


def marginal_gain(
    runner: ICLRunner,
    candidates: Sequence[Example],
    dev: Sequence[Example],
    pool: Sequence[Example],
    *,
    k: int = 4,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    metric: PairMetric | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Mean marginal gain of each candidate over random ``k``-shot contexts.

    For each seed a context of ``k`` examples is drawn from ``pool``; the gain of candidate ``c``
    is ``mean_dev score(context + [c]) − mean_dev score(context)``. Pairs where ``c`` is already
    in the context are skipped. Returns ``example_id, gain, se, n_seeds``.
    """
    _check_inputs(candidates, dev)
    if not seeds:
        raise ConfigError("Give at least one seed.")
    metric = metric or runner.quality_metric
    runner.check_metric(metric)
    columns = [
        marginal_gain_block(runner, candidates, dev, pool, k=k, seed=seed, metric=metric)
        for seed in tqdm(list(seeds), desc="marginal gain", disable=not progress)
    ]
    return quality_table([c.id for c in candidates], np.stack(columns, axis=1), value="gain", count="n_seeds")


def marginal_gain_block(
    runner: ICLRunner, block: Sequence[Example], dev: Sequence[Example], pool: Sequence[Example], *, k: int, seed: int, metric: PairMetric
) -> np.ndarray:
    """``[len(block)]`` marginal gains of a block of candidates over seed ``seed``'s ``k``-shot
    context (NaN for a candidate already in it): one column of :func:`marginal_gain`, or part of
    one. Blocks and seeds are independent, so a distributed run computes them on several workers."""
    context = sample_demonstrations(pool, k, seed=seed)
    base = runner.pair_scores([context] * len(dev), list(dev), metric)[0].mean()
    in_context = {e.id for e in context}
    gains = np.full(len(block), np.nan)
    for i, c in enumerate(block):
        if c.id in in_context:
            continue
        gains[i] = runner.pair_scores([[*context, c]] * len(dev), list(dev), metric)[0].mean() - base
    return gains
