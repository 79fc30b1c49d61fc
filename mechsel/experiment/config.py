"""``ExperimentConfig``: one documented dataclass tree for ``mechsel run CONFIG.yaml``.

Every field is documented where it is declared; choices are ``Literal``; ``__post_init__``
validates each section on its own and :meth:`ExperimentConfig.__post_init__` rejects settings
that contradict each other. :mod:`mechsel.experiment.loading` builds the tree from YAML,
rejecting unknown keys, and applies ``--set key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from mechsel.analysis.correlation import CIMethod, PMethod
from mechsel.analysis.grid import FdrFamily
from mechsel.analysis.verdict import RhoAdjust, VerdictSettings
from mechsel.collection.config import SummaryConfig
from mechsel.errors import ConfigError, did_you_mean
from mechsel.icl.evaluate import ConfidenceKind
from mechsel.icl.runner import CLASSIFICATION_METRICS, GENERATION_METRICS, PairMetric
from mechsel.masks.strategies import EQUAL_MASKS, MASK_NAMES, MaskName
from mechsel.models.loading import DTypeName, WeightProcessing
from mechsel.models.precision import MatmulPrecision
from mechsel.plots.io import PlotlyJS
from mechsel.provenance import hash_json
from mechsel.selectors.base import Family
from mechsel.serialize import to_dict
from mechsel.stats.moments import DEFAULT_MOMENTS
from mechsel.tasks.loading import Source

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
    "ExperimentConfig",
]


def _positive(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}{' or null' if allow_none else ''}, got {value!r}.")


def _int_list(name: str, value: Any, *, minimum: int, example: str) -> tuple[int, ...]:
    """``value`` as a tuple of distinct integers ≥ ``minimum``; anything else raises, naming ``name``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list of distinct integers ≥ {minimum}, e.g. {example}; got {value!r}.")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{name}[{i}] must be an integer ≥ {minimum}, got {v!r}; e.g. {name}: {example}.")
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"{name} must not repeat values; {list(value)} repeats {dupes}. List each value once.")
    return tuple(value)


def _layer_list(value: Any) -> tuple[int, ...]:
    """``collect.layers`` given as a list: distinct integer indices (negative ones count from the end)."""
    if isinstance(value, (str, bytes, bool, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"collect.layers must be 'all' or a non-empty list of layer indices, e.g. [0, 5, -1]; got {value!r}.")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"collect.layers[{i}] must be a layer index (an integer; -1 is the last layer), got {v!r}.")
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"collect.layers must not repeat a layer; {list(value)} repeats {dupes}. List each layer once.")
    return tuple(value)


def _has_negative(*layer_lists: Any) -> bool:
    return any(isinstance(x, int) and x < 0 for layers in layer_lists for x in layers)


def moment_statistic_names() -> tuple[str, ...]:
    """Statistic names computed by the registered families that need no arguments (moments, token
    moments): the valid entries of ``collect.statistics``. SAE statistics come from ``sae``."""
    from mechsel.stats import STATISTICS

    names: list[str] = []
    for family in STATISTICS.names():
        try:
            reducer = STATISTICS.get(family)()
        except TypeError:  # families that need objects (an SAE per layer) are configured elsewhere
            continue
        names.extend(n for n in reducer.statistic_names() if n not in names)
    return tuple(names)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name} must be one of {list(options)}, got {value!r}.{did_you_mean(str(value), options)}")


