"""The Ray engine on the tiny pipeline of ``test_experiment_pipeline``, on one local Ray instance
(2 CPUs): every table equals the local engine's, stages finished under one engine are cache hits
under the other, a unit that raises stops the run with its own error (one CLI line) and the rerun
resumes, and a worker killed during evaluation is restarted without changing a number.

The faults are planted by replacing a stage's unit function with one defined here; the workers
import it from this module (the fixture puts this folder on their ``PYTHONPATH``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shared_helpers import local_ray
from shared_helpers import pipeline_config as _pipeline_config

import mechsel.experiment
from mechsel.cli import main
from mechsel.errors import DataError
from mechsel.experiment import load_config, run_experiment
from mechsel.experiment.stages import collect as collect_module
from mechsel.experiment.stages import evaluate as evaluate_module
from mechsel.models import tiny_model

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
EXACT = ("selections", "scores", "predictions", "baselines", "examples", "summary", "comparison")
"""Tables compared exactly (selections, accuracies, predictions); the others to 1e-6."""
QUALITY = {"block_size": 5, "marginal_gain": True, "gain_k": 2, "gain_seeds": [0, 1]}
"""Uneven quality blocks (12 candidates) and the marginal gain, which the Ray engine splits by seed and block."""
real_collect_chunk = collect_module.collect_chunk
real_evaluation_unit = evaluate_module.evaluation_unit


def _config(root: Path, out: str) -> dict:
    return _pipeline_config(root, out, quality=QUALITY)


def failing_chunk(res, p, unit):
    """A collection unit that fails deterministically on one chunk."""
    if unit.mask == "isolated" and unit.start == 2:
        raise DataError("planted failure: chunk 2 under the isolated mask cannot be collected.")
    return real_collect_chunk(res, p, unit)


def kill_once(res, p, unit):
    """An evaluation unit whose worker process is killed (SIGKILL) the first time any worker runs one."""
    marker = Path(res.config.output_dir).parent / "killed-a-worker"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return real_evaluation_unit(res, p, unit)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_always(res, shared, unit):
    """A unit that kills its worker process every time."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module, its workers able to import this test module
    (:func:`shared_helpers.local_ray`)."""
    with local_ray(HERE) as ray:
        yield ray


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_ctx=256)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, model):
    """The local run, with torch on 1 thread like each Ray worker (``threads_per_worker=1``): the
    same thread count gives the same float32 kernels, so even the probabilities agree exactly.
    (Under another thread count they agree to float32 rounding; see the README's Scaling out.)"""
    import torch

    root = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return root, run_experiment(load_config(_config(root, "run")), model=model)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, model, ray_instance):
    """A Ray run that first stops on a failing collection unit (through the CLI, with
    ``--set execution.engine=ray``), then resumes: ``(root, result, exit status, stderr, error)``."""
    root = tmp_path_factory.mktemp("ray")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(_config(root, "run")))
    caught: dict[str, BaseException] = {}

    def run_with_model(config, **kwargs):
        try:
            return real_run(config, model=model, **kwargs)
        except BaseException as err:
            caught["error"] = err
            raise

    real_run = mechsel.experiment.run_experiment
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(stderr):
        mp.setattr(mechsel.experiment, "run_experiment", run_with_model)
        mp.setattr(collect_module, "collect_chunk", failing_chunk)
        status = main(["run", str(path), "--set", "execution.engine=ray", "--set", "execution.workers=2"])
    config = load_config(path, ["execution.engine=ray", "execution.workers=2"])
    result = run_experiment(config, model=model)
    return root, result, status, stderr.getvalue(), caught.get("error")


def test_every_table_equals_the_local_engines(local_run, ray_run):
    _, local = local_run
    _, ray, *_ = ray_run
    assert set(ray.tables) == set(local.tables)
    for name, frame in local.tables.items():
        if name == "verdict":
            assert ray.tables[name]["outcome"] == frame["outcome"] and ray.tables[name]["table"] == frame["table"]
        elif name in EXACT:
            pd.testing.assert_frame_equal(ray.tables[name], frame, check_exact=True)
        else:
            pd.testing.assert_frame_equal(ray.tables[name], frame, check_exact=False, rtol=0, atol=1e-6)
    assert len(ray.tables["scores"]) == 12 and ray.tables["statistics"]["mask"].nunique() == 2


def test_a_failing_unit_stops_the_run_with_its_own_error_and_the_rerun_resumes(ray_run):
    root, result, status, stderr, error = ray_run
    assert type(error) is DataError and "planted failure: chunk 2" in str(error)
    lines = stderr.strip().splitlines()
    assert status == 2 and lines[-1].startswith("mechsel: error: planted failure: chunk 2")
    assert "Traceback" not in stderr and "RayTaskError" not in stderr
    record = next(r for r in result.records if r.name == "collect/reviews")
    done = json.loads((root / "run" / record.path / "_done.json").read_text())
    assert done["resumed"]  # the provenance and the chunks that finished before the failure were kept


def test_stages_finished_under_one_engine_are_cache_hits_under_the_other(local_run, ray_run, model, monkeypatch):
    from mechsel.experiment.ray_executor import RayExecutor

    local_root, local = local_run
    ray_root, ray, *_ = ray_run
    monkeypatch.setattr(RayExecutor, "_workers", lambda self: pytest.fail("a fully cached run started Ray workers"))
    again = run_experiment(load_config(_config(local_root, "run"), ["execution.engine=ray"]), model=model)
    assert all(r.cached for r in again.records)
    back = run_experiment(load_config(_config(ray_root, "run")), model=model)  # a Ray run folder, engine local
    assert all(r.cached for r in back.records)
    pd.testing.assert_frame_equal(back.tables["scores"], local.tables["scores"])


def test_a_worker_killed_during_evaluation_is_restarted_without_changing_a_number(local_run, ray_instance, model, monkeypatch):
    local_root, local = local_run
    shutil.copytree(local_root / "run", local_root / "killed")  # every stage but evaluate stays cached
    shutil.rmtree(local_root / "killed" / "stages" / "evaluate")
    monkeypatch.setattr(evaluate_module, "evaluation_unit", kill_once)
    config = load_config(_config(local_root, "killed"), ["execution.engine=ray", "execution.workers=2"])
    result = run_experiment(config, model=model)
    assert (local_root / "killed-a-worker").exists()
    assert not next(r for r in result.records if r.name == "evaluate/reviews").cached
    for name in ("scores", "predictions", "baselines"):
        pd.testing.assert_frame_equal(result.tables[name], local.tables[name], check_exact=True)


def test_a_unit_that_kills_every_worker_stops_the_run_with_one_teaching_error(ray_instance, tmp_path):
    from mechsel.errors import WorkerError
    from mechsel.experiment.engine import Stage, StageContext
    from mechsel.experiment.ray_executor import RayExecutor

    config = load_config(_config(tmp_path, "run"), ["execution.engine=ray", "execution.workers=1", "execution.retries=0"])
    work = tmp_path / "stage" / "key.partial"
    work.mkdir(parents=True)
    with RayExecutor(config) as executor:
        ctx = StageContext(Stage("units", run=lambda ctx: {}), "key", work, {}, None, progress=False, executor=executor)
        with pytest.raises(
            WorkerError, match=r"unit 'doomed' was lost with its Ray worker .* execution.retries=0 .* run the same command again"
        ):
            ctx.map_units(kill_always, [("doomed", 0)], None)
