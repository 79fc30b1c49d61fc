"""The ``selection`` section of an :class:`~mechsel.experiment.ExperimentConfig`: the selector runs compared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from mechsel.errors import ConfigError
from mechsel.experiment.checks import choice, int_list, positive
from mechsel.experiment.settings import TaskSettings
from mechsel.icl.evaluate import ConfidenceKind
from mechsel.masks.strategies import MASK_NAMES, MaskName
from mechsel.selectors.base import Family

__all__ = ["CLAIM_FAMILY", "SelectorRun", "SelectionSettings"]

CLAIM_FAMILY: Family = "activation"
"""The family the paper's claim is about: its runs are the gain part's lines against the
baseline, and the summary compares the best of them with random."""


@dataclass(frozen=True)
class SelectorRun:
    """One selector of the comparison, with its parameters."""

    selector: str
    """Registered selector name (``random``, ``activation``, ``knn``, ``votek``, ``ideal``, ...)."""
    label: str | None = None
    """Name in tables and figures (unique); default: the selector name."""
    family: Family | None = None
    """Group in the summary (:data:`CLAIM_FAMILY` runs compete with random); default: the selector's
    own (its class attribute ``family``)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The selector's config fields (see its ``Config`` class)."""
    mask: MaskName | None = None
    """Selectors that read a statistics table (their ``reads``): which mask's statistics they read
    (default: the first collected)."""
    choose_statistic: bool = False
    """Selectors that declare ``choice_fields`` (``activation``: layer, statistic, direction):
    choose them on the candidates' measured quality, e.g. the (layer, statistic, direction) with
    the largest |ρ| (optimistic for the selector: it sees the dev quality)."""
    order: Literal["given", "reverse", "random"] = "random"
    """Order of a fixed demonstration set in the prompt (retrieval always puts the best last)."""
    annotated: str | None = None
    """Retrieval selectors: label of the run whose selection is the annotated set they retrieve
    from, with ``annotation_budget`` examples; ``null``: the whole selection pool is annotated."""
    annotation_budget: int | None = None
    """Size of the annotated set chosen by ``annotated`` (``null``: 4 × the largest budget)."""
    tasks: tuple[str, ...] | None = None
    """Names of the tasks this run applies to (``null``: every task), e.g. to leave the
    label-distribution selectors out of a generation task."""
    n_seeds: int | None = None
    """Evaluate this run on the first ``n_seeds`` of ``selection.seeds`` only (``null``: all), to
    spend a run's time where the power is needed; the baseline always runs every seed, so each
    seed of this run stays paired with the baseline's."""

    def __post_init__(self) -> None:
        if not isinstance(self.selector, str) or not self.selector:
            raise ConfigError(f"selection.runs[].selector must be a selector name, got {self.selector!r}.")
        if self.label is None:
            object.__setattr__(self, "label", self.selector)
        if self.family is None:
            from mechsel.selectors import SELECTORS

            object.__setattr__(self, "family", SELECTORS.get(self.selector).family)  # unknown names list the valid ones
        choice(f"selection.runs[{self.label}].family", self.family, get_args(Family))
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"selection.runs[{self.label}].params must be a mapping, got {self.params!r}.")
        if self.mask is not None:
            choice(f"selection.runs[{self.label}].mask", self.mask, MASK_NAMES)
        choice(f"selection.runs[{self.label}].order", self.order, ("given", "reverse", "random"))
        positive(f"selection.runs[{self.label}].annotation_budget", self.annotation_budget, allow_none=True)
        if self.tasks is not None and (isinstance(self.tasks, str) or not self.tasks):
            raise ConfigError(f"selection.runs[{self.label}].tasks must be a non-empty list of task names or null, got {self.tasks!r}.")
        positive(f"selection.runs[{self.label}].n_seeds", self.n_seeds, allow_none=True, minimum=2)
        if self.choose_statistic:
            from mechsel.selectors import SELECTORS

            chosen = SELECTORS.get(self.selector).choice_fields
            if not chosen:
                able = [n for n in SELECTORS.names() if SELECTORS.get(n).choice_fields]
                raise ConfigError(
                    f"selection.runs[{self.label}]: choose_statistic applies to selectors that choose their cell on the dev "
                    f"quality ({', '.join(repr(n) for n in able)}); {self.selector!r} does not."
                )
            if set(chosen) & set(self.params):
                raise ConfigError(
                    f"selection.runs[{self.label}]: choose_statistic picks {', '.join(chosen)} itself; "
                    f"remove them from params or set choose_statistic: false."
                )


@dataclass(frozen=True)
class SequentialSettings:
    """The gain part's sequential design (:mod:`mechsel.analysis.sequential`): after the
    configured seeds, seeds are added in batches to the (task, budget) lines of the activation
    family against the baseline that are still undecided, until each is decided or has
    ``max_seeds``. Every added unit is checkpointed like the others."""

    enabled: bool = False
    """Whether to add seeds at all (off: the fixed design, every line on the configured seeds)."""
    tasks: tuple[str, ...] | None = None
    """Tasks whose lines are extended (``null``: every task)."""
    first_look: int | None = None
    """Seeds at the first look (``null``: the task's configured seeds)."""
    batch: int = 50
    """Seeds added per look."""
    max_seeds: int = 400
    """The most seeds a line gets (the last look)."""
    spending: float = 2.0
    """Exponent ``rho`` of the alpha-spending function ``alpha · t^rho`` (1: Pocock-like, 3:
    O'Brien–Fleming-like)."""

    def __post_init__(self) -> None:
        positive("selection.sequential.batch", self.batch)
        positive("selection.sequential.max_seeds", self.max_seeds, minimum=2)
        if self.first_look is not None:
            positive("selection.sequential.first_look", self.first_look, minimum=2)
        if isinstance(self.spending, bool) or not isinstance(self.spending, (int, float)) or not self.spending > 0:
            raise ConfigError(f"selection.sequential.spending must be a positive number (2 is the default), got {self.spending!r}.")

    def applies_to(self, task: str) -> bool:
        """Whether ``task``'s lines are extended."""
        return self.enabled and (self.tasks is None or task in self.tasks)


