"""The configs of ``mechsel demo``: the embedded model on SST-2 and AG News (and ``--quick``).

They are plain dicts of :class:`~mechsel.experiment.ExperimentConfig` settings, kept in code so
an installed package needs no config files; ``configs/demo.yaml`` and ``configs/quick.yaml``
hold the same settings (a test keeps them equal).
"""

from __future__ import annotations

import copy
from typing import Any

from mechsel.experiment.config import ExperimentConfig
from mechsel.experiment.loading import from_dict

__all__ = ["DEMO", "QUICK", "demo_config"]

_RUNS: list[dict[str, Any]] = [
    {"selector": "random"},
    {"selector": "activation", "label": "activation (dev-chosen)", "choose_statistic": True},
    {"selector": "knn", "label": "kate"},
    {"selector": "fast_votek", "label": "vote-k (fast)"},
    {"selector": "ideal"},
    {"selector": "margin"},
    {"selector": "neufs"},
]

DEMO: dict[str, Any] = {
    "name": "demo",
    "model": {"name": "google/gemma-3-270m", "weight_processing": "none", "dtype": "float32"},
    "tasks": [
        {"name": "sst2", "n_candidates": 64, "dev_size": 32, "test_size": 300, "selection_pool": 48},
        {"name": "ag_news", "n_candidates": 48, "dev_size": 24, "test_size": 300, "selection_pool": 40},
    ],
    "collect": {"masks": ["full", "isolated"], "layers": "all", "positions": "all",
                "statistics": ["mean", "variance", "skewness", "kurtosis", "max_abs"], "context_size": 4},
    "selection": {"runs": _RUNS, "budgets": [4, 8], "seeds": [0, 1, 2, 3, 4]},
    "analysis": {"n_boot": 2000, "n_perm": 2000},
    "output_dir": "results/demo",
}
"""``mechsel demo``: every required part at the issue's minimum sizes (5 seeds, 300 test queries per
task). Extrapolated to ~95 minutes cold on 2 CPU cores (about twice the 45-minute target; almost all
of it ICL evaluation): see ``benchmarks/results/demo_timing.txt``. Seconds when cached."""

QUICK: dict[str, Any] = copy.deepcopy(DEMO)
QUICK.update(
    name="demo-quick",
    tasks=[{"name": "sst2", "n_candidates": 16, "dev_size": 8, "test_size": 48, "selection_pool": 12}],
    collect={**DEMO["collect"], "masks": ["full", "isolated"]},
    selection={"runs": _RUNS, "budgets": [2, 4], "seeds": [0, 1, 2]},
    analysis={"n_boot": 500, "n_perm": 500},
    output_dir="results/demo-quick",
)
"""``mechsel demo --quick``: the same pipeline at toy sizes (2 min 45 s cold on 2 CPU cores, 3 s cached)."""


def demo_config(quick: bool = False, **changes: Any) -> ExperimentConfig:
    """The demo's :class:`ExperimentConfig` (``quick`` for ``--quick``), with top-level ``changes``."""
    data = copy.deepcopy(QUICK if quick else DEMO)
    data.update(changes)
    return from_dict(ExperimentConfig, data)
