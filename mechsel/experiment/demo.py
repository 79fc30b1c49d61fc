"""The configs of ``mechsel demo``: the embedded model on SST-2 and AG News (and ``--quick``).

They are plain dicts of :class:`~mechsel.experiment.ExperimentConfig` settings, kept in code so
an installed package needs no config files; ``configs/demo.yaml`` and ``configs/quick.yaml``
hold the same settings (a test keeps them equal).
"""

from __future__ import annotations

import copy
from typing import Any

from mechsel.experiment.config import ExperimentConfig
from mechsel.serialize import from_dict

__all__ = ["DEMO", "QUICK", "SAE_RUNS", "demo_config", "sae_changes"]

CLASSIC_SEEDS = 8
"""Seeds of the secondary comparisons (classic selectors; AG News): enough to see large effects."""
RETRIEVAL_SEEDS = 5
"""Seeds of the retrieval runs: each query gets its own prompt, so no prefix is shared and a run
costs several times a fixed set's (SST-2 only, to keep the demo inside its time)."""
FIRST_LOOK = 50
"""Paired seeds of random and the activation selector before the first look of the sequential design."""
MAX_SEEDS = 300
"""The most seeds an SST-2 gain line gets (looks at 50, 100, …, 300)."""
ANNOTATION_BUDGET = 16
"""Labels B of the annotate-then-retrieve runs (the selection pool is 48)."""

_RUNS: list[dict[str, Any]] = [
    {"selector": "random"},
    {"selector": "activation", "label": "activation (dev-chosen)", "choose_statistic": True},
    # Classic selectors, fixed protocol (B = k).
    {"selector": "fast_votek", "label": "vote-k (fast)", "n_seeds": CLASSIC_SEEDS},
    {"selector": "ideal", "n_seeds": CLASSIC_SEEDS},
    {"selector": "margin", "n_seeds": CLASSIC_SEEDS},
    {"selector": "neufs", "n_seeds": CLASSIC_SEEDS},
    # Similarity retrieval: over the whole labelled pool (B = pool), and annotate-then-retrieve
    # (B = 16 labels chosen by random / vote-k / IDEAL, then each query's k nearest of them).
    {"selector": "knn", "label": "kate (whole pool)", "n_seeds": RETRIEVAL_SEEDS, "tasks": ["sst2"]},
    {
        "selector": "knn",
        "label": "random → kate",
        "annotated": "random",
        "annotation_budget": ANNOTATION_BUDGET,
        "n_seeds": RETRIEVAL_SEEDS,
        "tasks": ["sst2"],
    },
    {
        "selector": "knn",
        "label": "vote-k → kate",
        "annotated": "vote-k (fast)",
        "annotation_budget": ANNOTATION_BUDGET,
        "n_seeds": RETRIEVAL_SEEDS,
        "tasks": ["sst2"],
    },
    {
        "selector": "knn",
        "label": "ideal → kate",
        "annotated": "ideal",
        "annotation_budget": ANNOTATION_BUDGET,
        "n_seeds": RETRIEVAL_SEEDS,
        "tasks": ["sst2"],
    },
]

DEMO: dict[str, Any] = {
    "name": "demo",
    "model": {"name": "google/gemma-3-270m", "weight_processing": "none", "dtype": "float32", "matmul_precision": "medium"},
    "tasks": [
        {"name": "sst2", "n_candidates": 200, "dev_size": 32, "test_size": 80, "seed_pool_size": 48},
        {"name": "ag_news", "n_candidates": 48, "dev_size": 24, "test_size": 48, "seed_pool_size": 40, "n_seeds": 5},
    ],
    "collect": {
        "masks": ["full", "isolated"],
        "layers": "all",
        "positions": "all",
        "statistics": ["mean", "variance", "skewness", "kurtosis", "max_abs"],
        "context_size": 4,
    },
    "selection": {
        "runs": _RUNS,
        "budgets": [4, 8],
        "seeds": list(range(FIRST_LOOK)),
        "retrieval_baseline": "random → kate",
        "sequential": {"enabled": True, "tasks": ["sst2"], "batch": 50, "max_seeds": MAX_SEEDS, "spending": 3.0},
    },
    "analysis": {"n_boot": 2000, "n_perm": 2000},
    "output_dir": "results/demo",
}
"""``mechsel demo``: powered where the question is decided, light elsewhere. SST-2 has 200
candidates (ρ intervals about ±0.14). Its gain lines (random against the activation selector at
k = 4 and 8, 80 test queries each) run a group-sequential design: 50 paired seeds, then 50 more at
a time to each line still undecided, up to 300, with O'Brien–Fleming-like alpha spending
(``spending: 3``) so that looking after every batch keeps the error at alpha; the power comes from
many cheap seeds, since the set-to-set spread is what limits it. The classic selectors run 8
seeds, the retrieval runs 5 (SST-2 only: per-query prompts share no prefix) and AG News 5, so
their lines carry larger minimum detectable effects. Float32 matmuls at ``medium`` after the
float32-class check (see :mod:`mechsel.models.precision`). Timing: ``benchmarks/results/demo_timing.txt``."""


