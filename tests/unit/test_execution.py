"""The ``execution:`` section and the local executor, without Ray: settings validate and stay out
of the run's identity, ``map_units`` is the checkpoint loop (stored forms, duplicates, resume), the
local path never imports Ray, and what Ray workers rely on (a chunk's provenance without a
forward pass, one conversion of the embedded model per machine, the worker count that fits)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import ConfigError
from mechsel.experiment import demo_config, load_config
from mechsel.experiment.engine import MISSING, Stage, StageContext
from mechsel.experiment.execution import LocalExecutor, make_executor
from mechsel.serialize import to_dict

REPO = Path(__file__).resolve().parents[2]


def _ctx(root: Path) -> StageContext:
    """A stage context whose checkpoints go to ``root/units/key.partial`` (damaged files to ``root/units/.corrupt``)."""
    work = root / "units" / "key.partial"
    work.mkdir(parents=True, exist_ok=True)
    return StageContext(Stage("units", run=lambda ctx: {}), "key", work, {}, resources="the resources", progress=False)


def square(resources, shared, unit):
    """A unit function: records its call in ``shared`` and returns a frame, an array or a dict."""
    shared.append(unit)
    assert resources == "the resources"
    if unit == 0:
        return pd.DataFrame({"x": [1.5, 2.5]})
    if unit == 1:
        return np.arange(3.0)
    return {"unit": unit, "square": unit * unit}


def test_execution_settings_validate_and_stay_out_of_the_identity():
    base = to_dict(demo_config(quick=True))
    ray = load_config(base, ["execution.engine=ray", "execution.workers=4", "execution.gpus_per_worker=1"])
    assert ray.execution.engine == "ray" and ray.execution.gpus_per_worker == 1.0
    assert ray.identity() == load_config(base).identity() and "execution" not in ray.identity()
    assert load_config(base, ["execution.address=auto"]).execution.address == "auto"
    assert load_config(base, ["execution.address=10.0.0.1:6379"]).execution.address == "10.0.0.1:6379"
    with pytest.raises(ConfigError, match="Did you mean 'ray'"):
        load_config(base, ["execution.engine=rya"])
    with pytest.raises(ConfigError, match="execution.address must be empty .* 'auto' .* got 'the cluster'"):
        load_config(base, ["execution.address=the cluster"])
    with pytest.raises(ConfigError, match="gpus_per_worker must be a number ≥ 0"):
        load_config(base, ["execution.gpus_per_worker=-1"])
    with pytest.raises(ConfigError, match="Did you mean 'workers'"):
        load_config(base, ["execution.workerz=3"])


def test_map_units_is_the_checkpoint_loop_with_stored_forms_and_resume(tmp_path):
    ctx = _ctx(tmp_path)
    assert isinstance(ctx.executor, LocalExecutor) and ctx.stored("u-2") is MISSING
    calls: list[int] = []
    units = [("u-0", 0), ("u-1", 1), ("u-2", 2), ("u-2", 2)]  # a repeated name is computed once
    out = ctx.map_units(square, units, calls)
    assert calls == [0, 1, 2]
    pd.testing.assert_frame_equal(out[0], pd.DataFrame({"x": [1.5, 2.5]}))
    np.testing.assert_array_equal(out[1], np.arange(3.0))
    assert out[2] == out[3] == {"unit": 2, "square": 4}
    assert ctx.stored("u-2") == {"unit": 2, "square": 4}
    again: list[int] = []
    (ctx.work_dir / "u-1.npy").write_bytes(b"damaged")  # no longer matches its done-marker
    assert len(_ctx(tmp_path).map_units(square, units, again)) == 4
    assert again == [1]  # finished units are loaded; the damaged one is computed again
    assert list((tmp_path / "units" / ".corrupt").rglob("u-1.npy"))


def test_the_local_engine_never_imports_ray():
    code = (
        "import sys, mechsel, mechsel.cli, mechsel.experiment\n"
        "from mechsel.experiment import demo_config\n"
        "from mechsel.experiment.execution import make_executor\n"
        "assert type(make_executor(demo_config(quick=True))).__name__ == 'LocalExecutor'\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_make_executor_picks_the_engine():
    from mechsel.experiment.ray_executor import RayExecutor

    config = demo_config(quick=True)
    assert type(make_executor(config)) is LocalExecutor
    ray = make_executor(load_config(to_dict(config), ["execution.engine=ray", "execution.threads_per_worker=2"]))
    assert isinstance(ray, RayExecutor) and ray.remote and ray._config.model.n_threads == 2
    ray.close()  # nothing started: nothing to do


def test_the_worker_count_fits_the_cluster(caplog):
    from mechsel.experiment.ray_executor import RayExecutor

    base = to_dict(demo_config(quick=True))

    def fit(overrides, resources):
        return RayExecutor(load_config(base, overrides))._fitting_workers(resources)

    assert fit([], {"CPU": 16.0}) == 16
    assert fit(["execution.threads_per_worker=4"], {"CPU": 16.0}) == 4
    assert fit(["execution.gpus_per_worker=0.5"], {"CPU": 16.0, "GPU": 1.0}) == 2
    assert fit(["execution.workers=3"], {"CPU": 16.0}) == 3
    assert fit(["execution.workers=8"], {"CPU": 2.0}) == 2 and "starting 2" in caplog.text
    with pytest.raises(ConfigError, match="not enough for one worker"):
        fit(["execution.gpus_per_worker=1"], {"CPU": 16.0})


def test_a_chunks_provenance_is_what_collecting_it_records():
    from mechsel.collection import CollectConfig, run_collect
    from mechsel.collection.run import collect_provenance
    from mechsel.models import tiny_model

    model = tiny_model()
    texts = ["a b c", "d e f g", "h"]
    config = CollectConfig(layers=[0, 1], statistics=("mean", "kurtosis"), mask="alone", progress=False)
    assert collect_provenance(model, texts, config).to_dict() == run_collect(model, texts, config).provenance.to_dict()


def test_the_embedded_model_converts_once_when_processes_start_together(tmp_path, monkeypatch):
    from mechsel.models import embedded

    converted = []

    def slow_convert(target):
        converted.append(target)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "mechsel_conversion.json").write_text("{}")
        return target

    monkeypatch.setattr(embedded, "_convert", slow_convert)
    found = []
    threads = [threading.Thread(target=lambda: found.append(embedded.embedded_hf_folder(tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(converted) == 1 and len(set(found)) == 1 and len(found) == 3


def test_ray_missing_is_one_error_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    """Ray is the optional extra ``mechsel[ray]``: without it, ``engine: ray`` fails when the
    config is read (no model is loaded), in one ``mechsel: error:`` line that names the extra."""
    import mechsel.models
    from mechsel.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    base = to_dict(demo_config(quick=True))
    with pytest.raises(ConfigError, match=r"execution.engine: ray needs Ray.*pip install 'mechsel\[ray\]'"):
        load_config(base, ["execution.engine=ray"])
    assert load_config(base).execution.engine == "local"  # the local engine does not need it

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(mechsel.models, "load_model", no_model)
    status = main(["demo", "--quick", "--quiet", "--output", str(tmp_path / "run"), "--set", "execution.engine=ray"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("mechsel: error:") and "pip install 'mechsel[ray]'" in lines[0]
    assert not (tmp_path / "run").exists()