@dataclass(frozen=True)
class ModelSettings:
    """Which model runs, and how it is loaded."""

    name: str = "google/gemma-3-270m"
    """TransformerLens model name; the default is the embedded Gemma 3 270M (offline). Online
    users pass e.g. ``Qwen/Qwen2.5-3B`` or ``meta-llama/Llama-3.2-3B``."""
    weight_processing: WeightProcessing = "none"
    """``none``: weights as published (``hook_mlp_out`` equals the HF MLP-block output);
    ``default``: TransformerLens's processing (shifts the mean of ``hook_mlp_out``)."""
    dtype: DTypeName = "float32"
    """Dtype the model runs in."""
    device: str | None = None
    """``cpu``, ``cuda``, ``cuda:1``...; ``null`` picks CUDA when available, else CPU."""
    n_threads: int | None = None
    """CPU threads for torch (``null``: torch's default). Does not change results' meaning."""
    matmul_precision: MatmulPrecision = "highest"
    """Internal precision of float32 matrix products (``torch.set_float32_matmul_precision``) for
    the whole run. ``highest``: plain float32. ``high``/``medium`` may use faster TF32 or
    bfloat16-based kernels; mechsel measures their error on this machine first and uses them only
    if it stays within float32 rounding (else runs at ``highest`` and says so in the log); the
    outcome is recorded in ``manifest.json`` (``model.matmul_precision``). See
    :mod:`mechsel.models.precision`."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"model.name must be a TransformerLens model name, got {self.name!r}.")
        _choice("model.weight_processing", self.weight_processing, get_args(WeightProcessing))
        _choice("model.dtype", self.dtype, get_args(DTypeName))
        _positive("model.n_threads", self.n_threads, allow_none=True)
        _choice("model.matmul_precision", self.matmul_precision, get_args(MatmulPrecision))


@dataclass(frozen=True)
class TaskSettings:
    """One task of the study, its subset sizes, and optionally its whole definition."""

    name: str
    """A registered task (``sst2``, ``ag_news``, ``rte``, ``e2e_nlg``) or the name of ``define``."""
    define: Mapping[str, Any] | None = None
    """A task defined only in config: the fields of :class:`mechsel.tasks.TaskConfig` other than
    ``name`` (e.g. ``files``, ``input_fields``, ``label_field``, ``label_names``, ``template``)."""
    n_candidates: int = 64
    """Candidate demonstrations drawn from the pool split: each gets activation statistics and a
    1-shot quality; selectors choose among them."""
    dev_size: int = 32
    """Dev queries that estimate each candidate's 1-shot quality (cost: n_candidates × dev_size)."""
    test_size: int = 300
    """Test queries every selection is scored on."""
    dev_split: str | None = None
    """Split the dev queries come from, overriding the task's ``dev_split`` (``null``: the task's
    own; SST-2 uses ``validation``, the other built-ins their pool split). ``train`` restores
    SST-2's earlier dev queries (short train phrases)."""
    stratify: bool = True
    """Draw candidates, dev and test queries so each label's count is within one example of its
    share of the split they come from (classification; generation tasks ignore it)."""
    min_words: int | None = None
    """Leave candidates with fewer space-separated words than this out of the pool (``null``: no
    filter, e.g. ``4`` keeps SST-2's short train phrases out); dev and test are never filtered."""
    n_seeds: int | None = None
    """Run this task on the first ``n_seeds`` of ``selection.seeds`` only (``null``: all), e.g. to
    keep a secondary task light; a run's own ``n_seeds`` caps it further."""
    selection_pool: int | None = None
    """Per seed, the selectors choose from this many candidates drawn at random (seeded);
    ``null`` uses all candidates every seed (then only seeded selectors vary across seeds)."""
    metric: PairMetric | None = None
    """1-shot quality metric: ``accuracy``, ``gold_prob``, ``gold_logprob`` (classification) or
    ``rouge_l``, ``bleu`` (generation); ``null``: ``gold_prob`` / ``rouge_l``."""
    max_tokens: int | None = None
    """Prompt budget in tokens (``null``: the model's context)."""
    source: Source = "local"
    """``local``: the data directory (``$MECHSEL_DATA_DIR``, ``../shared/data``); ``hub``: online."""
    data_dir: str | None = None
    """Data directory override for this task."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"tasks[].name must be a task name, got {self.name!r}.")
        where = f"tasks[{self.name}]"
        from mechsel.paths import safe_name

        safe_name("task", self.name)  # task names become folder and file names: no '..', no '/', no leading dot
        if self.define is not None and not isinstance(self.define, Mapping):
            raise ConfigError(f"{where}.define must be a mapping of TaskConfig fields, got {type(self.define).__name__}.")
        _positive(f"{where}.n_candidates", self.n_candidates, minimum=2)
        _positive(f"{where}.dev_size", self.dev_size)
        _positive(f"{where}.test_size", self.test_size)
        _positive(f"{where}.selection_pool", self.selection_pool, allow_none=True, minimum=2)
        _positive(f"{where}.n_seeds", self.n_seeds, allow_none=True, minimum=2)
        _positive(f"{where}.max_tokens", self.max_tokens, allow_none=True)
        _choice(f"{where}.source", self.source, get_args(Source))
        if self.dev_split is not None and (not isinstance(self.dev_split, str) or not self.dev_split):
            raise ConfigError(f"{where}.dev_split must be a split name (e.g. validation) or null, got {self.dev_split!r}.")
        if not isinstance(self.stratify, bool):
            raise ConfigError(f"{where}.stratify must be true or false, got {self.stratify!r}.")
        _positive(f"{where}.min_words", self.min_words, allow_none=True)
        if self.selection_pool is not None and self.selection_pool > self.n_candidates:
            raise ConfigError(
                f"{where}: selection_pool={self.selection_pool} exceeds n_candidates={self.n_candidates}; the selection "
                f"pool is drawn from the candidates. Lower selection_pool or raise n_candidates."
            )

    def task_config(self) -> Any:
        """The :class:`mechsel.tasks.TaskConfig` this entry stands for."""
        from mechsel.tasks import TaskConfig, get_task

        if self.define is None:
            cfg = get_task(self.name)
            return cfg if self.dev_split is None else dataclasses.replace(cfg, dev_split=self.dev_split)
        spec = dict(self.define)
        if self.dev_split is not None:
            if spec.get("dev_split", self.dev_split) != self.dev_split:
                raise ConfigError(
                    f"tasks[{self.name}] sets dev_split={self.dev_split!r} and define.dev_split={spec['dev_split']!r}; set it in one place."
                )
            spec["dev_split"] = self.dev_split
        if "name" in spec and spec["name"] != self.name:
            raise ConfigError(f"tasks[{self.name}].define.name is {spec['name']!r}; leave it out (the entry's name is used).")
        spec.pop("name", None)
        valid = [f.name for f in dataclasses.fields(TaskConfig) if f.name != "name"]
        unknown = [k for k in spec if k not in valid]
        if unknown:
            raise ConfigError(
                f"tasks[{self.name}].define has unknown key(s) {unknown}.{did_you_mean(unknown[0], valid)} Valid keys: {', '.join(valid)}."
            )
        for key in ("input_fields", "label_names", "verbalizers", "stop"):
            if isinstance(spec.get(key), list):
                spec[key] = tuple(spec[key])
        return TaskConfig(name=self.name, **spec)

    @property
    def pool_size(self) -> int:
        """Size of each seed's selection pool."""
        return self.selection_pool or self.n_candidates

    def split_config(self, seed: int) -> Any:
        """The :class:`mechsel.tasks.SplitConfig` of this task's candidate / dev / test subsets."""
        from mechsel.tasks import SplitConfig

        return SplitConfig(
            pool_size=self.n_candidates,
            dev_size=self.dev_size,
            test_size=self.test_size,
            seed=seed,
            stratify=self.stratify,
            min_words=self.min_words,
        )


