"""Helpers several test modules use (importable as ``shared_helpers`` from any test: pytest puts
``tests/`` on the path for ``tests/conftest.py``). Fixtures stay in the modules that use them and
call these."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@contextlib.contextmanager
def local_ray(import_dir: Path, num_cpus: int = 2) -> Iterator[Any]:
    """A private local Ray instance whose workers can import the test modules in ``import_dir``
    (it goes on their ``PYTHONPATH``, with ``tests/`` for this module), shut down on exit. Ray's memory monitor is off: it kills
    workers when the whole machine runs short of memory (other jobs on a shared machine), which
    would plant faults the tests do not control."""
    import ray

    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(import_dir), str(Path(__file__).resolve().parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "RAY_memory_monitor_refresh_ms": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


WORDS = ["fun", "dull", "great", "awful", "nice", "bad", "fine", "poor"]


def write_synthetic_task(folder: Path) -> dict:
    """A two-label task of three-word reviews (30 train, 10 test rows) written as JSON lines to
    ``folder``; returns its ``define`` mapping for a config."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 30), ("test", 10)):
        with open(folder / f"{split}.jsonl", "w") as fh:
            for _ in range(n):
                fh.write(json.dumps({"review": " ".join(rng.choice(WORDS, size=3)), "stars": ["bad", "good"][int(rng.integers(2))]}) + "\n")
    return {
        "files": {"train": str(folder / "train.jsonl"), "test": str(folder / "test.jsonl")},
        "input_fields": ["review"],
        "label_field": "stars",
        "label_names": ["bad", "good"],
        "verbalizers": ["B", "G"],
        "template": "R: {review}\nA:",
        "pool_split": "train",
        "test_split": "test",
    }


def pipeline_config(root: Path, out: str, **changes) -> dict:
    """The tiny pipeline's config (a ``tiny-random`` model, the synthetic task, 4 runs, 3 seeds),
    its output under ``root / out``; ``changes`` replace top-level sections."""
    cfg = {
        "model": {"name": "tiny-random"},
        "tasks": [
            {
                "name": "reviews",
                "define": write_synthetic_task(root / "data"),
                "n_candidates": 12,
                "dev_size": 3,
                "test_size": 6,
                "seed_pool_size": 9,
            }
        ],
        "collect": {"masks": ["full", "isolated"], "statistics": ["mean", "kurtosis"], "context_size": 3, "chunk_size": 2, "batch_size": 4},
        "selection": {
            "runs": [
                {"selector": "random"},
                {"selector": "activation", "choose_statistic": True},
                {"selector": "bm25"},
                {"selector": "margin"},
            ],
            "budgets": [2],
            "seeds": [0, 1, 2],
        },
        "analysis": {"n_boot": 30, "n_perm": 30, "n_extreme": 2, "samples_per_example": 20},
        "plots": {"formats": []},
        "progress": False,
        "output_dir": str(root / out),
    }
    cfg.update(changes)
    return cfg
