"""A shared output folder loses no data: the run lock, unwritable folders, and names that become paths."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mechsel.errors import ConfigError
from mechsel.experiment.engine import Stage, run_stages
from mechsel.experiment.rundir import MANIFEST, RunDirectory, RunDirectoryBusyError, read_manifest
from mechsel.paths import safe_name

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the run lock is tested with fcntl.flock")


# ---------------------------------------------------------------------------------------------- the lock
def test_two_runs_started_at_once_on_one_folder_exactly_one_proceeds(tmp_path):
    out = tmp_path / "out"
    start, tried = threading.Barrier(2), threading.Event()
    entered: list[int] = []
    errors: list[Exception] = []

    def attempt(i: int) -> None:
        start.wait()
        try:
            with RunDirectory(out, {"a": 1}):
                entered.append(i)
                tried.wait(timeout=5)  # hold the folder until the other run has tried
        except RunDirectoryBusyError as err:
            errors.append(err)
            tried.set()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(entered) == 1 and len(errors) == 1
    message = str(errors[0])
    assert f"host {socket.gethostname()}" in message and f"pid {os.getpid()}" in message and "Nothing in it was changed" in message
    assert not (out / ".lock").exists()  # released by the winner


_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mechsel.experiment.rundir import RunDirectory

    out = Path(sys.argv[1])
    with RunDirectory(out, {"a": 1}) as rd:
        (out / "config.yaml").write_text("a: 1\\n")
        (out / "results").mkdir(exist_ok=True)
        (out / "results" / "summary.parquet").write_bytes(b"table")
        print("ready", flush=True)
        sys.stdin.readline()
        rd.manifest["status"] = "complete"
    """
)


def test_overwrite_never_touches_a_folder_another_process_runs_in(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run.log"}
        with pytest.raises(RunDirectoryBusyError, match=rf"host {socket.gethostname()}, pid {holder.pid}") as info:
            with RunDirectory(out, {"a": 2}, overwrite=True):  # other provenance: would delete the holder's files
                pass
        assert "Nothing in it was changed" in str(info.value)
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run.log"}
        assert after == before
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    assert read_manifest(out)["status"] == "complete" and (out / "config.yaml").read_text() == "a: 1\n"
    with RunDirectory(out, {"a": 2}, overwrite=True):  # once it has finished, overwriting works
        assert not (out / "config.yaml").exists() and not (out / "results").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("legacy", [False, True])
def test_stale_lock_of_a_dead_process_is_taken_over_with_a_log_line(tmp_path, caplog, legacy):
    out = tmp_path / "out"
    out.mkdir()
    pid = _dead_pid()
    (out / ".lock").write_text(str(pid) if legacy else json.dumps({"host": socket.gethostname(), "pid": pid}))
    with caplog.at_level(logging.WARNING, logger="mechsel"):
        with RunDirectory(out, {"a": 1}):
            holder = json.loads((out / ".lock").read_text())
            assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert any("stale lock" in r.getMessage() and f"pid {pid}" in r.getMessage() for r in caplog.records)


def test_lock_of_a_live_process_or_another_host_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(str(sleeper.pid))  # an older mechsel wrote a bare pid and held no flock
        with pytest.raises(RunDirectoryBusyError, match=f"pid {sleeper.pid}.*still alive"):
            with RunDirectory(out, {"a": 1}):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    (out / ".lock").write_text(json.dumps({"host": "elsewhere.example", "pid": 4242}))
    with pytest.raises(RunDirectoryBusyError, match=r"another machine \(host elsewhere.example, pid 4242.*delete"):
        with RunDirectory(out, {"a": 1}):
            pass
    assert not (out / MANIFEST).exists()


# ------------------------------------------------------------------------------------ unwritable folders
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_folder_or_parent_is_explained(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match=rf"Cannot write to the output directory {parent / 'run'}.*chmod u\+w"):
            with RunDirectory(parent / "run", {"a": 1}):
                pass
        with pytest.raises(ConfigError, match=rf"Cannot write to the output directory {parent}.*-o/--output"):
            with RunDirectory(parent, {"a": 1}):
                pass
    finally:
        parent.chmod(0o755)


def test_permission_errors_become_a_clear_error(tmp_path, monkeypatch):
    """The same as above with the refusals simulated, so it also runs as root."""
    denied = tmp_path / "denied"
    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(self, *args, **kwargs):
        if self == denied / "run":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    def open_(path, *args, **kwargs):
        if Path(path).parent == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    denied.mkdir()
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(ConfigError, match=r"Cannot write to the output directory .*denied/run: Permission denied.*writable"):
        with RunDirectory(denied / "run", {"a": 1}):
            pass
    with pytest.raises(ConfigError, match=r"denied: Permission denied \(.*denied/\.lock\).*chmod u\+w"):
        with RunDirectory(denied, {"a": 1}):
            pass


# ----------------------------------------------------------------------------------- names that are paths
@pytest.mark.parametrize("name", ["collect", "run01-s3", "eval-0a1b.c_d", "_x"])
def test_safe_name_accepts_plain_names(name):
    assert safe_name("stage", name) == name


@pytest.mark.parametrize(
    ("name", "problem", "suggestion"),
    [
        ("../evil", "starts with a dot", "evil"),
        ("a..b", "contains '..'", "a.b"),
        ("a/b", "contains '/'", "a_b"),
        (".hidden", "starts with a dot", "hidden"),
        ("my task", "contains ' '", "my_task"),
        ("", "it is empty", "name"),
    ],
)
def test_safe_name_refuses_and_teaches(name, problem, suggestion):
    with pytest.raises(ConfigError) as info:
        safe_name("task", name)
    message = str(info.value)
    assert problem in message and f"e.g. {suggestion!r}" in message and "letters, digits and _ . -" in message


def _writes(ctx):
    return {"x": [1]}


def _checkpoints(ctx):
    ctx.checkpoint(ctx.params["name"], lambda: [1])
    return {"x": [1]}


def _outputs(ctx):
    return {ctx.params["name"]: [1]}


@pytest.mark.parametrize(
    "stage",
    [
        Stage("../../escaped", _writes),
        Stage("collect/../../../escaped", _writes),
        Stage("/escaped", _writes),
        Stage("ok", _checkpoints, params={"name": "../../../../escaped"}),
        Stage("ok", _outputs, params={"name": "../../../escaped"}),
    ],
)
def test_stage_checkpoint_and_output_names_cannot_leave_the_run_folder(tmp_path, stage):
    with pytest.raises(ConfigError, match="cannot be used as a file name"):
        run_stages([stage], tmp_path / "run", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["run"] if (tmp_path / "run").exists() else [])
    assert not list(tmp_path.rglob("escaped*"))


def test_stage_folder_linked_outside_the_run_is_refused(tmp_path):
    (tmp_path / "run" / "stages").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run" / "stages" / "s").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="outside the run's stage folder"):
        run_stages([Stage("s", _writes)], tmp_path / "run", progress=False)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_debris_clean_up_deletes_nothing_outside_the_stage_folder(tmp_path):
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / ".notes.tmp-1").write_text("keep me")
    (outside / ".draft.tmp-2").mkdir()
    (outside / "target.txt").write_text("keep me too")
    folder = tmp_path / "run" / "stages" / "s"
    folder.mkdir(parents=True)
    (folder / "link").symlink_to(outside)  # a link into someone else's files
    (folder / ".victim.tmp-3").symlink_to(outside / "target.txt")  # a link that itself matches the pattern
    (folder / ".table.parquet.tmp-4").write_text("debris")
    (folder / "key.partial").mkdir()
    (folder / "key.partial" / ".step0.npy.tmp-5").write_text("debris")
    run_stages([Stage("s", _writes)], tmp_path / "run", progress=False)
    assert (outside / ".notes.tmp-1").read_text() == "keep me" and (outside / ".draft.tmp-2").is_dir()
    assert (outside / "target.txt").read_text() == "keep me too"
    assert not (folder / ".victim.tmp-3").is_symlink()  # the link is removed, not what it points to
    assert not (folder / ".table.parquet.tmp-4").exists() and not (folder / "key.partial" / ".step0.npy.tmp-5").exists()