@dataclass(frozen=True)
class CollectSettings(SummaryConfig):
    """Which activation statistics are collected for every candidate: the fields of
    :class:`mechsel.collection.SummaryConfig` (layers, hook, positions, statistics, batch size, BOS
    and template tokens; documented and validated there) plus the masks and how candidates are
    packed into prompts. Each mask's collection runs as :meth:`with_mask`."""

    _section: ClassVar[str] = "collect."

    statistics: tuple[str, ...] = DEFAULT_MOMENTS
    """Moment statistics (names of :data:`mechsel.stats.STATISTICS` families' outputs)."""
    batch_size: int = 8
    """Sequences per forward pass."""
    masks: tuple[MaskName, ...] = ("full", "isolated")
    """Attention-mask strategies: ``full`` (candidates share a prompt, each sees those before
    it), ``isolated`` (same prompts, each segment sees only itself and BOS), ``alone``."""
    context_size: int = 4
    """Candidates per prompt under ``full`` / ``isolated`` (as in a k-shot prompt)."""
    chunk_size: int = 32
    """Prompts per checkpointed chunk (an interrupted run loses at most one chunk)."""

    def __post_init__(self) -> None:
        if isinstance(self.masks, str) or not self.masks:
            raise ConfigError(f"collect.masks must be a non-empty list of mask names, got {self.masks!r}.")
        for m in self.masks:
            _choice("collect.masks[]", m, MASK_NAMES)
        if len(set(self.masks)) != len(self.masks):
            raise ConfigError(f"collect.masks lists a mask twice: {list(self.masks)}.")
        for a, b in EQUAL_MASKS:
            if a in self.masks and b in self.masks:
                raise ConfigError(
                    f"collect.masks lists both {a!r} and {b!r}, which compute the same statistics by construction "
                    f"(one of them only duplicates the grid and its multiplicity correction); keep one, e.g. {a!r}."
                )
        if self.layers != "all":  # a YAML list (the notebook API also takes one int)
            object.__setattr__(self, "layers", _layer_list(self.layers))
        if isinstance(self.statistics, str) or not self.statistics:
            raise ConfigError(f"collect.statistics must be a non-empty list of names, got {self.statistics!r}.")
        valid = moment_statistic_names()  # names only: SAE reducers are configured under sae
        for i, name in enumerate(self.statistics):
            if name not in valid:
                raise ConfigError(
                    f"collect.statistics[{i}]: unknown statistic {name!r}.{did_you_mean(name, valid)} Valid statistics: "
                    f"{', '.join(valid)} (SAE statistics are set under sae.saes / sae.statistics)."
                )
        if len(set(self.statistics)) != len(self.statistics):
            raise ConfigError(f"collect.statistics lists a statistic twice: {list(self.statistics)}; list each once.")
        _positive("collect.context_size", self.context_size)
        _positive("collect.chunk_size", self.chunk_size)
        super().__post_init__()


