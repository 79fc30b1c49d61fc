"""Packaged data and where task loading looks: the resolution order case by case, the hub
fallback (with a local stand-in for ``datasets.load_dataset``), checksums, ``mechsel data``."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

import mechsel.paths
import mechsel.tasks.packaged as packaged
from mechsel.cli import main
from mechsel.errors import DataError
from mechsel.tasks import SplitConfig, TaskConfig, load_examples, locate_task, make_splits
from mechsel.tasks.inventory import export_task

TOY = TaskConfig(
    name="toy_pk", template="Review: {review}\nVerdict:", input_fields=("review",), label_names=("bad", "good"), hub_id="someone/toy"
)


def write_toy(root, n=12):
    folder = root / "toy_pk"
    folder.mkdir(parents=True)
    rows = [{"review": f"{root.name} text {i}", "label": i % 2} for i in range(n)]
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Three candidate folders (explicit, env, default), none named yet; no default directory."""
    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    defaults: list = []
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: list(defaults))
    return {name: write_toy(tmp_path / name) for name in ("explicit", "env", "default")}, defaults


def first_text(**kw):
    return load_examples(TOY, "train", **kw)[0].inputs["review"]


def test_explicit_data_dir_beats_the_environment_and_the_default(places, monkeypatch):
    dirs, defaults = places
    defaults.append(dirs["default"])
    monkeypatch.setenv("MECHSEL_DATA_DIR", str(dirs["env"]))
    assert first_text(data_dir=dirs["explicit"]) == "explicit text 0"
    assert locate_task(TOY, dirs["explicit"]).why == "the data_dir argument"


def test_the_environment_beats_the_default(places, monkeypatch):
    dirs, defaults = places
    defaults.append(dirs["default"])
    monkeypatch.setenv("MECHSEL_DATA_DIR", str(dirs["env"]))
    assert first_text() == "env text 0" and locate_task(TOY).why == "$MECHSEL_DATA_DIR"