# ---------------------------------------------------------------------------------------------- provenance
def test_a_refused_rerun_names_only_the_settings_that_changed(tmp_path):
    from mechsel.errors import ProvenanceMismatchError
    from mechsel.experiment import demo_config

    old = demo_config(quick=True).identity()
    with RunDirectory(tmp_path / "out", old):
        pass
    seeds = demo_config(quick=True, selection={**old["selection"], "seeds": [0, 1, 2, 3]}).identity()
    with pytest.raises(ProvenanceMismatchError) as caught:
        with RunDirectory(tmp_path / "out", seeds):
            pass
    message = str(caught.value)
    assert "selection.seeds: [0, 1, 2] → [0, 1, 2, 3]" in message and "runs" not in message and len(message) < 300
    runs = [*old["selection"]["runs"], {"selector": "bm25"}]
    tasks = [{**old["tasks"][0], "test_size": 40}]
    changed = demo_config(quick=True, selection={**old["selection"], "runs": runs}, tasks=tasks).identity()
    with pytest.raises(ProvenanceMismatchError) as caught:
        with RunDirectory(tmp_path / "out", changed):
            pass
    lines = str(caught.value).split(": ", 1)[1]
    assert "tasks[sst2].test_size: 48 → 40" in lines and "selection.runs[bm25]: <absent> → {'selector': 'bm25'" in lines
    assert lines.count("→") == 2 and len(str(caught.value)) < 400


def test_a_run_recorded_under_the_old_key_names_resumes(tmp_path):
    from mechsel.experiment import demo_config

    new = demo_config(quick=True).identity()
    task = {
        ("selection_pool" if k == "seed_pool_size" else "metric" if k == "quality_metric" else k): v for k, v in new["tasks"][0].items()
    }
    with RunDirectory(tmp_path / "out", {**new, "tasks": [task]}):
        pass
    with RunDirectory(tmp_path / "out", new):  # same settings under the new names: no mismatch
        pass
