"""The model, task, collection, SAE and quality sections of an :class:`~mechsel.experiment.ExperimentConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, get_args

from mechsel.collection.config import SummaryConfig
from mechsel.errors import ConfigError, did_you_mean
from mechsel.experiment.checks import choice, int_list, layer_list, moment_statistic_names, positive
from mechsel.icl.runner import PairMetric
from mechsel.masks.strategies import EQUAL_MASKS, MASK_NAMES, MaskName
from mechsel.models.loading import DTypeName, WeightProcessing
from mechsel.models.precision import MatmulPrecision
from mechsel.stats.moments import DEFAULT_MOMENTS
from mechsel.tasks.loading import Source

__all__ = ["ModelSettings", "TaskSettings", "CollectSettings", "SAESettings", "QualitySettings"]


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
    """CPU threads torch uses for the model (``torch.set_num_threads``; ``null``: torch's default,
    one per core). It matters on a shared machine: by default each run takes every core, so two
    runs (or a run beside tests) slow each other down; set it to your share, e.g. ``2``. It changes what is computed by at most float rounding and is
    left out of the run's identity, so a run may resume with another value."""
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
        choice("model.weight_processing", self.weight_processing, get_args(WeightProcessing))
        choice("model.dtype", self.dtype, get_args(DTypeName))
        positive("model.n_threads", self.n_threads, allow_none=True)
        choice("model.matmul_precision", self.matmul_precision, get_args(MatmulPrecision))


@dataclass(frozen=True)
class TaskSettings:
    """One task of the study, its subset sizes, and optionally its whole definition."""

    name: str
    """A registered task (``sst2``, ``ag_news``, ``rte``, ``e2e_nlg``) or the name of ``define``."""
    define: Mapping[str, Any] | None = None
    """A task defined only in config: the fields of :class:`mechsel.tasks.TaskConfig` other than
    ``name`` (e.g. ``files``, ``input_fields``, ``label_field``, ``label_names``, ``template``)."""
    n_candidates: int = 64
    """The task's candidates: demonstrations drawn once from the task's ``pool_split`` (the
    :class:`~mechsel.tasks.SplitConfig` calls their number ``pool_size``). Each gets activation
    statistics and a 1-shot quality; every seed's selection pool is drawn from them."""
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
    seed_pool_size: int | None = None
    """Size of each seed's selection pool: per seed, the selectors choose from this many of the
    ``n_candidates`` candidates, drawn at random (seeded by ``split_seed`` and the seed); ``null``
    uses all candidates every seed (then only seeded selectors vary across seeds). Formerly
    ``selection_pool`` (still read, with a deprecation warning)."""
    quality_metric: PairMetric | None = None
    """Metric of each candidate's 1-shot quality (the target of the correlations, read on the dev
    queries): ``accuracy``, ``gold_prob``, ``gold_logprob`` (classification) or ``rouge_l``,
    ``bleu`` (generation); ``null``: ``gold_prob`` / ``rouge_l``. Not the test metric, which is
    fixed by the task's kind (accuracy / BLEU, see ``results/scores.parquet``). Formerly
    ``metric`` (still read, with a deprecation warning)."""
    max_tokens: int | None = None
    """Prompt budget in tokens (``null``: the model's context)."""
    source: Source = "local"
    """``local``: the data directory (``$MECHSEL_DATA_DIR``, ``../shared/data``); ``hub``: online."""
    data_dir: str | None = None
    """Data directory of this task (``null``: ``$MECHSEL_DATA_DIR``, else ``../shared/data`` next
    to the repository): where its folder of ``<split>.jsonl`` files, or the relative paths of its
    ``define.files``, are read from. Set it for a task whose data lives elsewhere."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"tasks[].name must be a task name, got {self.name!r}.")
        where = f"tasks[{self.name}]"
        from mechsel.paths import safe_name

        safe_name("task", self.name)  # task names become folder and file names: no '..', no '/', no leading dot
        if self.define is not None and not isinstance(self.define, Mapping):
            raise ConfigError(f"{where}.define must be a mapping of TaskConfig fields, got {type(self.define).__name__}.")
        positive(f"{where}.n_candidates", self.n_candidates, minimum=2)
        positive(f"{where}.dev_size", self.dev_size)
        positive(f"{where}.test_size", self.test_size)
        positive(f"{where}.seed_pool_size", self.seed_pool_size, allow_none=True, minimum=2)
        positive(f"{where}.n_seeds", self.n_seeds, allow_none=True, minimum=2)
        positive(f"{where}.max_tokens", self.max_tokens, allow_none=True)
        choice(f"{where}.source", self.source, get_args(Source))
        if self.dev_split is not None and (not isinstance(self.dev_split, str) or not self.dev_split):
            raise ConfigError(f"{where}.dev_split must be a split name (e.g. validation) or null, got {self.dev_split!r}.")
        if not isinstance(self.stratify, bool):
            raise ConfigError(f"{where}.stratify must be true or false, got {self.stratify!r}.")
        positive(f"{where}.min_words", self.min_words, allow_none=True)
        if self.seed_pool_size is not None and self.seed_pool_size > self.n_candidates:
            raise ConfigError(
                f"{where}: seed_pool_size={self.seed_pool_size} exceeds n_candidates={self.n_candidates}; each seed's "
                f"selection pool is drawn from the candidates. Lower seed_pool_size or raise n_candidates."
            )
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir):
            raise ConfigError(f"{where}.data_dir must be a folder path or null, got {self.data_dir!r}.")

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
    def effective_seed_pool_size(self) -> int:
        """Size of each seed's selection pool: ``seed_pool_size``, or all ``n_candidates`` when null."""
        return self.seed_pool_size or self.n_candidates

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
            choice("collect.masks[]", m, MASK_NAMES)
        if len(set(self.masks)) != len(self.masks):
            raise ConfigError(f"collect.masks lists a mask twice: {list(self.masks)}.")
        for a, b in EQUAL_MASKS:
            if a in self.masks and b in self.masks:
                raise ConfigError(
                    f"collect.masks lists both {a!r} and {b!r}, which compute the same statistics by construction "
                    f"(one of them only duplicates the grid and its multiplicity correction); keep one, e.g. {a!r}."
                )
        if self.layers != "all":  # a YAML list (the notebook API also takes one int)
            object.__setattr__(self, "layers", layer_list(self.layers))
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
        positive("collect.context_size", self.context_size)
        positive("collect.chunk_size", self.chunk_size)
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
        positive("quality.block_size", self.block_size)
        positive("quality.gain_k", self.gain_k)
        object.__setattr__(self, "gain_seeds", int_list("quality.gain_seeds", self.gain_seeds, minimum=0, example="[0, 1, 2]"))
