"""``analysis.decodability_target``: what the decodability analysis of a run decodes. ``auto``
residualises only when the label explains more than half of quality; ``quality`` and
``residualised`` force either (residualised, the label + length + slot baseline explains nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import ConfigError
from mechsel.experiment.analysis_settings import AnalysisSettings
from mechsel.experiment.decodability import decodability_of_run


def _inputs(label_weight: float, n: int = 60, d: int = 4):
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(n)]
    labels = np.arange(n) % 2
    n_tokens = rng.integers(5, 30, n).astype(float)
    quality = label_weight * labels + rng.normal(size=n)
    x = rng.normal(size=(n, 1, d)).astype(np.float32)
    reps = {"t": {"representations": {"example_ids": np.array(ids), "layers": np.array([0]), "full": x}}}
    stats = pd.DataFrame({"task": "t", "family": "moments", "example_id": ids, "n_tokens": n_tokens, "slot": np.zeros(n)})
    qual = pd.DataFrame({"task": "t", "example_id": ids, "quality": quality})
    examples = pd.DataFrame(
        {"task": "t", "subset": "candidate", "example_id": ids, "label": labels, "text": [f"word{i} text" for i in range(n)]}
    )
    return reps, stats, qual, examples, labels, n_tokens, quality


def _table(label_weight: float, target: str) -> pd.DataFrame:
    reps, stats, qual, examples, *_ = _inputs(label_weight)
    return decodability_of_run({}, reps, stats, qual, examples, n_boot=20, level=0.95, seed=0, target=target)  # type: ignore[arg-type]


def test_auto_residualises_only_when_the_label_explains_most_of_quality():
    strong, weak = _table(4.0, "auto"), _table(0.0, "auto")
    assert strong["label_share"].iloc[0] > 0.5 and set(strong["target"]) == {"quality | label, length, slot"}
    assert weak["label_share"].iloc[0] < 0.5 and set(weak["target"]) == {"quality"}


def test_quality_and_residualised_force_the_target():
    assert set(_table(4.0, "quality")["target"]) == {"quality"}
    forced = _table(0.0, "residualised")
    assert set(forced["target"]) == {"quality | label, length, slot"}
    # residualised on label, length and slot, the label + length + slot baseline has nothing left to explain
    base = forced[(forced["kind"] == "baseline") & (forced["baseline_name"] == "label + length + slot")]
    assert len(base) == 1 and float(np.asarray(base["r2"])[0]) <= 0.05


def test_the_setting_is_checked():
    assert AnalysisSettings().decodability_target == "auto"
    with pytest.raises(ConfigError, match="analysis.decodability_target"):
        AnalysisSettings(decodability_target="residual")  # type: ignore[arg-type]
