"""``mechsel plan``'s cost per evaluation counts every stage that wrote evaluations: the evaluate
stage and the sequential stage's added seeds (hand computation on a written manifest)."""

from __future__ import annotations

import json
import math

import pandas as pd

from mechsel.experiment.plan import _seconds_per_evaluation


def _run(tmp_path, stages):
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    return tmp_path


def test_sequential_seconds_and_rows_are_counted_together(tmp_path):
    scores = pd.DataFrame({"task": ["a"] * 40 + ["b"] * 10})
    run = _run(
        tmp_path,
        {
            "evaluate/a": {"cached": False, "seconds": 100.0},
            "sequential/a": {"cached": False, "seconds": 300.0},
            "evaluate/b": {"cached": False, "seconds": 25.0},
        },
    )
    cost = _seconds_per_evaluation(run, scores)
    assert cost["a"] == (100.0 + 300.0) / 40 and cost["b"] == 25.0 / 10


def test_a_cached_stage_gives_no_cost(tmp_path):
    scores = pd.DataFrame({"task": ["a"] * 40})
    run = _run(tmp_path, {"evaluate/a": {"cached": False, "seconds": 100.0}, "sequential/a": {"cached": True, "seconds": 0.1}})
    assert math.isnan(_seconds_per_evaluation(run, scores)["a"])
    assert math.isnan(_seconds_per_evaluation(_run(tmp_path, {}), scores)["a"])
