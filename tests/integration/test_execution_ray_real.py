"""The Ray engine on the embedded model: ``configs/quick.yaml`` (shrunk by ``--set``) under
``--set execution.engine=ray`` prints the same summary and computes the same tables as under
``local``, although the test kills one worker process during evaluation. The workers load the
embedded model by name themselves; both engines run one thread per process, so the numbers are
identical, not only equal to float32 rounding."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from shared_helpers import local_ray

from mechsel.cli import main
from mechsel.experiment import load_results
from mechsel.experiment.stages import evaluate as evaluate_module

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHRINK = [
    "tasks.0.n_candidates=8",
    "tasks.0.dev_size=4",
    "tasks.0.test_size=12",
    "tasks.0.seed_pool_size=6",
    "selection.budgets=[2]",
    "analysis.n_boot=100",
    "analysis.n_perm=100",
    "analysis.samples_per_example=200",
    "plots.formats=[]",
    "model.n_threads=1",
]
real_evaluation_unit = evaluate_module.evaluation_unit


def kill_once(res, p, unit):
    """An evaluation unit whose worker process is killed (SIGKILL) the first time any worker runs one."""
    marker = Path(res.config.output_dir).parent / "killed-a-worker"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return real_evaluation_unit(res, p, unit)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance whose workers can import this module (:func:`shared_helpers.local_ray`)."""
    with local_ray(HERE) as ray:
        yield ray


def _run(out: Path, extra: list[str]) -> str:
    args = ["run", str(REPO / "configs" / "quick.yaml"), "--output", str(out), "--quiet"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(args + [a for o in SHRINK + extra for a in ("--set", o)])
    assert status == 0, buffer.getvalue()
    return buffer.getvalue()


def test_quick_config_on_ray_prints_the_local_summary_with_a_worker_killed(tmp_path, ray_instance, monkeypatch):
    local = _run(tmp_path / "local", [])
    monkeypatch.setattr(evaluate_module, "evaluation_unit", kill_once)
    ray = _run(tmp_path / "ray", ["execution.engine=ray", "execution.workers=2"])
    assert (tmp_path / "killed-a-worker").exists()
    summary = (tmp_path / "local" / "results" / "summary.txt").read_text().strip()
    assert summary in local and summary in ray and summary == (tmp_path / "ray" / "results" / "summary.txt").read_text().strip()
    a, b = load_results(tmp_path / "local"), load_results(tmp_path / "ray")
    for name in ("statistics", "quality", "selections", "scores", "predictions", "baselines", "grid", "comparison"):
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
