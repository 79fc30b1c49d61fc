"""Tasks: registry, loading (plain JSON, datasets, config-defined), grouping, splits, bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.tasks import (
    TASKS,
    SplitConfig,
    TaskConfig,
    get_task,
    load_examples,
    make_splits,
    rows_to_examples,
    sample_demonstrations,
)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def toy_dir(tmp_path):
    rows = [{"id": f"r{i}", "review": f"text number {i}", "stars": ["bad", "good"][i % 2]} for i in range(30)]
    write_jsonl(tmp_path / "toy" / "train.jsonl", rows[:20])
    write_jsonl(tmp_path / "toy" / "test.jsonl", rows[20:])
    return tmp_path


TOY = TaskConfig(
    name="toy",
    template="Review: {review}\nVerdict:",
    input_fields=("review",),
    label_field="stars",
    label_names=("bad", "good"),
    id_field="id",
)


def test_registry_has_builtins_and_explains_unknown_names():
    assert {"sst2", "ag_news", "rte", "e2e_nlg"} <= set(TASKS.names())
    with pytest.raises(ConfigError, match="Valid tasks: .*sst2"):
        get_task("sst3")
    with pytest.raises(ConfigError, match="already registered"):
        TASKS.add("sst2", get_task("sst2"))


def test_builtin_sst2_rows_match_the_file(shared_data_dir):
    examples = load_examples("sst2", "validation")
    with open(shared_data_dir / "sst2" / "validation.jsonl") as fh:
        raw = [json.loads(line) for line in fh]
    assert len(examples) == len(raw) == 872
    for ex, row in zip(examples, raw):
        assert ex.id == row["idx"] and ex.inputs == {"sentence": row["sentence"]} and ex.label == row["label"]


@pytest.mark.parametrize("task,split", [("sst2", "validation"), ("rte", "validation"), ("e2e_nlg", "validation")])
def test_datasets_reader_gives_identical_examples(task, split, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    assert load_examples(task, split, reader="datasets") == load_examples(task, split, reader="json")


def test_config_defined_task_loads_the_same_rows_as_the_builtin(shared_data_dir):
    sst2 = get_task("sst2")
    mine = TaskConfig(
        name="my_sst2",
        template=sst2.template,
        input_fields=("sentence",),
        label_field="label",
        label_names=("negative", "positive"),
        id_field="idx",
        files={"dev": str(shared_data_dir / "sst2" / "validation.jsonl")},
    )
    assert [dataclasses.replace(e, split="validation") for e in load_examples(mine, "dev")] == load_examples("sst2", "validation")


def test_config_defined_task_from_relative_files_with_string_labels(toy_dir):
    cfg = dataclasses.replace(TOY, files={"train": "toy/train.jsonl", "test": "toy/test.jsonl"})
    exs = load_examples(cfg, "train", data_dir=toy_dir)
    assert [e.label for e in exs[:4]] == [0, 1, 0, 1] and exs[3].id == "r3"
    # the same files found through the folder convention
    assert load_examples(TOY, "train", data_dir=toy_dir) == exs


def test_e2e_rows_sharing_a_meaning_representation_become_one_example(shared_data_dir):
    with open(shared_data_dir / "e2e_nlg" / "validation.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    exs = load_examples("e2e_nlg", "validation")
    by_mr: dict[str, list[str]] = {}
    for r in rows:
        by_mr.setdefault(r["meaning_representation"], []).append(r["human_reference"])
    assert len(exs) == len(by_mr) < len(rows)
    for ex in exs[:50]:
        assert list(ex.references) == by_mr[ex.inputs["meaning_representation"]]
    assert [e.id for e in exs] == list(range(len(exs)))


def test_unknown_field_lists_the_row_fields(toy_dir):
    bad = dataclasses.replace(TOY, input_fields=("reveiw",), template="{reveiw}")
    with pytest.raises(
        DataError, match=r"no field 'reveiw'.*Did you mean 'review'.*\['id', 'review', 'stars'\]; fix TaskConfig.input_fields"
    ):
        load_examples(bad, "train", data_dir=toy_dir)


def test_label_outside_the_label_set(toy_dir):
    write_jsonl(toy_dir / "toy" / "odd.jsonl", [{"id": "a", "review": "x", "stars": "meh"}])
    with pytest.raises(DataError, match=r"label 'meh' is outside the label set.*\['bad', 'good'\].*Fix the data or TaskConfig.label_names"):
        load_examples(TOY, "odd", data_dir=toy_dir)
    hub_test = [{"idx": 0, "sentence": "x", "label": -1}]
    with pytest.raises(DataError, match="unlabelled split"):
        rows_to_examples("sst2", hub_test, "test")


def test_unknown_split_and_missing_data_dir(toy_dir, tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"no local split 'tran'.*Did you mean 'train'"):
        load_examples(TOY, "tran", data_dir=toy_dir)
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MECHSEL_DATA_DIR", str(missing))
    with pytest.raises(DataError, match=rf"looked in: {missing}.*MECHSEL_DATA_DIR"):
        load_examples("sst2", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no folder"):
        load_examples(TOY, "train", data_dir=tmp_path / "empty")


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"template": "Review: {text}"}, r"placeholder \{text\} is not an input field"),
        ({"input_fields": ("review", "title")}, "'title' does not appear in the template"),
        ({"label_names": ("bad",)}, "at least two label_names"),
        ({"verbalizers": (" bad",)}, "1 verbalizers for 2 labels"),
        ({"kind": "regression"}, "kind must be one of"),
        ({"input_fields": "review"}, "not the single string"),
    ],
)
def test_bad_task_configs(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(TOY, **changes)


def test_splits_are_seeded_disjoint_and_nested(toy_dir):
    cfg = dataclasses.replace(TOY, test_split="test")
    a = make_splits(cfg, SplitConfig(pool_size=10, dev_size=5, test_size=8, seed=3), data_dir=toy_dir)
    b = make_splits(cfg, SplitConfig(pool_size=10, dev_size=5, test_size=8, seed=3), data_dir=toy_dir)
    c = make_splits(cfg, SplitConfig(pool_size=12, dev_size=5, test_size=8, seed=3), data_dir=toy_dir)
    d = make_splits(cfg, SplitConfig(pool_size=10, dev_size=5, test_size=8, seed=4), data_dir=toy_dir)
    assert a == b and a.data_hash == b.data_hash
    assert c.pool[:10] == a.pool and a.dev == c.dev
    assert a.data_hash != d.data_hash
    assert not {e.id for e in a.pool} & {e.id for e in a.dev}
    assert all(e.split == "test" for e in a.test) and len(a.test) == 8


def test_shared_source_split_keeps_subsets_disjoint(toy_dir):
    cfg = dataclasses.replace(TOY, test_split="train")
    s = make_splits(cfg, SplitConfig(pool_size=8, dev_size=4, test_size=None), data_dir=toy_dir)
    ids = [e.id for e in (*s.pool, *s.dev, *s.test)]
    assert len(ids) == len(set(ids)) == 20


def test_split_sizes_too_large_or_invalid(toy_dir):
    with pytest.raises(DataError, match="asked for 30 pool examples but split 'train' has only 15"):
        make_splits(TOY, SplitConfig(pool_size=30, dev_size=5), data_dir=toy_dir)
    with pytest.raises(ConfigError, match="pool_size must be ≥ 1"):
        SplitConfig(pool_size=0)


def test_sampling_demonstrations_errors(toy_dir):
    pool = load_examples(TOY, "train", data_dir=toy_dir)
    draw = sample_demonstrations(pool, 4, seed=1)
    assert draw == sample_demonstrations(pool, 4, seed=1) and len({e.id for e in draw}) == 4
    assert all(e.id != "r0" for e in sample_demonstrations(pool, 19, seed=0, exclude="r0"))
    with pytest.raises(DataError, match="k=21 demonstrations but the pool has only 20 candidates; lower k or enlarge the pool"):
        sample_demonstrations(pool, 21, seed=0)
    with pytest.raises(DataError, match="pool is empty.*Pass a non-empty pool"):
        sample_demonstrations([], 1, seed=0)


def test_hub_source_offline_gives_a_teaching_error():
    with pytest.raises(DataError, match="source='local'"):
        load_examples("sst2", "validation", source="hub")
    with pytest.raises(ConfigError, match="no hub_id"):
        load_examples(TOY, "train", source="hub")
