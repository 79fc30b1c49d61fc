"""Deterministic, seeded splits of a task into a candidate pool, a dev subset and a test subset.

Where the subsets come from. Each subset has a source split (:meth:`TaskConfig.subset_splits`:
``dev_split``, ``pool_split``, ``test_split``, or ``hub_test_split`` with ``source="hub"``). The
subsets are drawn in the order dev, pool, test; subsets that share a source split take disjoint
examples of it (each takes only what the earlier ones left), so the three never overlap.

Unstratified draw (generation tasks, or ``SplitConfig.stratify=False``): one seeded permutation
per source split; each subset takes the first examples of it that are still free. With the
default ``dev_split`` (the pool split) these are exactly the draws of earlier versions.

Label-stratified draw (classification tasks, ``stratify=True``, the default): every subset's
count of each label is within one example of its size times that label's share of the *source
split* (``|count_l - n * share_l| < 1``), and so is every prefix of it. Each label's examples are
put in a seeded random order; the subset's sequence of labels is built one position at a time,
choosing uniformly at random among the labels that keep the prefix within one and leave a
schedule that can stay within one forever. That check is exact and cheap: for unit jobs with
release times and deadlines (job *k* of label *l* must land at a position *t* with
``(k - 1) / share_l < t <= ceil(k / share_l)``), a state is feasible when, for every later
position *b*, the examples that must be placed by *b* fit in the positions left, and that holds
by itself once every label's quota ``floor(b * share_l)`` has reached its count, so only the
next ``≈ 1 / min share`` positions need checking. The start is feasible by Tijdeman's chairman
assignment theorem (a sequence within ``1 - 1/(2m - 2)`` exists for *m* labels). The subsets'
orders are therefore shuffled, not grouped by label (two labels of equal share pair up: each
pair of positions holds one of each, in random order).

A subset drawn after another from the same split can run short of a label (e.g. a large pool
after the dev subset); a subset of an explicit size that cannot keep every share within one then
raises :class:`~mechsel.errors.DataError`. A size of ``None`` ("all that remain") is never
checked: it takes what the other subsets left.

Nesting: growing ``pool_size`` (same seed, dev size and source splits) only appends to the pool,
stratified or not, because the pool's order does not depend on its size. A test subset sharing
the pool's split changes with ``pool_size``. ``min_words`` keeps short texts out of the pool only
(dev and test keep the source distribution); with stratification, the pool still follows the
label shares of the whole pool split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mechsel.errors import ConfigError, DataError
from mechsel.provenance import hash_json
from mechsel.tasks.base import Example, TaskConfig, get_task
from mechsel.tasks.loading import Reader, Source, SplitExamples, check_choices, locate_task, read_split

__all__ = ["SplitConfig", "TaskSplits", "make_splits", "examples_hash", "stratified_label_order", "word_count"]

SUBSETS: tuple[str, ...] = ("dev", "pool", "test")
"""The subsets, in the order they are drawn."""


@dataclass(frozen=True)
class SplitConfig:
    """Sizes, seed and drawing rules of a task's pool / dev / test subsets."""

    pool_size: int | None = 1000
    """Number of candidates (an experiment config's ``tasks[].n_candidates``); ``None`` takes every
    example of the pool split left by the other subsets."""
    dev_size: int = 64
    """Dev subset size (queries used to estimate example quality); may be 0."""
    test_size: int | None = 500
    """Test subset size; ``None`` takes every example of the test split left by the other subsets."""
    seed: int = 0
    """Seed of the permutations."""
    stratify: bool = True
    """Classification tasks: draw every subset so each label's count is within one example of its
    share of the source split (see the module docstring). Ignored for generation tasks."""
    min_words: int | None = None
    """Keep candidates whose input text (all input fields) has fewer space-separated words than
    this out of the pool; dev and test are never filtered. ``None``: no filter."""

    def __post_init__(self) -> None:
        if self.pool_size is not None and self.pool_size < 1:
            raise ConfigError(f"pool_size must be ≥ 1 (or None for all), got {self.pool_size}.")
        if self.dev_size < 0:
            raise ConfigError(f"dev_size must be ≥ 0, got {self.dev_size}.")
        if self.test_size is not None and self.test_size < 1:
            raise ConfigError(f"test_size must be ≥ 1 (or None for all), got {self.test_size}.")
        if not isinstance(self.stratify, bool):
            raise ConfigError(f"stratify must be True or False, got {self.stratify!r}.")
        if self.min_words is not None and (isinstance(self.min_words, bool) or not isinstance(self.min_words, int) or self.min_words < 1):
            raise ConfigError(f"min_words must be an integer ≥ 1 (or None for no filter), got {self.min_words!r}.")

    def size(self, subset: str) -> int | None:
        """The requested size of ``subset`` (``"dev"``, ``"pool"`` or ``"test"``)."""
        return {"dev": self.dev_size, "pool": self.pool_size, "test": self.test_size}[subset]