@dataclass(frozen=True)
class SelectionSettings:
    """The selector comparison: who, at which budgets, over which seeds."""

    runs: tuple[SelectorRun, ...] = (SelectorRun("random"),)
    """Selectors compared (one must be the baseline)."""
    budgets: tuple[int, ...] = (4, 8)
    """Numbers of demonstrations k."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds: each draws a selection pool, seeds the selectors, and orders the demonstrations."""
    baseline: str = "random"
    """Label of the reference run of the paired tests."""
    retrieval_baseline: str | None = None
    """Label of the annotate-then-retrieve run whose labelled set is the baseline's (random labels,
    then retrieval): every other annotate-then-retrieve run is compared with it, so both sides
    spend the same annotation budget B; ``null``: they are compared with ``baseline``."""
    embedder: str = "all-MiniLM-L6-v2"
    """Sentence embedder of the similarity / coverage selectors (offline default)."""
    confidence_k: int = 4
    """Demonstrations in the prompts behind model confidences (vote-k stage 2, least confidence)."""
    confidence: ConfidenceKind = "renormalised"
    """What those confidences are: the top label probability renormalised over the labels, or
    the vote-k reference code's (the predicted option's full-vocabulary log-prob per token);
    see :func:`mechsel.icl.make_confidence_fn`."""
    calibrate: bool = False
    """Contextual calibration of test predictions (classification)."""
    sequential: SequentialSettings = field(default_factory=SequentialSettings)
    """Seeds added to the undecided gain lines (off by default)."""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("selection.runs is empty; list at least the baseline (selector: random).")
        labels = [str(r.label) for r in self.runs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"selection.runs labels must be unique; {dupes} appear twice. Give each run a distinct label.")
        if self.baseline not in labels:
            raise ConfigError(f"selection.baseline={self.baseline!r} is not a run label; runs: {labels}.")
        object.__setattr__(self, "budgets", int_list("selection.budgets", self.budgets, minimum=1, example="[4, 8]"))
        object.__setattr__(self, "seeds", int_list("selection.seeds", self.seeds, minimum=0, example="[0, 1, 2, 3, 4]"))
        positive("selection.confidence_k", self.confidence_k)
        choice("selection.confidence", self.confidence, get_args(ConfidenceKind))
        if self.retrieval_baseline is not None:
            if self.retrieval_baseline not in labels:
                raise ConfigError(f"selection.retrieval_baseline={self.retrieval_baseline!r} is not a run label; runs: {labels}.")
            rb = self.run(self.retrieval_baseline)
            if rb.annotated != self.baseline:
                raise ConfigError(
                    f"selection.retrieval_baseline={rb.label!r} must retrieve from the baseline's labels: give it "
                    f"annotated: {self.baseline!r}."
                )
            short = [
                r.label
                for r in self.runs
                if r.annotated is not None and rb.n_seeds is not None and (r.n_seeds is None or r.n_seeds > rb.n_seeds)
            ]
            if short:
                raise ConfigError(
                    f"selection.retrieval_baseline={rb.label!r} runs {rb.n_seeds} seeds but {short} run more; every seed of "
                    f"an annotate-then-retrieve run needs its paired baseline: raise the baseline's n_seeds or lower theirs."
                )
        for r in self.runs:
            if r.n_seeds is not None and r.label == self.baseline and r.n_seeds < len(self.seeds):
                raise ConfigError(
                    f"selection.runs[{r.label}].n_seeds: the baseline runs every seed (it is paired with every other run); remove n_seeds."
                )
            if r.n_seeds is not None and r.n_seeds > len(self.seeds):
                raise ConfigError(
                    f"selection.runs[{r.label}].n_seeds={r.n_seeds} exceeds the {len(self.seeds)} selection.seeds; lower it or add seeds."
                )
            if r.annotated is not None and r.annotated not in labels:
                raise ConfigError(f"selection.runs[{r.label}].annotated={r.annotated!r} is not a run label; runs: {labels}.")

    def run(self, label: str) -> SelectorRun:
        """The run labelled ``label``."""
        return next(r for r in self.runs if r.label == label)

    def seeds_for(self, task: TaskSettings) -> tuple[int, ...]:
        """The seeds ``task`` runs on (the first ``task.n_seeds`` of :attr:`seeds`)."""
        if task.n_seeds is not None and task.n_seeds > len(self.seeds):
            raise ConfigError(
                f"tasks[{task.name}].n_seeds={task.n_seeds} exceeds the {len(self.seeds)} selection.seeds; lower it or add seeds."
            )
        return tuple(self.seeds[: task.n_seeds])

    def runs_for(self, task: str) -> tuple[SelectorRun, ...]:
        """The runs that apply to ``task``."""
        return tuple(r for r in self.runs if r.tasks is None or task in r.tasks)
