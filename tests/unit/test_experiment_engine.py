"""The cached stage engine and the run directory, with fake stages (no model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import ConfigError, ProvenanceMismatchError
from mechsel.experiment.engine import Stage, prune_stale, run_stages
from mechsel.experiment.rundir import RunDirectory, read_manifest

CALLS: list[str] = []
FAIL_AT: list[int] = []  # a step index at which the fake stage is "interrupted" (not part of its params)


def _square(ctx):
    out = []
    for i in range(ctx.params["n"]):

        def step(i=i):
            CALLS.append(f"square{i}")
            if FAIL_AT and FAIL_AT[0] == i:
                raise KeyboardInterrupt  # a Ctrl-C in the middle of the stage
            rng = np.random.default_rng([ctx.params["seed"], i])  # seeded per step, not from a shared stream
            return {"i": np.array([i]), "v": rng.normal(size=3)}

        out.append(ctx.checkpoint(f"step{i}", step))
    frame = pd.DataFrame({"i": [int(o["i"][0]) for o in out], "v": [float(o["v"].sum()) for o in out]})
    return {"table": frame, "meta": {"n": ctx.params["n"]}}


def _total(ctx):
    CALLS.append("total")
    return {"total": np.array([ctx.inputs["square"]["table"]["v"].sum()])}


def _stages(n=5, seed=0):
    return [Stage("square", _square, params={"n": n, "seed": seed}), Stage("total", _total, inputs=("square",), params={"x": 1})]


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FAIL_AT.clear()
    yield
    FAIL_AT.clear()


def test_interrupted_stage_resumes_with_identical_results(tmp_path):
    ref, _ = run_stages(_stages(), tmp_path / "clean", progress=False)
    CALLS.clear()
    FAIL_AT.append(3)
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(), tmp_path / "run", progress=False)
    assert CALLS == ["square0", "square1", "square2", "square3"]
    assert not list((tmp_path / "run" / "stages").rglob("_done.json"))  # nothing half-finished looks finished
    CALLS.clear()
    FAIL_AT.clear()
    out, records = run_stages(_stages(), tmp_path / "run", progress=False)
    assert CALLS == ["square3", "square4", "total"]  # steps 0-2 were not redone
    pd.testing.assert_frame_equal(out["square"]["table"], ref["square"]["table"])
    np.testing.assert_array_equal(out["total"]["total"], ref["total"]["total"])
    assert [r.cached for r in records] == [False, False]
    assert not list((tmp_path / "run" / "stages").rglob("*.partial"))  # checkpoints removed once finished


def test_rerun_loads_everything_from_cache(tmp_path):
    run_stages(_stages(), tmp_path, progress=False)
    CALLS.clear()
    out, records = run_stages(_stages(), tmp_path, progress=False)
    assert CALLS == [] and all(r.cached for r in records)
    assert out["square"]["meta"] == {"n": 5}


def test_changed_params_recompute_downstream_only(tmp_path):
    run_stages(_stages(), tmp_path, progress=False)
    CALLS.clear()
    stages = _stages()
    stages[1] = Stage("total", _total, inputs=("square",), params={"x": 2})
    _, records = run_stages(stages, tmp_path, progress=False)
    assert CALLS == ["total"] and [r.cached for r in records] == [True, False]
    CALLS.clear()
    _, records = run_stages(_stages(seed=1), tmp_path, progress=False)
    assert [r.cached for r in records] == [False, False]  # upstream change → everything below recomputed
    removed = prune_stale(tmp_path, records)
    assert len(removed) == 3 and len(list((tmp_path / "stages").rglob("_done.json"))) == 2


def test_stage_order_and_outputs_validated(tmp_path):
    with pytest.raises(ConfigError, match="do not run before"):
        run_stages(_stages()[::-1], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unique"):
        run_stages(_stages()[:1] * 2, tmp_path, progress=False)


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from mechsel.experiment.engine import Stage, run_stages

    def work(ctx):
        vals = []
        for i in range(6):
            def step(i=i):
                if i == int(sys.argv[2]):
                    os.kill(os.getpid(), signal.SIGKILL)
                with open(sys.argv[3], "a") as fh:
                    fh.write(f"{i}\\n")
                return np.random.default_rng([7, i]).normal(size=4)
            vals.append(ctx.checkpoint(f"s{i}", step))
        return {"vals": np.stack(vals)}

    out, _ = run_stages([Stage("work", work, params={"p": 1})], sys.argv[1], progress=False)
    np.save(sys.argv[1] + "/result.npy", out["work"]["vals"])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_minus_9_resumes(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(_KILL_SCRIPT)
    log = tmp_path / "calls.txt"
    run = lambda folder, kill_at: subprocess.run([sys.executable, str(script), str(folder), str(kill_at), str(log)], capture_output=True)  # noqa: E731
    first = run(tmp_path / "a", 4)
    assert first.returncode == -signal.SIGKILL
    assert log.read_text().split() == ["0", "1", "2", "3"]
    second = run(tmp_path / "a", -1)
    assert second.returncode == 0, second.stderr.decode()
    assert log.read_text().split() == ["0", "1", "2", "3", "4", "5"]  # 0-3 not redone
    run(tmp_path / "b", -1)
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "result.npy"), np.load(tmp_path / "b" / "result.npy"))


def test_run_directory_refuses_other_provenance(tmp_path):
    with RunDirectory(tmp_path / "out", {"a": 1, "b": [1, 2]}) as rd:
        rd.record("stages", "x", {"key": "k"})
    assert read_manifest(tmp_path / "out")["status"] == "running"  # status is set by the caller on success
    with RunDirectory(tmp_path / "out", {"a": 1, "b": [1, 2]}):  # same identity: resumes
        pass
    with pytest.raises(ProvenanceMismatchError, match=r"a: 1 → 2.*overwrite"):
        with RunDirectory(tmp_path / "out", {"a": 2, "b": [1, 2]}):
            pass
    (tmp_path / "out" / "results").mkdir()
    with RunDirectory(tmp_path / "out", {"a": 2, "b": [1, 2]}, overwrite=True) as rd:
        assert not (tmp_path / "out" / "results").exists()
    assert read_manifest(tmp_path / "out")["identity"] == {"a": 2, "b": [1, 2]}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(ConfigError, match="not a mechsel run"):
        with RunDirectory(tmp_path / "other", {"a": 1}, overwrite=True):
            pass


def test_run_directory_log_and_failure_status(tmp_path):
    import logging

    with pytest.raises(RuntimeError):
        with RunDirectory(tmp_path / "out", {"a": 1}):
            logging.getLogger("mechsel.test").info("hello from the run")
            raise RuntimeError("boom")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["status"] == "failed" and "boom" in manifest["error"]
    assert "hello from the run" in (tmp_path / "out" / "run.log").read_text()
    assert not (tmp_path / "out" / ".lock").exists()
    json.dumps(manifest)
    assert os.path.isfile(tmp_path / "out" / "manifest.json")
