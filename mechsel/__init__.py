"""mechsel: do a model's internals know which in-context demonstrations will help it?

The small public API, importable from the top level (submodules are loaded on first use, so
``import mechsel`` stays light)::

    import mechsel
    model = mechsel.load_model()                      # embedded Gemma 3 270M, offline
    stats = mechsel.collect(model, ["a fine film"], mask="alone")
    pool = mechsel.Pool.from_texts(texts, statistics=stats.to_wide())
    picks = mechsel.get_selector("activation", statistic="kurtosis").select(pool, 4, seed=0)

Areas: :mod:`mechsel.models` (loading), :mod:`mechsel.masks` (attention-mask strategies),
:mod:`mechsel.collect` / :mod:`mechsel.stats` (streaming statistics), :mod:`mechsel.tasks` and
:mod:`mechsel.icl` (tasks, scoring, quality, evaluation), :mod:`mechsel.selectors`,
:mod:`mechsel.sae`, :mod:`mechsel.analysis`, :mod:`mechsel.plots`, :mod:`mechsel.experiment`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # models
    "load_model": "mechsel.models",
    "tiny_model": "mechsel.models",
    "model_provenance": "mechsel.models",
    # masks and statistics
    "MASK_NAMES": "mechsel.masks",
    "get_mask": "mechsel.masks",
    "collect": "mechsel.collect",
    "CollectConfig": "mechsel.collect",
    "StatsResult": "mechsel.stats",
    "STATISTICS": "mechsel.stats",
    # tasks and ICL
    "get_task": "mechsel.tasks",
    "task_names": "mechsel.tasks",
    "TaskConfig": "mechsel.tasks",
    "SplitConfig": "mechsel.tasks",
    "make_splits": "mechsel.tasks",
    "ICLRunner": "mechsel.icl",
    "evaluate": "mechsel.icl",
    "quality_table": "mechsel.icl",
    # selectors and embeddings
    "Pool": "mechsel.selectors",
    "Queries": "mechsel.selectors",
    "Selection": "mechsel.selectors",
    "SELECTORS": "mechsel.selectors",
    "get_selector": "mechsel.selectors",
    "selector_names": "mechsel.selectors",
    "embed_texts": "mechsel.embeddings",
    # SAEs
    "load_sae": "mechsel.sae.loading",
    "train_sae": "mechsel.sae.training",
    "SAETrainConfig": "mechsel.sae.config",
    "collect_sae": "mechsel.sae.statistics",
    # experiments
    "ExperimentConfig": "mechsel.experiment",
    "load_config": "mechsel.experiment",
    "demo_config": "mechsel.experiment",
    "run_experiment": "mechsel.experiment",
    "load_results": "mechsel.experiment",
    "regenerate_figures": "mechsel.experiment",
    # errors and provenance
    "MechselError": "mechsel.errors",
    "ConfigError": "mechsel.errors",
    "DataError": "mechsel.errors",
    "ProvenanceMismatchError": "mechsel.errors",
    "Provenance": "mechsel.provenance",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mechsel' has no attribute {name!r}; the public names are listed in mechsel.__all__.")
    package = importlib.import_module(module)
    # ``collect`` is also a subpackage: keep the (callable) package bound, so that both
    # ``mechsel.collect(model, texts)`` and ``mechsel.collect.plan`` work in any import order.
    value = package if module == f"mechsel.{name}" else getattr(package, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
