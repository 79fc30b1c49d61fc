"""mechsel: do a model's internals know which in-context demonstrations will help it?

The small public API, importable from the top level. At run time each name is imported on first
use, so ``import mechsel`` stays light; the ``if TYPE_CHECKING:`` block below names the same
imports for IDEs and type checkers (a unit test keeps the two in step)::

    import mechsel
    model = mechsel.load_model()                      # embedded Gemma 3 270M, offline
    stats = mechsel.collect(model, ["a fine film"], mask="alone")
    pool = mechsel.Pool.from_texts(texts, statistics=stats.to_wide())
    picks = mechsel.get_selector("activation", statistic="kurtosis").select(pool, 4, seed=0)

Areas: :mod:`mechsel.models` (loading), :mod:`mechsel.masks` (attention-mask strategies),
:mod:`mechsel.collection` / :mod:`mechsel.stats` (streaming statistics), :mod:`mechsel.tasks` and
:mod:`mechsel.icl` (tasks, scoring, quality, evaluation), :mod:`mechsel.selectors`,
:mod:`mechsel.sae`, :mod:`mechsel.heads` (induction and function-vector heads),
:mod:`mechsel.attribution` (which demonstration the answer used), :mod:`mechsel.analysis`,
:mod:`mechsel.plots`, :mod:`mechsel.experiment`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # models
    "load_model": "mechsel.models",
    "tiny_model": "mechsel.models",
    "model_provenance": "mechsel.models",
    # masks and statistics
    "MASK_NAMES": "mechsel.masks",
    "get_mask": "mechsel.masks",
    "collect": "mechsel.collection",
    "CollectConfig": "mechsel.collection",
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
    "collect_reference": "mechsel.sae.reference",
    "spliced_loss": "mechsel.sae.splice",
    "causal_test": "mechsel.sae.causal",
    "CausalTestConfig": "mechsel.sae.causal",
    # mechanisms: heads and per-demonstration attribution
    "induction_scores": "mechsel.heads",
    "function_vector_scores": "mechsel.heads",
    "attribute_demonstrations": "mechsel.attribution",
    "attribution_view": "mechsel.attribution",
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

__all__ = [
    "__version__",
    "load_model",
    "tiny_model",
    "model_provenance",
    "MASK_NAMES",
    "get_mask",
    "collect",
    "CollectConfig",
    "StatsResult",
    "STATISTICS",
    "get_task",
    "task_names",
    "TaskConfig",
    "SplitConfig",
    "make_splits",
    "ICLRunner",
    "evaluate",
    "quality_table",
    "Pool",
    "Queries",
    "Selection",
    "SELECTORS",
    "get_selector",
    "selector_names",
    "embed_texts",
    "load_sae",
    "train_sae",
    "SAETrainConfig",
    "collect_sae",
    "collect_reference",
    "spliced_loss",
    "causal_test",
    "CausalTestConfig",
    "induction_scores",
    "function_vector_scores",
    "attribute_demonstrations",
    "attribution_view",
    "ExperimentConfig",
    "load_config",
    "demo_config",
    "run_experiment",
    "load_results",
    "regenerate_figures",
    "MechselError",
    "ConfigError",
    "DataError",
    "ProvenanceMismatchError",
    "Provenance",
]
"""The public names (the same as :data:`_EXPORTS`; a unit test keeps them in step)."""

if TYPE_CHECKING:  # the same names, visible to IDEs, type checkers and import-graph tools
    from mechsel.attribution import attribute_demonstrations as attribute_demonstrations
    from mechsel.attribution import attribution_view as attribution_view
    from mechsel.collection import CollectConfig as CollectConfig
    from mechsel.collection import collect as collect
    from mechsel.embeddings import embed_texts as embed_texts
    from mechsel.errors import ConfigError as ConfigError
    from mechsel.errors import DataError as DataError
    from mechsel.errors import MechselError as MechselError
    from mechsel.errors import ProvenanceMismatchError as ProvenanceMismatchError
    from mechsel.experiment import ExperimentConfig as ExperimentConfig
    from mechsel.experiment import demo_config as demo_config
    from mechsel.experiment import load_config as load_config
    from mechsel.experiment import load_results as load_results
    from mechsel.experiment import regenerate_figures as regenerate_figures
    from mechsel.experiment import run_experiment as run_experiment
    from mechsel.heads import function_vector_scores as function_vector_scores
    from mechsel.heads import induction_scores as induction_scores
    from mechsel.icl import ICLRunner as ICLRunner
    from mechsel.icl import evaluate as evaluate
    from mechsel.icl import quality_table as quality_table
    from mechsel.masks import MASK_NAMES as MASK_NAMES
    from mechsel.masks import get_mask as get_mask
    from mechsel.models import load_model as load_model
    from mechsel.models import model_provenance as model_provenance
    from mechsel.models import tiny_model as tiny_model
    from mechsel.provenance import Provenance as Provenance
    from mechsel.sae.causal import CausalTestConfig as CausalTestConfig
    from mechsel.sae.causal import causal_test as causal_test
    from mechsel.sae.config import SAETrainConfig as SAETrainConfig
    from mechsel.sae.loading import load_sae as load_sae
    from mechsel.sae.reference import collect_reference as collect_reference
    from mechsel.sae.splice import spliced_loss as spliced_loss
    from mechsel.sae.statistics import collect_sae as collect_sae
    from mechsel.sae.training import train_sae as train_sae
    from mechsel.selectors import SELECTORS as SELECTORS
    from mechsel.selectors import Pool as Pool
    from mechsel.selectors import Queries as Queries
    from mechsel.selectors import Selection as Selection
    from mechsel.selectors import get_selector as get_selector
    from mechsel.selectors import selector_names as selector_names
    from mechsel.stats import STATISTICS as STATISTICS
    from mechsel.stats import StatsResult as StatsResult
    from mechsel.tasks import SplitConfig as SplitConfig
    from mechsel.tasks import TaskConfig as TaskConfig
    from mechsel.tasks import get_task as get_task
    from mechsel.tasks import make_splits as make_splits
    from mechsel.tasks import task_names as task_names


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mechsel' has no attribute {name!r}; the public names are listed in mechsel.__all__.")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
