"""``CollectConfig``: every choice that determines what :func:`mechsel.collect` computes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast, get_args

from mechsel.errors import ConfigError, did_you_mean
from mechsel.masks.strategies import MASKS, MaskName
from mechsel.stats.base import Reducer
from mechsel.stats.moments import DEFAULT_MOMENTS

__all__ = ["SummaryConfig", "CollectConfig", "PositionsName", "POSITIONS"]

PositionsName = Literal["all", "input", "last"]
"""``all``: the example's own text and label tokens; ``input``: its text tokens (no label);
``last``: the final token that ``all`` would select."""
POSITIONS: tuple[str, ...] = get_args(PositionsName)
StatisticSpec = str | Reducer


@dataclass(frozen=True)
class SummaryConfig:
    """Which activations are summarised, and how: the settings a one-off :class:`CollectConfig`
    and an experiment's ``collect`` section (:class:`mechsel.experiment.CollectSettings`, which
    adds its masks) share, validated here once."""

    _section: ClassVar[str] = ""
    """Prefix of the field names in error messages (``collect.`` in an experiment config)."""

    layers: Any = "all"
    """``"all"``, one layer index, or a sequence of them (negative indices count from the end)."""
    hook: str = "mlp_out"
    """Block hook to summarise: ``blocks.{L}.hook_{hook}`` (``"mlp_out"``, ``"resid_post"``,
    ``"attn_out"``, ...), or a dotted name inside the block such as ``"mlp.hook_post"``."""
    positions: PositionsName = "all"
    """Which of an example's tokens are summarised."""
    batch_size: int = 16
    """Sequences per forward pass (sequences are grouped by length and right-padded)."""
    statistics: Any = DEFAULT_MOMENTS
    """Statistic names (resolved through :data:`mechsel.stats.base.STATISTICS`) and/or
    :class:`~mechsel.stats.base.Reducer` instances (e.g. an SAE reducer)."""
    include_bos: bool = False
    """Also summarise the BOS position with every example (it carries massive activations)."""
    include_template: bool = False
    """Also summarise template and separator tokens inside the example's segment."""

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ConfigError(
                f"Unknown {self._section}positions {self.positions!r}.{did_you_mean(str(self.positions), POSITIONS)} "
                f"Valid choices: {', '.join(POSITIONS)} (all: text+label, input: text only, last: final token)."
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"{self._section}batch_size must be a positive integer, got {self.batch_size!r}.")
        if not isinstance(self.hook, str) or not self.hook:
            raise ConfigError(f"{self._section}hook must be a hook name such as 'mlp_out', got {self.hook!r}.")
        layers = self.layers
        if isinstance(layers, str):
            if layers != "all":
                raise ConfigError(f"layers must be 'all', an int or a sequence of ints, got {layers!r}.")
        elif isinstance(layers, int) and not isinstance(layers, bool):
            object.__setattr__(self, "layers", (int(layers),))
        else:
            try:
                items = tuple(cast(Iterable[Any], layers))
            except TypeError:
                raise ConfigError(f"layers must be 'all', an int or a sequence of ints, got {layers!r}.") from None
            if not items or not all(isinstance(x, int) and not isinstance(x, bool) for x in items):
                raise ConfigError(f"layers must be 'all', an int or a non-empty sequence of ints, got {layers!r}.")
            object.__setattr__(self, "layers", items)
        stats = self.statistics
        stats = (stats,) if isinstance(stats, str) or isinstance(stats, Reducer) else tuple(stats)
        if not stats:
            raise ConfigError("statistics is empty; ask for at least one, e.g. statistics=('mean', 'kurtosis').")
        for s in stats:
            if not isinstance(s, str) and not isinstance(s, Reducer):
                raise ConfigError(
                    f"statistics entries must be names or Reducer instances (with family, statistic_names() and reduce()), got {s!r}."
                )
        object.__setattr__(self, "statistics", stats)
        for flag in ("include_bos", "include_template"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{self._section}{flag} must be True or False, got {getattr(self, flag)!r}.")

    def summary(self) -> SummaryConfig:
        """Just the :class:`SummaryConfig` fields of this config (e.g. of a subclass)."""
        return SummaryConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SummaryConfig)})

    def with_mask(self, mask: MaskName, **changes: Any) -> CollectConfig:
        """The :class:`CollectConfig` that summarises like this one under ``mask`` (``changes``:
        other fields, e.g. ``statistics`` or ``progress``)."""
        summary = {f.name: getattr(self, f.name) for f in dataclasses.fields(SummaryConfig)}
        return CollectConfig(**{**summary, "mask": mask, **changes})

    @property
    def positions_label(self) -> str:
        """The positions setting as recorded in provenance (``"all"``, ``"input+template"``, ...)."""
        return self.positions + ("+template" if self.include_template else "")


@dataclass(frozen=True)
class CollectConfig(SummaryConfig):
    """Settings of one :func:`~mechsel.collection.collect` run (see that function for the story)."""

    mask: MaskName = "alone"
    """Attention-mask strategy (:mod:`mechsel.masks.strategies`); plain texts need ``"alone"``."""
    truncate: bool = False
    """Cut plain texts longer than the model context to ``n_ctx`` tokens instead of raising."""
    bos_token_id: Any = "auto"
    """BOS prepended to plain texts: ``"auto"`` (the tokenizer's), an id, or ``None`` (no BOS).
    Prompts keep their own BOS."""
    save_activations: Any = None
    """Folder to also write the selected raw activations to (safetensors shards + index.json)."""
    mean_vectors: bool = False
    """Also keep each row's mean activation vector over its summarised tokens at every layer
    (``StatsResult.vectors["mean"]``, float32 ``[n, layers, d]``), computed in the same pass:
    the representation a decodability probe reads (:mod:`mechsel.analysis.decodability`)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ConfigError(
                f"Unknown mask {self.mask!r}.{did_you_mean(str(self.mask), MASKS.names())} Valid masks: {', '.join(MASKS.names())}."
            )
        super().__post_init__()
        for flag in ("truncate", "progress", "mean_vectors"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}.")
        bos = self.bos_token_id
        if not (bos is None or bos == "auto" or (isinstance(bos, int) and not isinstance(bos, bool) and bos >= 0)):
            raise ConfigError(f"bos_token_id must be 'auto', a token id or None, got {bos!r}.")
        if self.save_activations is not None and not isinstance(self.save_activations, (str, os.PathLike)):
            raise ConfigError(f"save_activations must be a folder path or None, got {self.save_activations!r}.")
