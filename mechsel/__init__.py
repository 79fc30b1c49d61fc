"""mechsel: do a model's internals know which in-context demonstrations will help it?

The small public API, importable from the top level. Each public name is spelled once, in the
``if TYPE_CHECKING:`` block below (``from mechsel.models import load_model as load_model``), which
is what IDEs and type checkers read. At run time nothing there is imported: the block is read from
this file's source (:func:`_read_exports`) into :data:`_EXPORTS` and :data:`__all__`, and each name
is imported on first use, so ``import mechsel`` stays light::

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


def _read_exports() -> dict[str, str]:
    """``{name: module}`` of every import in this file's ``if TYPE_CHECKING:`` block (the one
    place the public names are spelled), in the block's order."""
    import ast

    with open(__file__, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), __file__)
    exports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                if not isinstance(imp, ast.ImportFrom) or not imp.module or imp.level:
                    raise ImportError(
                        f"{__file__}:{imp.lineno}: the TYPE_CHECKING block may only hold `from mechsel.x import name as name` lines."
                    )
                exports.update((alias.asname or alias.name, imp.module) for alias in imp.names)
    return exports


_EXPORTS: dict[str, str] = _read_exports()
"""The lazy public names and the module each is imported from (read from the block below)."""

__all__ = ["__version__", *_EXPORTS]  # pyright: ignore[reportUnsupportedDunderAll]
"""The public names: :data:`__version__` and those of the ``if TYPE_CHECKING:`` block."""

if TYPE_CHECKING:  # the public names, each spelled once (read at run time by _read_exports)
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
    from mechsel.experiment.sae_glue import train_sae as train_sae
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
