"""Experiments: one config → cached, resumable stages → result tables, figures and a verdict.

``run_experiment(load_config("configs/demo.yaml"))`` is what ``mechsel run`` does; see
:mod:`mechsel.experiment.pipeline` for the stages and :mod:`mechsel.experiment.results` for the
tables' columns.
"""

from mechsel.experiment.config import (
    AnalysisSettings,
    CollectSettings,
    ExecutionSettings,
    ExperimentConfig,
    ModelSettings,
    PlotSettings,
    QualitySettings,
    SAESettings,
    SelectionSettings,
    SelectorRun,
    TaskSettings,
)
from mechsel.experiment.demo import demo_config
from mechsel.experiment.engine import Stage, StageContext, run_stages
from mechsel.experiment.figures import FIGURE_FAMILIES, write_figures
from mechsel.experiment.loading import dump_config, load_config
from mechsel.experiment.pipeline import RunResult, build_stages, regenerate_figures, run_experiment
from mechsel.experiment.report import write_report
from mechsel.experiment.results import TABLES, load_results
from mechsel.serialize import apply_overrides, from_dict

__all__ = [
    "ExperimentConfig",
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
    "load_config",
    "from_dict",
    "apply_overrides",
    "dump_config",
    "demo_config",
    "Stage",
    "StageContext",
    "run_stages",
    "build_stages",
    "run_experiment",
    "RunResult",
    "regenerate_figures",
    "write_figures",
    "write_report",
    "FIGURE_FAMILIES",
    "TABLES",
    "load_results",
]