@dataclass(frozen=True)
class SAESettings:
    """SAE latent statistics (the follow-up experiment); off unless SAEs are given."""

    saes: Mapping[int, str] = field(default_factory=dict)
    """Layer → SAE: a local folder in sae-lens format, or ``release/sae_id`` of a pretrained release."""
    statistics: tuple[str, ...] | None = None
    """SAE statistics to keep (``null``: all that the SAE reducer computes)."""

    def __post_init__(self) -> None:
        if not isinstance(self.saes, Mapping):
            raise ConfigError(f"sae.saes must map layer → SAE path or release/id, got {self.saes!r}.")
        bad = [
            k for k in self.saes if isinstance(k, bool) or not isinstance(k, int) and not (isinstance(k, str) and k.lstrip("-").isdigit())
        ]
        if bad:
            raise ConfigError(f"sae.saes keys must be layer indices, got {bad[0]!r}; e.g. saes: {{6: path/to/layer_6}}.")
        object.__setattr__(self, "saes", {int(k): str(v) for k, v in self.saes.items()})

    @property
    def enabled(self) -> bool:
        return bool(self.saes)


@dataclass(frozen=True)
class QualitySettings:
    """How each candidate's quality (the target of the correlations) is computed."""

    block_size: int = 8
    """Candidates per checkpointed block of the 1-shot quality matrix."""
    marginal_gain: bool = False
    """Also compute each candidate's mean marginal gain over random ``gain_k``-shot contexts."""
    gain_k: int = 4
    """Context size of the marginal-gain estimate."""
    gain_seeds: tuple[int, ...] = (0, 1, 2)
    """Random contexts of the marginal-gain estimate."""

    def __post_init__(self) -> None:
        _positive("quality.block_size", self.block_size)
        _positive("quality.gain_k", self.gain_k)
        object.__setattr__(self, "gain_seeds", _int_list("quality.gain_seeds", self.gain_seeds, minimum=0, example="[0, 1, 2]"))