QUICK_DROPS = ("vote-k → kate", "ideal → kate")
"""Runs the quick demo leaves out: two of its three annotate-then-retrieve runs (each query its own
prompt, so about half its evaluation time), keeping the protocol's baseline ``random → kate``."""

QUICK: dict[str, Any] = copy.deepcopy(DEMO)
QUICK.update(
    name="demo-quick",
    tasks=[{"name": "sst2", "n_candidates": 16, "dev_size": 8, "test_size": 48, "seed_pool_size": 12}],
    collect={**DEMO["collect"], "masks": ["full", "isolated"]},
    selection={
        "runs": [
            {k: v for k, v in r.items() if k not in ("n_seeds", "tasks")} | ({"annotation_budget": 6} if "annotated" in r else {})
            for r in _RUNS
            if r.get("label") not in QUICK_DROPS
        ],
        "budgets": [2, 4],
        "seeds": [0, 1, 2],
        "retrieval_baseline": "random → kate",
    },
    analysis={"n_boot": 500, "n_perm": 500},
    output_dir="results/demo-quick",
)
"""``mechsel demo --quick``: the same pipeline at toy sizes (every seed for every run, without
:data:`QUICK_DROPS`), inside five minutes cold on 2 cores, model conversion included."""


SAE_RUNS: list[dict[str, Any]] = [
    {"selector": "sae_coverage", "label": "sae coverage"},
    {"selector": "sae_diversity", "label": "sae diversity"},
    {
        "selector": "sae_topk",
        "label": "sae top-k (explained variance)",
        "params": {"statistic": "sae_explained_variance", "nan_policy": "exclude"},
    },
]
"""Selector runs added by ``mechsel demo --sae PATH`` (one SAE; with several, ``sae_topk`` needs a layer)."""


def sae_changes(base: ExperimentConfig, paths: list[str]) -> dict[str, Any]:
    """``sae`` and ``selection`` settings that add the SAE folders ``paths`` to ``base``.

    Each folder holds one SAE in sae-lens format (``mechsel train-sae`` writes them); its layer is
    read from the hook name in its ``cfg.json``. The SAE statistics join the correlation grid and
    :data:`SAE_RUNS` join the selector comparison.
    """
    import json
    import re
    from pathlib import Path

    from mechsel.errors import ConfigError
    from mechsel.serialize import to_dict

    saes: dict[int, str] = {}
    for raw in paths:
        cfg_file = Path(raw) / "cfg.json"
        if not cfg_file.is_file():
            raise ConfigError(
                f"--sae {raw}: no cfg.json there; pass a folder holding one SAE in sae-lens format "
                f"(e.g. .../layer_9 inside what `mechsel train-sae` printed)."
            )
        meta = json.loads(cfg_file.read_text())
        hook = meta.get("metadata", {}).get("hook_name") or meta.get("hook_name", "")
        match = re.fullmatch(r"blocks\.(\d+)\.hook_mlp_out", str(hook))
        if match is None:
            raise ConfigError(
                f"--sae {raw}: its hook is {hook!r}, but the demo collects blocks.<layer>.hook_mlp_out; train one with `mechsel train-sae`."
            )
        layer = int(match.group(1))
        if not (meta.get("metadata", {}).get("mechsel") or {}).get("reference"):
            raise ConfigError(
                f"--sae {raw}: this SAE carries no activation reference, so its explained variance against the "
                f"dataset mean (which the demo's sae_topk run ranks by) cannot be computed. Retrain it with "
                f"`mechsel train-sae` (which stores one), or attach one with mechsel.sae.reference.attach_reference "
                f"and save it again."
            )
        if layer in saes:
            raise ConfigError(f"--sae: two SAEs for layer {layer} ({saes[layer]} and {raw}); pass one per layer.")
        saes[layer] = str(Path(raw).resolve())
    runs = [dict(r) for r in SAE_RUNS]
    if len(base.selection.seeds) > CLASSIC_SEEDS:  # secondary comparisons stay light, like the classic selectors
        runs = [dict(r, n_seeds=CLASSIC_SEEDS) for r in runs]
    # the labelled seed set of sae_coverage must fit the smallest selection pool (12 under --quick)
    n_seed = min([32] + [t.effective_seed_pool_size for t in base.tasks])
    runs = [dict(r, params={**r.get("params", {}), "n_seed": n_seed}) if r["selector"] == "sae_coverage" else r for r in runs]
    if len(saes) > 1:
        runs = [dict(r, params={**r.get("params", {}), "layer": min(saes)}) for r in runs]
    selection = to_dict(base)["selection"]
    selection["runs"] = list(selection["runs"]) + runs
    return {"sae": {"saes": saes, "statistics": None}, "selection": selection}


def demo_config(quick: bool = False, **changes: Any) -> ExperimentConfig:
    """The demo's :class:`ExperimentConfig` (``quick`` for ``--quick``), with top-level ``changes``."""
    data = copy.deepcopy(QUICK if quick else DEMO)
    data.update(changes)
    return from_dict(ExperimentConfig, data)
