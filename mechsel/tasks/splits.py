"""Deterministic, seeded splits of a task into a candidate pool, a dev subset and a test subset.

The pool and the dev subset are drawn without overlap from ``TaskConfig.pool_split``: one seeded
permutation, dev first, then the pool. The test subset is the start of a second seeded
permutation of ``TaskConfig.test_split``; when both source splits are the same, test examples
come after dev and pool in the first permutation, so the three subsets never overlap. Growing
``pool_size`` (same seed and dev size) only appends to the pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mechsel.errors import ConfigError, DataError
from mechsel.provenance import hash_json
from mechsel.tasks.base import Example, TaskConfig, get_task
from mechsel.tasks.loading import Reader, Source, load_examples

__all__ = ["SplitConfig", "TaskSplits", "make_splits", "examples_hash"]


@dataclass(frozen=True)
class SplitConfig:
    """Sizes and seed of a task's pool / dev / test subsets."""

    pool_size: int | None = 1000
    """Candidate pool size; ``None`` takes every example of the pool split not used for dev."""
    dev_size: int = 64
    """Dev subset size (queries used to estimate example quality); may be 0."""
    test_size: int | None = 500
    """Test subset size; ``None`` takes the whole test split (minus dev/pool if shared)."""
    seed: int = 0
    """Seed of the permutations."""

    def __post_init__(self) -> None:
        if self.pool_size is not None and self.pool_size < 1:
            raise ConfigError(f"pool_size must be ≥ 1 (or None for all), got {self.pool_size}.")
        if self.dev_size < 0:
            raise ConfigError(f"dev_size must be ≥ 0, got {self.dev_size}.")
        if self.test_size is not None and self.test_size < 1:
            raise ConfigError(f"test_size must be ≥ 1 (or None for all), got {self.test_size}.")


def examples_hash(examples: list[Example] | tuple[Example, ...]) -> str:
    """A stable hash of examples' ids, inputs, labels and references (for provenance)."""
    return hash_json([[str(e.id), e.split, dict(e.inputs), e.label, list(e.references)] for e in examples])


@dataclass(frozen=True)
class TaskSplits:
    """The three disjoint subsets of a task."""

    task: TaskConfig
    """The task they come from."""
    pool: tuple[Example, ...]
    """Candidate demonstrations."""
    dev: tuple[Example, ...]
    """Dev queries for example-quality estimation."""
    test: tuple[Example, ...]
    """Test queries for the final score."""
    config: SplitConfig
    """How they were drawn."""

    @property
    def data_hash(self) -> str:
        """Hash of all three subsets (order-sensitive)."""
        return hash_json([examples_hash(self.pool), examples_hash(self.dev), examples_hash(self.test)])


def _take(name: str, wanted: int | None, available: int, cfg: TaskConfig, split: str) -> int:
    if wanted is None:
        if available < 1:
            raise DataError(f"Task {cfg.name!r}: no examples of split {split!r} are left for the {name}; lower the other subset sizes.")
        return available
    if wanted > available:
        raise DataError(
            f"Task {cfg.name!r}: asked for {wanted} {name} examples but split {split!r} has only {available} left "
            f"after the other subsets; lower {name}_size (or pass None to take all that remain)."
        )
    return wanted


def make_splits(
    task: str | TaskConfig,
    config: SplitConfig | None = None,
    *,
    source: Source = "local",
    data_dir: str | os.PathLike[str] | None = None,
    reader: Reader = "json",
) -> TaskSplits:
    """Draw the pool, dev and test subsets of ``task`` (see the module docstring for the rule)."""
    cfg = get_task(task)
    config = config or SplitConfig()
    pool_source = load_examples(cfg, cfg.pool_split, source=source, data_dir=data_dir, reader=reader)
    perm = np.random.default_rng(config.seed).permutation(len(pool_source))
    n_dev = _take("dev", config.dev_size, len(perm), cfg, cfg.pool_split)
    n_pool = _take("pool", config.pool_size, len(perm) - n_dev, cfg, cfg.pool_split)
    dev = tuple(pool_source[i] for i in perm[:n_dev])
    pool = tuple(pool_source[i] for i in perm[n_dev : n_dev + n_pool])
    if cfg.test_split == cfg.pool_split:
        rest = perm[n_dev + n_pool :]
        n_test = _take("test", config.test_size, len(rest), cfg, cfg.test_split)
        test = tuple(pool_source[i] for i in rest[:n_test])
    else:
        test_source = load_examples(cfg, cfg.test_split, source=source, data_dir=data_dir, reader=reader)
        test_perm = np.random.default_rng([config.seed, 1]).permutation(len(test_source))
        n_test = _take("test", config.test_size, len(test_perm), cfg, cfg.test_split)
        test = tuple(test_source[i] for i in test_perm[:n_test])
    return TaskSplits(task=cfg, pool=pool, dev=dev, test=test, config=config)
