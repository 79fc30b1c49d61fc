"""What every per-task stage's parameters share: the task, the model that computes it, the prompt budget."""

from __future__ import annotations

from dataclasses import dataclass

from mechsel.experiment.config import ModelSettings

__all__ = ["ModelKey", "TaskStageParams"]


@dataclass(frozen=True)
class ModelKey:
    """The model settings that determine a stage's numbers (the thread count does not)."""

    name: str
    """TransformerLens model name."""
    weight_processing: str
    """``none`` or ``default`` (see :class:`~mechsel.experiment.config.ModelSettings`)."""
    dtype: str
    """Dtype the model runs in."""
    device: str | None
    """Device asked for (``None``: CUDA when available, else CPU)."""
    matmul_precision: str
    """Internal precision of float32 matrix products."""

    @classmethod
    def of(cls, settings: ModelSettings) -> ModelKey:
        """The key of ``settings``."""
        return cls(settings.name, settings.weight_processing, settings.dtype, settings.device, settings.matmul_precision)


@dataclass(frozen=True)
class TaskStageParams:
    """Settings every per-task stage that may run the model depends on."""

    task: str
    """The task's name (its settings are in the run's :class:`~mechsel.experiment.config.TaskSettings`)."""
    model: ModelKey
    """The model that computes the stage."""
    max_tokens: int | None
    """The task's prompt budget in tokens (``None``: the model's context)."""