def test_an_explicit_place_without_the_task_is_not_replaced_by_other_data(places, monkeypatch, tmp_path):
    dirs, defaults = places
    defaults.append(dirs["default"])
    (tmp_path / "bare").mkdir()
    monkeypatch.setenv("MECHSEL_DATA_DIR", str(tmp_path / "bare"))
    with pytest.raises(DataError, match="has no folder .*unset MECHSEL_DATA_DIR"):
        load_examples(TOY, "train")
    monkeypatch.setenv("MECHSEL_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="looked in: .*missing.*unset MECHSEL_DATA_DIR"):
        load_examples("sst2", "validation")


def test_the_default_directory_beats_the_packaged_subset(places, tmp_path):
    _, defaults = places
    defaults.extend([tmp_path / "absent", tmp_path / "explicit"])  # the first does not exist, the second has the toy task
    assert locate_task(TOY).kind == "directory" and first_text() == "explicit text 0"
    full = tmp_path / "sst2copy"
    (full / "sst2").mkdir(parents=True)
    (full / "sst2" / "validation.jsonl").write_text(json.dumps({"idx": 5, "sentence": "a copy .", "label": 1}) + "\n")
    defaults.insert(0, full)
    assert locate_task("sst2").why == "the default data directory"
    assert [e.inputs["sentence"] for e in load_examples("sst2", "validation")] == ["a copy ."]


def test_the_packaged_subset_beats_the_hub(places, monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the hub was asked although the package has sst2"))
    assert locate_task("sst2").kind == "packaged"
    assert len(load_examples("sst2", "validation")) == 872


class StandIn:
    """A local ``datasets.load_dataset`` that checks it gets the real call's arguments."""

    def __init__(self, expected_args, rows):
        self.expected_args, self.rows, self.calls = expected_args, rows, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        split = kwargs.get("split")
        assert args == self.expected_args and set(kwargs) == {"split"}, (args, kwargs)
        return self.Dataset(self.rows[split])

    @dataclasses.dataclass
    class Dataset:
        rows: list

        def to_list(self):
            return list(self.rows)


def test_the_hub_is_the_last_resort_when_online(places, monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import datasets

    rows = {s: [{"review": f"hub {s} {i}", "label": i % 2} for i in range(20)] for s in ("train", "test")}
    stand_in = StandIn(("someone/toy", None), rows)
    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    assert locate_task(TOY).kind == "hub"
    assert first_text() == "hub train 0"
    s = make_splits(TOY, SplitConfig(pool_size=6, dev_size=4, test_size=5, seed=0))
    assert {e.split for e in s.test} == {"test"} and s.origin.startswith("the Hugging Face hub")
    assert [kw["split"] for _, kw in stand_in.calls] == ["train", "train", "test"]
    rte = dataclasses.replace(TOY, name="rte_like", hub_id="nyu-mll/glue", hub_config="rte")
    stand_in.expected_args = ("nyu-mll/glue", "rte")
    assert load_examples(rte, "train")[0].inputs["review"] == "hub train 0"


def test_nothing_found_names_every_place_and_the_fix(places, tmp_path):
    _, defaults = places
    defaults.append(tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        load_examples(TOY, "train")
    text = str(err.value)
    for part in (
        "nowhere (does not exist)",
        "packaged with mechsel",
        "sst2",
        "someone/toy: skipped, HF_DATASETS_OFFLINE",
        "MECHSEL_DATA_DIR=<DIR>",
    ):
        assert part in text


@pytest.mark.parametrize(
    "task,config",
    [
        ("sst2", SplitConfig(pool_size=200, dev_size=32, test_size=80, seed=0)),  # mechsel demo
        ("sst2", SplitConfig(pool_size=16, dev_size=8, test_size=48, seed=0)),  # mechsel demo --quick
        ("ag_news", SplitConfig(pool_size=48, dev_size=24, test_size=48, seed=0)),  # mechsel demo
        ("sst2", SplitConfig(pool_size=1000, dev_size=64, test_size=500, seed=2)),
        ("ag_news", SplitConfig(pool_size=1000, dev_size=64, test_size=500, seed=1)),
        ("ag_news", SplitConfig(pool_size=300, dev_size=64, test_size=300, seed=0, stratify=False)),
        ("rte", SplitConfig(pool_size=100, dev_size=20, test_size=100, seed=7)),
    ],
)
def test_packaged_draws_equal_the_full_datas(shared_data_dir, monkeypatch, task, config):
    full = make_splits(task, config, data_dir=shared_data_dir)
    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: [])
    small = make_splits(task, config)
    assert small.origin.startswith("the packaged subset")
    assert (small.pool, small.dev, small.test) == (full.pool, full.dev, full.test) and small.data_hash == full.data_hash


def test_a_draw_beyond_the_packaged_rows_raises(monkeypatch):
    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: [])
    with pytest.raises(DataError, match="needs row .* which the packaged subset does not hold.*MECHSEL_DATA_DIR"):
        make_splits("ag_news", SplitConfig(pool_size=400, dev_size=64, test_size=48, seed=5, stratify=False))


def test_checksums_are_verified(tmp_path, monkeypatch):
    for path in packaged.PACKAGED_DIR.rglob("*"):
        if path.is_file():
            dest = tmp_path / path.relative_to(packaged.PACKAGED_DIR)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    for entry in manifest["tasks"].values():
        for info in entry["splits"].values():
            data = (tmp_path / info["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == info["sha256"]
    monkeypatch.setattr(packaged, "PACKAGED_DIR", tmp_path)
    packaged.read_packaged_split.cache_clear()
    try:
        target = tmp_path / "sst2" / "validation.jsonl.gz"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        with pytest.raises(DataError, match="is corrupt: sha256 .* reinstall mechsel"):
            packaged.read_packaged_split("sst2", "validation")
    finally:
        packaged.read_packaged_split.cache_clear()


def test_mechsel_data_lists_sources_and_exports_a_partial_split_that_draws_the_same(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: [tmp_path / "none"])
    assert main(["data", "sst2"]) == 0
    out = capsys.readouterr().out
    assert "sst2: read from the packaged subset" in out and "- default directory" in out and "train: 7,149 rows of 67,349" in out
    written = {s.name: s for s in export_task("ag_news", tmp_path / "out")}
    assert written["train"].split_rows == 10001 and (tmp_path / "out" / "ag_news" / "train.index.json.gz").is_file()
    config = SplitConfig(pool_size=48, dev_size=24, test_size=48, seed=0)
    assert make_splits("ag_news", config, data_dir=tmp_path / "out").data_hash == make_splits("ag_news", config).data_hash
    assert main(["data", "export", "sst2"]) == 2
    assert "usage: mechsel data export TASK DIR" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["--quick", "--demo"])
def test_the_demos_data_stage_runs_on_the_packaged_data_alone(monkeypatch, tmp_path, capsys, which):
    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: [tmp_path / "no-shared-data"])
    assert main(["config", which, "--check"]) == 0, capsys.readouterr().err