@dataclass(frozen=True)
class SelectorRun:
    """One selector of the comparison, with its parameters."""

    selector: str
    """Registered selector name (``random``, ``activation``, ``knn``, ``votek``, ``ideal``, ...)."""
    label: str | None = None
    """Name in tables and figures (unique); default: the selector name."""
    family: Family | None = None
    """Group in the summary (``activation`` runs compete with random); default: the selector's
    own (its class attribute ``family``)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The selector's config fields (see its ``Config`` class)."""
    mask: MaskName | None = None
    """Activation/SAE selectors: which mask's statistics they read (default: the first collected)."""
    choose_statistic: bool = False
    """Activation selectors: pick (layer, statistic, direction) with the largest |ρ| against the
    candidates' quality (optimistic for the activation selector: it sees the dev quality)."""
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
        _choice(f"selection.runs[{self.label}].family", self.family, get_args(Family))
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"selection.runs[{self.label}].params must be a mapping, got {self.params!r}.")
        if self.mask is not None:
            _choice(f"selection.runs[{self.label}].mask", self.mask, MASK_NAMES)
        _choice(f"selection.runs[{self.label}].order", self.order, ("given", "reverse", "random"))
        _positive(f"selection.runs[{self.label}].annotation_budget", self.annotation_budget, allow_none=True)
        if self.tasks is not None and (isinstance(self.tasks, str) or not self.tasks):
            raise ConfigError(f"selection.runs[{self.label}].tasks must be a non-empty list of task names or null, got {self.tasks!r}.")
        _positive(f"selection.runs[{self.label}].n_seeds", self.n_seeds, allow_none=True, minimum=2)
        if self.choose_statistic and self.selector != "activation":
            raise ConfigError(f"selection.runs[{self.label}]: choose_statistic applies to the 'activation' selector only.")
        if self.choose_statistic and {"statistic", "layer", "direction"} & set(self.params):
            raise ConfigError(
                f"selection.runs[{self.label}]: choose_statistic picks statistic, layer and direction itself; "
                f"remove them from params or set choose_statistic: false."
            )


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

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("selection.runs is empty; list at least the baseline (selector: random).")
        labels = [str(r.label) for r in self.runs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"selection.runs labels must be unique; {dupes} appear twice. Give each run a distinct label.")
        if self.baseline not in labels:
            raise ConfigError(f"selection.baseline={self.baseline!r} is not a run label; runs: {labels}.")
        object.__setattr__(self, "budgets", _int_list("selection.budgets", self.budgets, minimum=1, example="[4, 8]"))
        object.__setattr__(self, "seeds", _int_list("selection.seeds", self.seeds, minimum=0, example="[0, 1, 2, 3, 4]"))
        _positive("selection.confidence_k", self.confidence_k)
        _choice("selection.confidence", self.confidence, get_args(ConfidenceKind))
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


