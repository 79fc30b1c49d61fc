"""Damaged checkpoints and stage outputs are found by size and hash, moved aside (not deleted) and recomputed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import DataError
from mechsel.experiment.engine import Stage, prune_stale, run_stages
from mechsel.experiment.store import file_digest, load_value, save_value

CALLS: list[str] = []
FAIL_AT: list[int] = []


def _square(ctx):
    out = []
    for i in range(ctx.params["n"]):

        def step(i=i):
            CALLS.append(f"square{i}")
            if FAIL_AT and FAIL_AT[0] == i:
                raise KeyboardInterrupt
            return {"i": np.array([i]), "v": np.random.default_rng([ctx.params["seed"], i]).normal(size=3)}

        out.append(ctx.checkpoint(f"step{i}", step))
    return {"table": pd.DataFrame({"i": [int(o["i"][0]) for o in out], "v": [float(o["v"].sum()) for o in out]})}


def _total(ctx):
    CALLS.append("total")
    return {"total": np.array([ctx.inputs["square"]["table"]["v"].sum()])}


def _stages():
    return [Stage("square", _square, params={"n": 5, "seed": 0}), Stage("total", _total, inputs=("square",))]


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FAIL_AT.clear()
    yield
    CALLS.clear()
    FAIL_AT.clear()


def _interrupted_run(root):
    FAIL_AT.append(3)
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(), root, progress=False)
    FAIL_AT.clear()
    CALLS.clear()
    (partial,) = (root / "stages" / "square").glob("*.partial")
    return partial


def _assert_same(out, ref):
    pd.testing.assert_frame_equal(out["square"]["table"], ref["square"]["table"])
    np.testing.assert_array_equal(out["total"]["total"], ref["total"]["total"])


def _moved_aside(root, name):
    return sorted((root / "stages" / "square" / ".corrupt").rglob(name))


def test_checkpoint_done_markers_record_size_and_hash(tmp_path):
    partial = _interrupted_run(tmp_path)
    for i in range(3):
        marker = json.loads((partial / f"step{i}.npz.done").read_text())
        assert marker == file_digest(partial / f"step{i}.npz") and set(marker) == {"size", "sha256"}
    run_stages(_stages(), tmp_path, progress=False)
    (final,) = (p for p in (tmp_path / "stages" / "square").iterdir() if (p / "_done.json").is_file())
    files = json.loads((final / "_done.json").read_text())["files"]
    assert files == {"table.parquet": file_digest(final / "table.parquet")}


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_moved_aside_and_recomputed(tmp_path, caplog, damage):
    ref, _ = run_stages(_stages(), tmp_path / "clean", progress=False)
    root = tmp_path / "run"
    partial = _interrupted_run(root)
    victim = partial / "step1.npz"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-20] + bytes(b ^ 0xFF for b in data[-20:]))
    damaged = victim.read_bytes()
    with caplog.at_level(logging.WARNING, logger="mechsel"):
        out, _ = run_stages(_stages(), root, progress=False)
    assert CALLS == ["square1", "square3", "square4", "total"]  # only the damaged step and the unfinished ones
    _assert_same(out, ref)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "step1.npz is damaged" in warning and ("size" if damage == "truncate" else "SHA-256") in warning
    (aside,) = _moved_aside(root, "step1.npz")
    assert aside.read_bytes() == damaged and _moved_aside(root, "step1.npz.done")


def test_damaged_stage_output_is_moved_aside_and_recomputed(tmp_path, caplog):
    ref, _ = run_stages(_stages(), tmp_path, progress=False)
    CALLS.clear()
    (table,) = (tmp_path / "stages" / "square").glob("*/table.parquet")
    table.write_bytes(table.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="mechsel"):
        out, records = run_stages(_stages(), tmp_path, progress=False)
    assert CALLS == [f"square{i}" for i in range(5)]  # recomputed; "total" reads the same key and stays cached
    assert [r.cached for r in records] == [False, True]
    _assert_same(out, ref)
    assert any("table.parquet: size 100 bytes" in r.getMessage() for r in caplog.records)
    (aside,) = _moved_aside(tmp_path, "table.parquet")
    assert aside.stat().st_size == 100
    prune_stale(tmp_path, records)
    assert aside.exists()  # pruning never deletes moved-aside files
    CALLS.clear()
    run_stages(_stages(), tmp_path, progress=False)
    assert CALLS == []


def test_checkpoint_from_before_done_markers_is_checked_by_reading_it(tmp_path, caplog):
    ref, _ = run_stages(_stages(), tmp_path / "clean", progress=False)
    root = tmp_path / "run"
    partial = _interrupted_run(root)
    for marker in partial.glob("*.done"):
        marker.unlink()
    victim = partial / "step2.npz"
    victim.write_bytes(victim.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="mechsel"):
        out, _ = run_stages(_stages(), root, progress=False)
    assert CALLS == ["square2", "square3", "square4", "total"]
    _assert_same(out, ref)
    assert any("step2.npz is damaged" in r.getMessage() for r in caplog.records)
    assert not any("step0" in r.getMessage() or "step1" in r.getMessage() for r in caplog.records)  # intact ones reused


def test_load_value_names_a_damaged_file(tmp_path):
    path = save_value(tmp_path / "t", pd.DataFrame({"a": [1, 2, 3]}))
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match=rf"{path.name} is damaged or truncated.*computed again"):
        load_value(path)
