"""``ExperimentConfig``: one documented dataclass tree for ``mechsel run CONFIG.yaml``.

Every field is documented where it is declared; choices are ``Literal``; ``__post_init__``
validates each section on its own and :meth:`ExperimentConfig.__post_init__` rejects settings
that contradict each other. :mod:`mechsel.experiment.loading` builds the tree from YAML,
rejecting unknown keys, and applies ``--set key=value`` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mechsel.errors import ConfigError
from mechsel.experiment.analysis_settings import AnalysisSettings, PlotSettings
from mechsel.experiment.checks import choice, has_negative, positive
from mechsel.experiment.execution_settings import ExecutionSettings
from mechsel.experiment.selection import CLAIM_FAMILY, SelectionSettings, SelectorRun
from mechsel.experiment.settings import CollectSettings, ModelSettings, QualitySettings, SAESettings, TaskSettings
from mechsel.icl.runner import CLASSIFICATION_METRICS, GENERATION_METRICS
from mechsel.masks.strategies import MaskName
from mechsel.provenance import hash_json
from mechsel.serialize import to_dict

if TYPE_CHECKING:
    from mechsel.selectors.base import Selector

__all__ = [
    "ModelSettings",
    "TaskSettings",
    "CollectSettings",
    "SAESettings",
    "QualitySettings",
    "SelectorRun",
    "SelectionSettings",
    "AnalysisSettings",
    "PlotSettings",
    "ExecutionSettings",
    "ExperimentConfig",
]


NON_RESULT_FIELDS = ("name", "output_dir", "progress", "log_level", "plots", "execution")
"""Top-level fields that never change a number (left out of the run's identity)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole study: model, tasks, statistics, quality, selectors, analysis, figures."""

    name: str = "experiment"
    """Run name (shown in the manifest and figures)."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """The model."""
    tasks: tuple[TaskSettings, ...] = (TaskSettings("sst2"),)
    """Tasks studied, each with its subset sizes."""
    split_seed: int = 0
    """Seed of the candidate / dev / test split of every task."""
    collect: CollectSettings = field(default_factory=CollectSettings)
    """Activation statistics."""
    sae: SAESettings = field(default_factory=SAESettings)
    """SAE latent statistics (off by default)."""
    quality: QualitySettings = field(default_factory=QualitySettings)
    """Example quality."""
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    """Selector comparison."""
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    """Statistics of the analysis."""
    plots: PlotSettings = field(default_factory=PlotSettings)
    """Figure output."""
    output_dir: str = "results/experiment"
    """Where the run writes (``manifest.json``, ``results/``, ``figures/``, ``stages/``, ``run.log``)."""
    progress: bool = True
    """Show progress bars."""
    log_level: Literal["DEBUG", "INFO", "WARNING"] = "INFO"
    """Level of ``run.log`` and the console."""
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    """Where the independent units of work run: this process (``engine: local``) or Ray workers
    (``engine: ray``). Never changes a number."""
    plugins: tuple[str, ...] = ()
    """Python modules imported before the config is read, so that what they register (e.g. a
    selector) can be named here: dotted module names or ``.py`` files (relative to the config
    file; stored absolute). See :mod:`mechsel.plugins`."""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, (str, Mapping)) or not all(isinstance(t, TaskSettings) for t in self.tasks):
            raise ConfigError(f"tasks must be a list of task entries, e.g. tasks: [{{name: sst2}}]; got {self.tasks!r}.")
        if not self.tasks:
            raise ConfigError("tasks is empty; list at least one task (e.g. - name: sst2).")
        positive("split_seed", self.split_seed, minimum=0)
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks lists a task twice: {names}.")
        choice("log_level", self.log_level, ("DEBUG", "INFO", "WARNING"))
        self._check_contradictions()

    def _check_contradictions(self) -> None:
        from mechsel.selectors import CLASSIFICATION_NEEDS, SELECTORS

        sel = self.selection
        names = [t.name for t in self.tasks]
        kb = max(sel.budgets)
        for t in self.tasks:
            sel.seeds_for(t)  # a task's n_seeds must fit selection.seeds
            if kb > t.effective_seed_pool_size:
                raise ConfigError(
                    f"Budget k={kb} exceeds the selection pool of task {t.name!r} ({t.effective_seed_pool_size} examples per "
                    f"seed); lower selection.budgets or raise tasks[{t.name}].seed_pool_size / n_candidates."
                )
        for r in sel.runs:
            cls = SELECTORS.get(r.selector)  # unknown names list the valid ones
            try:
                cls.check_parameter_names(r.params)
            except ConfigError as err:
                raise ConfigError(f"selection.runs[{r.label}].params.{err}") from None
            placeholder = cls.choice_placeholder if r.choose_statistic else {}
            try:
                cls.configure({**r.params, **placeholder})
            except ConfigError as err:
                raise ConfigError(f"selection.runs[{r.label}].params: {err}") from None
            if cls.reads is not None:
                self._check_cells(r, cls)
            if r.family == "sae" and not self.sae.enabled:
                raise ConfigError(f"selection.runs[{r.label}] is an SAE selector but no SAE is configured; set sae.saes: {{layer: path}}.")
            if r.annotated is not None:
                if "retrieve" not in SELECTORS.get(r.selector).modes:
                    raise ConfigError(
                        f"selection.runs[{r.label}].annotated applies to retrieval selectors only ({r.selector!r} annotates)."
                    )
                if "annotate" not in SELECTORS.get(sel.run(r.annotated).selector).modes:
                    raise ConfigError(f"selection.runs[{r.label}].annotated must name an annotation run; {r.annotated!r} retrieves.")
        if not any(r.family == CLAIM_FAMILY for r in sel.runs):
            raise ConfigError(
                f"selection.runs holds no {CLAIM_FAMILY}-family selector; the summary compares random with the best "
                f"{CLAIM_FAMILY} selector. Add e.g. {{selector: activation, choose_statistic: true}}."
            )
        unknown = [x for x in (sel.sequential.tasks or ()) if x not in names]
        if unknown:
            raise ConfigError(f"selection.sequential.tasks names {unknown}, which are not tasks of this config: {names}.")
        for r in sel.runs:
            unknown = [x for x in (r.tasks or ()) if x not in names]
            if unknown:
                raise ConfigError(f"selection.runs[{r.label}].tasks names {unknown}, which are not tasks of this config: {names}.")
        for t in self.tasks:
            if sel.baseline not in [r.label for r in sel.runs_for(t.name)]:
                raise ConfigError(
                    f"The baseline {sel.baseline!r} does not run on task {t.name!r}; every task needs it (remove its tasks: list)."
                )
            if not any(r.family == CLAIM_FAMILY for r in sel.runs_for(t.name)):
                raise ConfigError(f"No {CLAIM_FAMILY}-family selector runs on task {t.name!r}; the summary compares random with one.")
            kind = t.task_config().kind
            if t.quality_metric is not None:
                valid = CLASSIFICATION_METRICS if kind == "classification" else GENERATION_METRICS
                if t.quality_metric not in valid:
                    raise ConfigError(
                        f"tasks[{t.name}].quality_metric={t.quality_metric!r} does not apply to a {kind} task; choose one of {list(valid)}."
                    )
            probes = [r.label for r in sel.runs_for(t.name) if "probe_training" in SELECTORS.get(r.selector).needs_for(r.params)]
            if probes and t.n_candidates - t.effective_seed_pool_size < 10:
                raise ConfigError(
                    f"Runs {probes} train a probe on the candidates outside each seed's selection pool, but task {t.name!r} "
                    f"leaves {t.n_candidates - t.effective_seed_pool_size} of its {t.n_candidates} candidates outside it; set "
                    f"tasks[{t.name}].seed_pool_size to at most {t.n_candidates - 10} (half of n_candidates is the usual choice)."
                )
            if kind == "generation":
                bad = [r.label for r in sel.runs_for(t.name) if SELECTORS.get(r.selector).needs_for(r.params) & CLASSIFICATION_NEEDS]
                if bad:
                    raise ConfigError(
                        f"Task {t.name!r} is a generation task, but runs {bad} need the model's label distribution "
                        f"(classification only). Limit them to classification tasks with tasks: [...], or drop them."
                    )
                if sel.calibrate:
                    raise ConfigError(f"selection.calibrate applies to classification only; task {t.name!r} is generation.")

    def mask_of(self, run: SelectorRun) -> MaskName:
        """The mask whose statistics ``run`` reads: its own, or the first of ``collect.masks``."""
        return run.mask or self.collect.masks[0]

    def _check_cells(self, r: SelectorRun, cls: type[Selector[Any]]) -> None:
        """A run that reads a statistics table reads a collected mask and, in the moments table,
        collected statistics at collected layers (whatever the selector: it names its fields)."""
        mask = self.mask_of(r)
        if mask not in self.collect.masks:
            raise ConfigError(
                f"selection.runs[{r.label}] reads statistics under mask {mask!r}, which collect.masks "
                f"{list(self.collect.masks)} does not compute. Add it to collect.masks or change the run's mask."
            )
        if cls.reads != "moments":
            return  # SAE statistics are named and placed by the SAEs (checked when they load)
        layer, stats = cls.cell(r.params)
        for s in (stats,) if isinstance(stats, str) else (stats or ()):
            if s not in self.collect.statistics:
                raise ConfigError(
                    f"selection.runs[{r.label}] ranks by {s!r}, which collect.statistics {list(self.collect.statistics)} "
                    f"does not compute. Add it there or pick a collected statistic."
                )
        layer = "all" if layer is None else layer
        wanted = (layer,) if isinstance(layer, int) else layer
        # Negative indices (from the end) compare only once the model's depth normalises them
        # (mechsel.experiment.loading.validate_against_model); until then the check waits.
        if self.collect.layers != "all" and layer != "all" and not has_negative(self.collect.layers, wanted):
            missing = [x for x in wanted if x not in self.collect.layers]
            if missing:
                raise ConfigError(f"selection.runs[{r.label}] uses layer(s) {missing}, not in collect.layers {list(self.collect.layers)}.")

    def identity(self) -> dict[str, Any]:
        """The settings that determine the numbers (everything except :data:`NON_RESULT_FIELDS`
        and the thread count), as a JSON-friendly dict."""
        d = to_dict(self)
        for k in NON_RESULT_FIELDS:
            d.pop(k, None)
        d["model"].pop("n_threads", None)
        return d

    def identity_hash(self) -> str:
        return hash_json(self.identity())
