"""Lazily built shared objects of a run: the model, each task's splits and ICL runner.

Nothing is loaded until a stage asks, so a fully cached rerun never loads the model. Under the Ray
engine each worker holds its own :class:`Resources`, built from the run's config, for the whole run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from mechsel.errors import ConfigError
from mechsel.experiment.config import ExperimentConfig, TaskSettings

__all__ = ["Resources"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Resources:
    """The model and per-task objects shared by the stages of one run.

    Args:
        config: the experiment.
        model: an already loaded model to use instead of loading ``config.model`` (tests, notebooks).
        on_model_loaded: called with the model's provenance summary when it is first loaded.
    """

    def __init__(self, config: ExperimentConfig, *, model: Any = None, on_model_loaded: Callable[[dict], None] | None = None) -> None:
        self.config = config
        self._model = model
        self._on_model_loaded = on_model_loaded
        self._announced = False
        self._splits: dict[str, Any] = {}
        self._runners: dict[str, Any] = {}
        self._memo: dict[Hashable, Any] = {}

    @property
    def model(self) -> Any:
        """The model (loaded on first use)."""
        if self._model is None:
            import torch

            from mechsel.models import load_model

            m = self.config.model
            if m.n_threads is not None:
                torch.set_num_threads(m.n_threads)
            logger.info("Loading model %s (%s, weight processing %s)", m.name, m.dtype, m.weight_processing)
            self._model = load_model(m.name, device=m.device, dtype=m.dtype, weight_processing=m.weight_processing)
        if not self._announced and self._on_model_loaded is not None:
            info = getattr(self._model, "mechsel_info", None)
            self._on_model_loaded(
                {
                    "name": getattr(info, "name", str(self.config.model.name)),
                    "weight_hash": getattr(info, "weight_hash", ""),
                    "weight_processing": getattr(info, "weight_processing", ""),
                    "dtype": getattr(info, "dtype", ""),
                    "source": getattr(info, "source", ""),
                    "device": str(self._model.cfg.device),
                    "n_layers": int(self._model.cfg.n_layers),
                }
            )
        self._announced = True
        return self._model

    def task(self, name: str) -> TaskSettings:
        """The settings of task ``name``."""
        for t in self.config.tasks:
            if t.name == name:
                return t
        raise ConfigError(f"No task {name!r} in this experiment; tasks: {[t.name for t in self.config.tasks]}.")

    def splits(self, name: str) -> Any:
        """The task's candidate / dev / test subsets (:class:`mechsel.tasks.TaskSplits`)."""
        if name not in self._splits:
            from mechsel.errors import DataError
            from mechsel.experiment.datacheck import task_data_error
            from mechsel.tasks import make_splits

            t = self.task(name)
            split = t.split_config(self.config.split_seed)
            try:
                self._splits[name] = make_splits(t.task_config(), split, source=t.source, data_dir=t.data_dir)
            except (ConfigError, DataError) as err:
                raise task_data_error(t, err) from None
        return self._splits[name]

    def runner(self, name: str) -> Any:
        """The model bound to task ``name`` (:class:`mechsel.icl.ICLRunner`), prompts with BOS."""
        if name not in self._runners:
            from mechsel.icl import ICLRunner

            t = self.task(name)
            self._runners[name] = ICLRunner(self.model, t.task_config(), bos=True, max_tokens=t.max_tokens)
        return self._runners[name]

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` the first time ``key`` is asked for, the same object afterwards: what units of
        work derive from these resources and would otherwise rebuild each time (a task's packed
        prompts, the SAE reducers). The key must name everything the object depends on."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]