@dataclass(frozen=True)
class AnalysisSettings:
    """Statistics of the analysis stage and how the verdict decides (see :mod:`mechsel.analysis.verdict`)."""

    rho_test: PMethod = "t"
    """p-value of each ρ: ``t`` (analytic, as scipy's spearmanr; no floor) or ``permutation``
    (floor 1/(1 + n_perm): after BH over m cells no q falls below m/(1 + n_perm))."""
    rho_interval: CIMethod = "fisher"
    """Interval of each ρ: ``fisher`` (Bonett–Wright, analytic) or ``bootstrap`` (percentile)."""
    fdr_family: FdrFamily = "task_family"
    """Cells sharing one Benjamini–Hochberg correction: one family per (task, statistic family)
    — moments and SAE latents never share one — or ``global`` (every cell)."""
    n_boot: int = 2000
    """Bootstrap resamples of every Δρ CI (and of ρ CIs under ``rho_interval: bootstrap``)."""
    n_perm: int = 2000
    """Permutations of every ρ p-value under ``rho_test: permutation``."""
    level: float = 0.95
    """Coverage of every reported interval."""
    alpha: float = 0.05
    """Level of the verdict's tests and FDR of every Benjamini–Hochberg correction."""
    rho_threshold: float = 0.33
    """The paper's largest |ρ|: the correlation part holds when every cell is shown below it."""
    rho_basis: Literal["partial", "raw"] = "partial"
    """Which ρ the verdict's correlation part decides on: ``partial`` (Spearman ρ given the token
    count, the label and the candidate's slot in its packed prompt; the length confound removed)
    or ``raw``. Both are in the grid table."""
    rho_adjust: RhoAdjust = "bonferroni"
    """Adjustment of the all-cells-below claim: ``bonferroni`` (simultaneous intervals within each
    family) or ``intersection_union`` (each cell at alpha; valid for an all-cells claim)."""
    margin: float = 0.03
    """Equivalence margin of the gain part, as a fraction of the metric's range (0.03 accuracy)."""
    power: float = 0.8
    """Power at which every comparison's minimum detectable effect is stated."""
    n_extreme: int = 3
    """Best and worst candidates whose raw activations are sampled for the distribution figure."""
    samples_per_example: int = 2000
    """Activation values sampled per (example, layer) for that figure."""
    seed: int = 0
    """Seed of all resampling."""

    def __post_init__(self) -> None:
        _choice("analysis.rho_test", self.rho_test, get_args(PMethod))
        _choice("analysis.rho_interval", self.rho_interval, get_args(CIMethod))
        _choice("analysis.fdr_family", self.fdr_family, get_args(FdrFamily))
        _choice("analysis.rho_adjust", self.rho_adjust, get_args(RhoAdjust))
        _choice("analysis.rho_basis", self.rho_basis, ("partial", "raw"))
        _positive("analysis.n_boot", self.n_boot, minimum=0)
        _positive("analysis.n_perm", self.n_perm, minimum=0)
        _positive("analysis.n_extreme", self.n_extreme)
        _positive("analysis.samples_per_example", self.samples_per_example)
        _positive("analysis.seed", self.seed, minimum=0)
        for name in ("level", "alpha", "rho_threshold", "margin", "power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"analysis.{name} must lie in (0, 1), got {v!r}.")
        if self.power <= self.alpha:
            raise ConfigError(f"analysis.power ({self.power}) must exceed analysis.alpha ({self.alpha}); 0.8 is the convention.")

    def verdict_settings(self) -> VerdictSettings:
        """The verdict's settings, read from these fields."""
        return VerdictSettings(
            alpha=self.alpha, margin=self.margin, rho_bound=self.rho_threshold, rho_adjust=self.rho_adjust, power=self.power
        )


@dataclass(frozen=True)
class PlotSettings:
    """How figures are written (never changes a number)."""

    formats: tuple[str, ...] = ("png", "svg")
    """Static formats besides HTML, written when a Chromium is available."""
    plotlyjs: PlotlyJS = "directory"
    """How HTML files get plotly.js (see :data:`mechsel.plots.io.PlotlyJS`)."""

    def __post_init__(self) -> None:
        for f in self.formats:
            _choice("plots.formats[]", f, ("png", "svg"))
        _choice("plots.plotlyjs", self.plotlyjs, get_args(PlotlyJS))


NON_RESULT_FIELDS = ("name", "output_dir", "progress", "log_level", "plots")
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
    plugins: tuple[str, ...] = ()
    """Python modules imported before the config is read, so that what they register (e.g. a
    selector) can be named here: dotted module names or ``.py`` files (relative to the config
    file; stored absolute). See :mod:`mechsel.plugins`."""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, (str, Mapping)) or not all(isinstance(t, TaskSettings) for t in self.tasks):
            raise ConfigError(f"tasks must be a list of task entries, e.g. tasks: [{{name: sst2}}]; got {self.tasks!r}.")
        if not self.tasks:
            raise ConfigError("tasks is empty; list at least one task (e.g. - name: sst2).")
        _positive("split_seed", self.split_seed, minimum=0)
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks lists a task twice: {names}.")
        _choice("log_level", self.log_level, ("DEBUG", "INFO", "WARNING"))
        self._check_contradictions()

    def _check_contradictions(self) -> None:
        from mechsel.selectors import CLASSIFICATION_NEEDS, SELECTORS

        sel = self.selection
        names = [t.name for t in self.tasks]
        kb = max(sel.budgets)
        for t in self.tasks:
            sel.seeds_for(t)  # a task's n_seeds must fit selection.seeds
            if kb > t.pool_size:
                raise ConfigError(
                    f"Budget k={kb} exceeds the selection pool of task {t.name!r} ({t.pool_size} examples); "
                    f"lower selection.budgets or raise tasks[{t.name}].selection_pool / n_candidates."
                )
        for r in sel.runs:
            SELECTORS.get(r.selector)  # unknown names list the valid ones
            if r.selector == "activation":
                mask = r.mask or self.collect.masks[0]
                if mask not in self.collect.masks:
                    raise ConfigError(
                        f"selection.runs[{r.label}] reads statistics under mask {mask!r}, which collect.masks "
                        f"{list(self.collect.masks)} does not compute. Add it to collect.masks or change the run's mask."
                    )
                stats = r.params.get("statistic")
                for s in (stats,) if isinstance(stats, str) else (stats or ()):
                    if s not in self.collect.statistics:
                        raise ConfigError(
                            f"selection.runs[{r.label}] ranks by {s!r}, which collect.statistics {list(self.collect.statistics)} "
                            f"does not compute. Add it there or pick a collected statistic."
                        )
                layer = r.params.get("layer", "all")
                wanted = (layer,) if isinstance(layer, int) else layer
                # Negative indices (from the end) compare only once the model's depth normalises them
                # (mechsel.experiment.loading.validate_against_model); until then the check waits.
                if self.collect.layers != "all" and layer != "all" and not _has_negative(self.collect.layers, wanted):
                    missing = [x for x in wanted if x not in self.collect.layers]
                    if missing:
                        raise ConfigError(
                            f"selection.runs[{r.label}] uses layer(s) {missing}, not in collect.layers {list(self.collect.layers)}."
                        )
            if r.family == "sae" and not self.sae.enabled:
                raise ConfigError(f"selection.runs[{r.label}] is an SAE selector but no SAE is configured; set sae.saes: {{layer: path}}.")
            if r.annotated is not None:
                if "retrieve" not in SELECTORS.get(r.selector).modes:
                    raise ConfigError(
                        f"selection.runs[{r.label}].annotated applies to retrieval selectors only ({r.selector!r} annotates)."
                    )
                if "annotate" not in SELECTORS.get(sel.run(r.annotated).selector).modes:
                    raise ConfigError(f"selection.runs[{r.label}].annotated must name an annotation run; {r.annotated!r} retrieves.")
        if not any(r.family == "activation" for r in sel.runs):
            raise ConfigError(
                "selection.runs holds no activation-family selector; the summary compares random with the best activation "
                "selector. Add e.g. {selector: activation, choose_statistic: true}."
            )
        for r in sel.runs:
            unknown = [x for x in (r.tasks or ()) if x not in names]
            if unknown:
                raise ConfigError(f"selection.runs[{r.label}].tasks names {unknown}, which are not tasks of this config: {names}.")
        for t in self.tasks:
            if sel.baseline not in [r.label for r in sel.runs_for(t.name)]:
                raise ConfigError(
                    f"The baseline {sel.baseline!r} does not run on task {t.name!r}; every task needs it (remove its tasks: list)."
                )
            if not any(r.family == "activation" for r in sel.runs_for(t.name)):
                raise ConfigError(f"No activation-family selector runs on task {t.name!r}; the summary compares random with one.")
            kind = t.task_config().kind
            if t.metric is not None:
                valid = CLASSIFICATION_METRICS if kind == "classification" else GENERATION_METRICS
                if t.metric not in valid:
                    raise ConfigError(f"tasks[{t.name}].metric={t.metric!r} does not apply to a {kind} task; choose one of {list(valid)}.")
            if kind == "generation":
                bad = [r.label for r in sel.runs_for(t.name) if SELECTORS.get(r.selector).needs_for(r.params) & CLASSIFICATION_NEEDS]
                if bad:
                    raise ConfigError(
                        f"Task {t.name!r} is a generation task, but runs {bad} need the model's label distribution "
                        f"(classification only). Limit them to classification tasks with tasks: [...], or drop them."
                    )
                if sel.calibrate:
                    raise ConfigError(f"selection.calibrate applies to classification only; task {t.name!r} is generation.")

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
