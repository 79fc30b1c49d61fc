"""``SAETrainConfig``: every choice of an SAE training run (Python, notebooks and ``mechsel train-sae``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from mechsel.errors import ConfigError

__all__ = ["SAETrainConfig", "Architecture", "DataFormat", "TEXT_DATASETS"]

Architecture = Literal["topk", "standard"]
"""``topk``: ReLU of the k largest pre-activations (sae-lens ``TopKTrainingSAE``; trained with
:class:`~mechsel.sae.sparse_topk.SparseTopKTrainingSAE`, the same module with a sparse step);
``standard``: ReLU with an L1 penalty (sae-lens ``StandardTrainingSAE``, dense step)."""

DataFormat = Literal["demonstrations", "plain"]
"""``demonstrations``: packed demonstration prompts of tasks, read at the tokens the statistics
read (:mod:`mechsel.sae.demonstrations`); ``plain``: BOS + each text."""

TEXT_DATASETS = {"sst2": "sentence", "ag_news": "text", "rte": "sentence1", "e2e_nlg": "human_reference"}
"""Datasets of the shared data folder usable as training text, and the field holding the text."""


def _is_text_file(spec: str) -> bool:
    """A ``datasets`` entry naming a local file: ``*.txt``, ``*.jsonl`` or ``*.jsonl:<field>``."""
    path = spec.rsplit(":", 1)[0] if ".jsonl:" in spec else spec
    return path.endswith((".txt", ".jsonl"))


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class SAETrainConfig:
    """How to train one SAE per layer on ``blocks.{L}.hook_{hook}`` of a model.

    The defaults are the full-size run: one layer, ``d_sae=4096``, TopK with ``k=32``, 500k
    training tokens of SST-2 and AG News demonstration segments (disjoint from the demo's
    examples), 20k held-out tokens, in steps of 256 tokens. On Gemma 3 270M layer 9 that reaches
    explained variance 0.885 on held-out demonstration segments at L0 32 and recovers 0.815 of
    the CE loss (``benchmarks/sae.py``, 2026-12-01); on plain text, steps of 1024 tokens (4× fewer
    steps for the same tokens) reached ~0.86 with several times as many dead latents.
    """

    layers: tuple[int, ...] = (5,)
    """Layers to train an SAE for (one SAE each, trained together on one activation stream). Layer 5
    is the earliest Gemma 3 270M layer with a Gemma Scope 2 ``mlp_out`` SAE (for comparison online)."""
    hook: str = "mlp_out"
    """Block hook read: ``blocks.{L}.hook_{hook}``."""
    architecture: Architecture = "topk"
    """SAE architecture (see :data:`Architecture`)."""
    d_sae: int = 4096
    """Number of latents."""
    k: int = 32
    """Active latents per token (``topk`` only)."""
    l1_coefficient: float = 5.0
    """Sparsity penalty on the (decoder-norm weighted) latent activations (``standard`` only)."""
    n_train_tokens: int = 500_000
    """Training activations (tokens, BOS excluded); each is used once. Rounded up to whole steps
    (:attr:`n_steps` × ``batch_size`` tokens), so at least this many are trained on."""
    n_eval_tokens: int = 20_000
    """Held-out activations (from held-out texts) for the reported metrics."""
    batch_size: int = 256
    """Tokens per SAE optimiser step. With a fixed token budget, smaller steps mean more of them:
    256 gives ~2000 steps for 500k tokens, which trains better than 1024 at little extra cost."""
    buffer_tokens: int = 65_536
    """Activations held in the shuffling buffer (sae-lens ``mixing_buffer``, half kept for mixing)."""
    lr: float = 1e-3
    """Adam learning rate."""
    lr_warm_up_steps: int = 20
    """Linear warm-up steps."""
    lr_decay_fraction: float = 0.2
    """Fraction of the steps, at the end, over which the learning rate decays linearly to zero."""
    dead_feature_window: int = 100
    """Steps without firing after which a latent counts as dead (and gets the TopK auxiliary loss);
    100 steps of 256 tokens is ~26k tokens. On Gemma 3 270M layer 9, 100 left ~8% of 4096 latents
    dead after 500k tokens where 200 left ~13%, at the same explained variance."""
    aux_loss_coefficient: float = 1.0 / 32
    """Weight of the TopK auxiliary loss that revives dead latents."""
    model_batch_tokens: int = 4096
    """Token positions (padding included) per model forward pass while generating activations."""
    context_size: int = 128
    """Tokens per text, BOS included; longer texts are cut."""
    datasets: tuple[str, ...] = ("sst2", "ag_news")
    """Training data. With ``data_format: demonstrations``: registered task names (their train
    split). With ``plain`` (ignored when texts are passed): shared-data dataset names (their train
    split, see :data:`TEXT_DATASETS`) and/or local files: ``*.txt`` (one text per line),
    ``*.jsonl`` (the ``text`` field of each line) or ``*.jsonl:<field>``."""
    data_format: DataFormat = "demonstrations"
    """``demonstrations`` (default): the tasks' examples as demonstration segments (template, text
    and label word, ``demos_per_prompt`` to a prompt after one BOS), activations taken at exactly
    the tokens the statistics summarise (text and label tokens; BOS and template excluded; under
    ``mask``). ``plain``: BOS + each text, every token but BOS."""
    exclude: tuple[str, ...] = ("demo", "quick")
    """Experiment configs whose candidate, dev and test examples are left out of the training data
    (``demo``, ``quick`` or YAML paths; compared by normalised text). The check and its counts are
    recorded in the SAE's metadata, and the texts' hashes are saved next to it so an experiment can
    verify its own examples were never trained on."""
    demos_per_prompt: int = 4
    """Demonstrations per training prompt (``demonstrations``); the experiment's
    ``collect.context_size`` packs candidates the same way."""
    mask: str = "full"
    """Attention mask of the training prompts (``demonstrations``), one of the experiment's masks."""
    n_loss_tokens: int = 5_000
    """Held-out tokens (at least) on which the spliced-in loss is measured ("CE loss recovered":
    three full forward passes of those prompts); 0 to skip."""
    data_dir: str | None = None
    """Data folder override (default :func:`mechsel.paths.data_dir`)."""
    seed: int = 0
    """Seeds the text shuffle and held-out split, SAE initialisation and buffer shuffling."""
    name: str | None = None
    """Run folder name under ``<cache>/saes/`` (default: built from model, hook, architecture, size, seed)."""
    output_dir: str | None = None
    """Where to write the run folder instead of ``<cache>/saes/<name>``."""
    device: str | None = None
    """Device for the SAE (default: the model's)."""
    progress: bool = True
    """Show tqdm progress bars."""

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, int) else tuple(self.layers)
        if not layers or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in layers):
            raise ConfigError(f"layers must be one or more non-negative layer indices, got {self.layers!r}.")
        if len(set(layers)) != len(layers):
            raise ConfigError(f"layers holds duplicates: {layers}; list each layer once.")
        object.__setattr__(self, "layers", tuple(sorted(layers)))
        if self.architecture not in get_args(Architecture):
            raise ConfigError(f"architecture must be one of {get_args(Architecture)}, got {self.architecture!r}.")
        for name in (
            "d_sae",
            "k",
            "n_train_tokens",
            "n_eval_tokens",
            "batch_size",
            "buffer_tokens",
            "dead_feature_window",
            "model_batch_tokens",
            "context_size",
        ):
            _positive_int(name, getattr(self, name))
        if self.lr_warm_up_steps < 0 or isinstance(self.lr_warm_up_steps, bool):
            raise ConfigError(f"lr_warm_up_steps must be >= 0, got {self.lr_warm_up_steps!r}.")
        if self.architecture == "topk" and self.k > self.d_sae:
            raise ConfigError(f"k={self.k} exceeds d_sae={self.d_sae}; choose k well below d_sae (e.g. 32).")
        if self.buffer_tokens < 2 * self.batch_size:
            raise ConfigError(
                f"buffer_tokens={self.buffer_tokens} must hold at least two batches ({2 * self.batch_size}); "
                f"raise it (shuffling quality grows with the buffer)."
            )
        if self.n_train_tokens < self.batch_size:
            raise ConfigError(f"n_train_tokens={self.n_train_tokens} is less than one batch ({self.batch_size}).")
        if self.context_size < 2:
            raise ConfigError("context_size must be at least 2 (BOS and one token).")
        if not 0 <= self.lr_decay_fraction < 1:
            raise ConfigError(f"lr_decay_fraction must be in [0, 1), got {self.lr_decay_fraction!r}.")
        for name in ("lr", "l1_coefficient", "aux_loss_coefficient"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (name == "lr" and value == 0):
                raise ConfigError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {value!r}.")
        datasets = (self.datasets,) if isinstance(self.datasets, str) else tuple(self.datasets)
        if self.data_format not in get_args(DataFormat):
            raise ConfigError(f"data_format must be one of {get_args(DataFormat)}, got {self.data_format!r}.")
        if self.data_format == "demonstrations":
            from mechsel.tasks import task_names

            unknown = [d for d in datasets if d not in task_names()]
            if unknown or not datasets:
                raise ConfigError(
                    f"datasets={datasets!r}: with data_format 'demonstrations' each entry is a task name, and "
                    f"{unknown or datasets} is not one (tasks: {', '.join(task_names())}). For text files use data_format: plain."
                )
            from mechsel.masks.strategies import MASKS

            if self.mask not in MASKS:
                raise ConfigError(f"mask must be one of {', '.join(MASKS.names())}, got {self.mask!r}.")
            _positive_int("demos_per_prompt", self.demos_per_prompt)
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        if not all(isinstance(e, str) and e for e in exclude):
            raise ConfigError(f"exclude must list experiment configs ('demo', 'quick' or YAML paths), got {self.exclude!r}.")
        object.__setattr__(self, "exclude", exclude)
        if isinstance(self.n_loss_tokens, bool) or not isinstance(self.n_loss_tokens, int) or self.n_loss_tokens < 0:
            raise ConfigError(f"n_loss_tokens must be a non-negative integer, got {self.n_loss_tokens!r}.")
        unknown = [d for d in datasets if not isinstance(d, str) or (d not in TEXT_DATASETS and not _is_text_file(d))]
        if self.data_format == "plain" and (unknown or not datasets):
            raise ConfigError(
                f"datasets={datasets!r} names unknown text dataset(s) {unknown or datasets}. Choose from "
                f"{sorted(TEXT_DATASETS)} (shared data folder), give a text file ('texts.txt': one text per line; "
                f"'rows.jsonl' or 'rows.jsonl:field': the 'text' or named field of each JSON line), "
                f"or pass your own texts to train_sae(model, config, texts=...)."
            )
        object.__setattr__(self, "datasets", datasets)
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"name must be a plain folder name, got {self.name!r}.")

    @property
    def n_steps(self) -> int:
        """Optimiser steps per SAE: enough whole batches to cover ``n_train_tokens``."""
        return -(-self.n_train_tokens // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (:func:`mechsel.serialize.to_dict`)."""
        from mechsel.serialize import to_dict

        return to_dict(self)