def examples_hash(examples: list[Example] | tuple[Example, ...]) -> str:
    """A stable hash of examples' ids, inputs, labels and references (for provenance)."""
    return hash_json([[str(e.id), e.split, dict(e.inputs), e.label, list(e.references)] for e in examples])


def word_count(example: Example) -> int:
    """Space-separated words of the example's input text (all input fields together)."""
    return len(example.text(" ").split())


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
    sources: Mapping[str, str] = field(default_factory=dict)
    """Subset (``dev``, ``pool``, ``test``) → the split it was drawn from."""
    origin: str = ""
    """Where the rows were read from (:meth:`mechsel.tasks.TaskLocation.describe`); draws from a
    full data directory and from the packaged subset are identical, so it is not in the hash."""

    @property
    def examples(self) -> tuple[Example, ...]:
        """Every example of the three subsets: candidates, then dev, then test."""
        return (*self.pool, *self.dev, *self.test)

    @property
    def data_hash(self) -> str:
        """Hash of all three subsets (order-sensitive)."""
        return hash_json([examples_hash(self.pool), examples_hash(self.dev), examples_hash(self.test)])


def _feasible(counts: Sequence[int], t: int, targets: Sequence[int], total: int) -> bool:
    """Whether ``counts`` (summing to ``t``, live labels only) can be continued forever with every
    prefix within one: for each later length ``b``, the examples due by then fit in ``b - t``."""
    horizon = max(-(-c * total // k) for c, k in zip(counts, targets))
    for b in range(t, horizon + 1):
        if sum(max(0, b * k // total - c) for c, k in zip(counts, targets)) > b - t:
            return False
    return True


def stratified_label_order(
    targets: Sequence[int] | np.ndarray, n: int, rng: np.random.Generator, supply: Sequence[int] | None = None
) -> list[int]:
    """A random sequence of ``n`` labels whose every prefix of length ``t`` holds each label ``l``
    within one of ``t * targets[l] / sum(targets)`` times (see the module docstring).

    Args:
        targets: each label's count in the source split (its share is ``targets[l] / sum(targets)``).
        n: length of the sequence.
        rng: the seeded generator (one draw per position).
        supply: examples of each label available (default ``targets``). A label that runs out is
            no longer chosen; from then on the shares are only as close as the rest allows.
    """
    targets = [int(k) for k in targets]
    total = sum(targets)
    left = list(targets if supply is None else supply)
    live = [label for label, k in enumerate(targets) if k > 0]
    live_targets = [targets[label] for label in live]
    counts = [0] * len(live)
    order: list[int] = []
    for t in range(1, n + 1):
        safe = []
        for j, label in enumerate(live):
            if left[label] > 0 and counts[j] * total < t * targets[label]:
                counts[j] += 1
                if _feasible(counts, t, live_targets, total):
                    safe.append(j)
                counts[j] -= 1
        if not safe:  # a label ran out: the most overdue label that still has examples
            safe = [max((j for j, label in enumerate(live) if left[label] > 0), key=lambda j: t * live_targets[j] - counts[j] * total)]
        j = safe[int(rng.integers(len(safe)))]
        counts[j] += 1
        left[live[j]] -= 1
        order.append(live[j])
    return order


_SIZE_FIELDS = {"dev": "dev_size", "pool": "pool_size (the config's n_candidates)", "test": "test_size"}
"""The field that sets each subset's size, as an error names it."""


def _take(name: str, wanted: int | None, available: int, cfg: TaskConfig, split: str, filtered: bool) -> int:
    after = "after the other subsets" + (" and the min_words filter" if filtered else "")
    if wanted is None:
        if available < 1:
            raise DataError(
                f"Task {cfg.name!r}: no examples of split {split!r} are left for the {name} {after}; lower the other subset sizes."
            )
        return available
    if wanted > available:
        raise DataError(
            f"Task {cfg.name!r}: asked for {wanted} {name} examples but split {split!r} has only {available} left "
            f"{after}; lower {_SIZE_FIELDS[name]} (or pass None to take all that remain)."
        )
    return wanted


def _check_shares(
    name: str, chosen: Sequence[int], labels: np.ndarray, supply: Sequence[int], cfg: TaskConfig, split: str, filtered: bool
) -> None:
    targets = np.bincount(labels, minlength=cfg.n_labels)
    counts = np.bincount(labels[list(chosen)], minlength=cfg.n_labels)
    n, total = len(chosen), int(targets.sum())
    for label in range(cfg.n_labels):
        if abs(int(counts[label]) * total - n * int(targets[label])) >= total:
            raise DataError(
                f"Task {cfg.name!r}: a label-stratified {name} subset of {n} needs about {n * targets[label] / total:.1f} examples "
                f"labelled {cfg.label_names[label]!r} (its share of split {split!r}), but only {supply[label]} are left after the "
                f"other subsets{' and the min_words filter' if filtered else ''}. Lower {name}_size, draw the subsets from "
                f"different splits, or set stratify=False."
            )


def _missing_row(cfg: TaskConfig, split: str, data: SplitExamples, subset: str, row: int) -> DataError:
    return DataError(
        f"Task {cfg.name!r}: this draw of the {subset} subset needs row {row} of split {split!r}, which the packaged "
        f"subset does not hold (it ships {len(data.examples)} of the split's {data.n_rows} rows: those the demo configs and "
        f"the draws listed in mechsel/data/MANIFEST.json reach, so those give the same examples as the full data). "
        f"Set MECHSEL_DATA_DIR to a full copy of the data, go online to read the task from the hub, or draw smaller "
        f"subsets (or another split seed)."
    )


def _draw_group(
    cfg: TaskConfig, split: str, data: SplitExamples, subsets: list[str], config: SplitConfig, rng: np.random.Generator, stratify: bool
) -> dict[str, tuple[Example, ...]]:
    """Draw ``subsets`` (in order) disjointly from one source split.

    The draw is a function of the full split (its size, labels and word counts), so a packaged
    partial split, which describes the rows it leaves out, gives the same examples."""
    examples = data.examples
    at = dict(zip(data.positions, examples)) if data.positions is not None else None
    free = np.ones(data.n_rows, dtype=bool)
    if config.min_words is None:
        long_enough = None
    elif data.words is not None:
        long_enough = np.asarray(data.words) >= config.min_words
    else:
        long_enough = np.array([word_count(e) for e in examples]) >= config.min_words
    if stratify:
        labels = np.asarray(data.labels if data.labels is not None else [e.label for e in examples], dtype=np.int64)
        targets = np.bincount(labels, minlength=cfg.n_labels)
        queues = [rng.permutation(np.flatnonzero(labels == label)) for label in range(cfg.n_labels)]
    else:
        queues = [rng.permutation(data.n_rows)]
    out = {}
    for subset in subsets:
        filtered = subset == "pool" and long_enough is not None
        allowed = free & long_enough if filtered else free
        avail = [q[allowed[q]] for q in queues]
        n = _take(subset, config.size(subset), sum(map(len, avail)), cfg, split, filtered)
        if stratify:
            supply = [len(a) for a in avail]
            order = stratified_label_order(targets, n, np.random.default_rng([config.seed, 10 + SUBSETS.index(subset)]), supply=supply)
            taken = [0] * cfg.n_labels
            chosen = []
            for label in order:
                chosen.append(int(avail[label][taken[label]]))
                taken[label] += 1
            if config.size(subset) is not None:
                _check_shares(subset, chosen, labels, supply, cfg, split, filtered)
        else:
            chosen = [int(i) for i in avail[0][:n]]
        free[chosen] = False
        if at is None:
            out[subset] = tuple(examples[i] for i in chosen)
        else:
            lost = next((i for i in chosen if i not in at), None)
            if lost is not None:
                raise _missing_row(cfg, split, data, subset, lost)
            out[subset] = tuple(at[i] for i in chosen)
    return out


def _group_rng(seed: int, subsets: list[str]) -> np.random.Generator:
    # the pool's split and a test-only split keep the seeds of earlier versions (same unstratified draws)
    if "pool" in subsets:
        return np.random.default_rng(seed)
    return np.random.default_rng([seed, 1] if subsets == ["test"] else [seed, 2])


def make_splits(
    task: str | TaskConfig,
    config: SplitConfig | None = None,
    *,
    source: Source = "local",
    data_dir: str | os.PathLike[str] | None = None,
    reader: Reader = "json",
) -> TaskSplits:
    """Draw the pool, dev and test subsets of ``task`` (see the module docstring for the rule).

    Raises:
        DataError: a source split is missing (the message names the subset and the
            ``TaskConfig`` field to change), or it cannot supply the requested sizes.
    """
    cfg = get_task(task)
    config = config or SplitConfig()
    check_choices(source, reader)
    location = locate_task(cfg, data_dir, source=source)
    sources = cfg.subset_splits("hub" if location.kind == "hub" else "local")
    groups: dict[str, list[str]] = {}
    for subset in SUBSETS:
        groups.setdefault(sources[subset], []).append(subset)
    loaded: dict[str, SplitExamples] = {}
    for split, subsets in groups.items():
        try:
            loaded[split] = read_split(cfg, split, location, reader=reader)
        except DataError as err:
            test_field = "hub_test_split" if location.kind == "hub" and cfg.hub_test_split else "test_split"
            field_name = "pool_split" if "pool" in subsets else "dev_split" if "dev" in subsets else test_field
            raise DataError(
                f"Task {cfg.name!r} draws its {' and '.join(subsets)} subset{'s' if len(subsets) > 1 else ''} from split {split!r} "
                f"(TaskConfig.{field_name}), which could not be loaded: {err}"
            ) from err
    stratify = config.stratify and cfg.kind == "classification"
    drawn: dict[str, tuple[Example, ...]] = {}
    for split, subsets in groups.items():
        drawn.update(_draw_group(cfg, split, loaded[split], subsets, config, _group_rng(config.seed, subsets), stratify))
    return TaskSplits(
        task=cfg, pool=drawn["pool"], dev=drawn["dev"], test=drawn["test"], config=config, sources=sources, origin=location.describe()
    )
