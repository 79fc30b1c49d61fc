"""Splits: label-stratified subsets (checked against label counts read straight from the files),
SST-2's dev/test sources, disjointness, seeding, nesting, the min_words filter, the unstratified
draw against an independent re-implementation, errors that teach, and the data stage's cache key."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from statistics import median
from types import SimpleNamespace

import numpy as np
import pytest

import mechsel.tasks.splits as splits_module
from mechsel.errors import ConfigError, DataError
from mechsel.experiment import load_config
from mechsel.experiment.pipeline import build_stages
from mechsel.experiment.stages.data import DataParams, data_stage
from mechsel.tasks import SplitConfig, TaskConfig, get_task, load_examples, make_splits
from mechsel.tasks.loading import SplitExamples
from mechsel.tasks.splits import stratified_label_order

MINIMAL = {"selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True}], "budgets": [2]}}


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def assert_within_one(subset, source_labels) -> None:
    """Each label's count in ``subset`` is within one example of len(subset) × its share of the source."""
    n, total = len(subset), len(source_labels)
    got = Counter(e.label for e in subset)
    assert set(got) <= set(source_labels)
    for label, k in Counter(source_labels).items():
        assert abs(got[label] - Fraction(n * k, total)) < 1, (label, got[label], n * k / total)


def ids(subset) -> set:
    return {(e.split, e.id) for e in subset}


def assert_disjoint(s) -> None:
    assert not ids(s.pool) & ids(s.dev) and not ids(s.pool) & ids(s.test) and not ids(s.dev) & ids(s.test)
    assert len(ids(s.pool)) == len(s.pool) and len(ids(s.dev)) == len(s.dev) and len(ids(s.test)) == len(s.test)


# ---------------------------------------------------------------- the stratified order


@pytest.mark.parametrize("trial", range(40))
def test_every_prefix_of_the_stratified_order_is_within_one(trial):
    rng = np.random.default_rng(trial)
    m = int(rng.integers(2, 6))
    targets = [int(k) for k in rng.integers(1, 40, size=m)]
    if trial % 4 == 0:
        targets[0] = 1  # a rare label
    if trial % 5 == 0:
        targets[-1] = 0  # a label absent from the split
    total = sum(targets)
    order = stratified_label_order(targets, total, np.random.default_rng(100 + trial))
    counts = [0] * m
    for t, label in enumerate(order, 1):
        counts[label] += 1
        for j in range(m):
            assert abs(counts[j] - Fraction(t * targets[j], total)) < 1
    assert counts == targets  # the whole split, each example once


def test_stratified_order_is_shuffled_not_grouped_or_periodic():
    order = stratified_label_order([500, 500], 400, np.random.default_rng(0))
    pairs = [tuple(order[i : i + 2]) for i in range(0, 400, 2)]
    assert set(pairs) == {(0, 1), (1, 0)}  # equal shares: each pair holds one of each label ...
    assert 0.35 < pairs.count((0, 1)) / len(pairs) < 0.65  # ... in random order
    assert stratified_label_order([500, 500], 400, np.random.default_rng(1)) != order
    four = stratified_label_order([30, 20, 10, 40], 100, np.random.default_rng(0))
    assert max(len(list(g)) for g in np.split(np.array(four), np.flatnonzero(np.diff(four)) + 1)) <= 3  # no long runs


# ---------------------------------------------------------------- a constructed tiny task

TRI = TaskConfig(
    name="tri",
    template="Q: {q}\nA:",
    input_fields=("q",),
    label_field="y",
    label_names=("a", "b", "c"),
    id_field="id",
    pool_split="train",
    test_split="test",
)


@pytest.fixture
def tri_dir(tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "tri"
    folder.mkdir()
    for split, shares in (("train", (45, 30, 15)), ("test", (10, 20, 30))):
        labels = [lab for lab, k in zip("abc", shares) for _ in range(k)]
        rng.shuffle(labels)
        rows = [{"id": f"{split}{i}", "q": " ".join(["w"] * (1 + i % 7)), "y": lab} for i, lab in enumerate(labels)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def file_labels(path: Path, names=("a", "b", "c"), field="y") -> list[int]:
    return [names.index(r[field]) if isinstance(r[field], str) else r[field] for r in read_jsonl(path)]


def test_tiny_task_subsets_keep_their_source_shares(tri_dir):
    train, test = file_labels(tri_dir / "tri" / "train.jsonl"), file_labels(tri_dir / "tri" / "test.jsonl")
    for seed in range(5):
        s = make_splits(TRI, SplitConfig(pool_size=40, dev_size=13, test_size=25, seed=seed), data_dir=tri_dir)
        assert (len(s.pool), len(s.dev), len(s.test)) == (40, 13, 25)
        assert_within_one(s.dev, train)
        assert_within_one(s.pool, train)
        assert_within_one(s.test, test)
        for k in range(1, 41):  # every prefix of the pool too (so a smaller pool is stratified as well)
            assert_within_one(s.pool[:k], train)
        assert_disjoint(s)


def test_tiny_task_sharing_one_split_stays_disjoint_and_stratified(tri_dir):
    cfg = dataclasses.replace(TRI, test_split="train")
    train = file_labels(tri_dir / "tri" / "train.jsonl")
    s = make_splits(cfg, SplitConfig(pool_size=30, dev_size=12, test_size=30, seed=2), data_dir=tri_dir)
    assert_disjoint(s)
    for subset in (s.dev, s.pool, s.test):
        assert_within_one(subset, train)
    everything = make_splits(cfg, SplitConfig(pool_size=30, dev_size=12, test_size=None, seed=2), data_dir=tri_dir)
    assert len(everything.test) == 90 - 42 and everything.test[:30] == s.test
    assert ids(everything.dev) | ids(everything.pool) | ids(everything.test) == {("train", f"train{i}") for i in range(90)}


def test_same_seed_same_splits_other_seed_other_splits_and_the_pool_only_grows(tri_dir):
    def draw(**kw):
        return make_splits(TRI, SplitConfig(**{"pool_size": 20, "dev_size": 9, "test_size": 25, "seed": 1, **kw}), data_dir=tri_dir)

    a, b = draw(), draw()
    assert a == b and a.data_hash == b.data_hash
    assert draw(seed=2).data_hash != a.data_hash
    bigger = draw(pool_size=50)
    assert bigger.pool[:20] == a.pool and bigger.dev == a.dev and bigger.test == a.test
    assert [e.label for e in a.pool] != sorted(e.label for e in a.pool)  # shuffled, not grouped by label


def test_unstratified_draw_matches_an_independent_implementation(tri_dir):
    rows = load_examples(TRI, "train", data_dir=tri_dir)
    test_rows = load_examples(TRI, "test", data_dir=tri_dir)
    s = make_splits(TRI, SplitConfig(pool_size=20, dev_size=7, test_size=11, seed=3, stratify=False), data_dir=tri_dir)
    perm = np.random.default_rng(3).permutation(len(rows))
    test_perm = np.random.default_rng([3, 1]).permutation(len(test_rows))
    assert list(s.dev) == [rows[i] for i in perm[:7]]
    assert list(s.pool) == [rows[i] for i in perm[7:27]]
    assert list(s.test) == [test_rows[i] for i in test_perm[:11]]


def test_generation_tasks_are_unaffected_by_stratify(shared_data_dir):
    config = SplitConfig(pool_size=30, dev_size=10, test_size=20, seed=4)
    s = make_splits("e2e_nlg", config)
    assert s == dataclasses.replace(make_splits("e2e_nlg", dataclasses.replace(config, stratify=False)), config=config)
    rows = load_examples("e2e_nlg", "validation")
    perm = np.random.default_rng(4).permutation(len(rows))
    assert list(s.dev) == [rows[i] for i in perm[:10]] and list(s.pool) == [rows[i] for i in perm[10:40]]


def test_min_words_filters_the_pool_only(tri_dir):
    train = file_labels(tri_dir / "tri" / "train.jsonl")
    plain = make_splits(TRI, SplitConfig(pool_size=20, dev_size=9, test_size=25, seed=0), data_dir=tri_dir)
    long = make_splits(TRI, SplitConfig(pool_size=20, dev_size=9, test_size=25, seed=0, min_words=4), data_dir=tri_dir)
    assert all(len(e.inputs["q"].split()) >= 4 for e in long.pool)
    assert any(len(e.inputs["q"].split()) < 4 for e in plain.pool)
    assert long.dev == plain.dev and long.test == plain.test  # drawn before the pool / from another split
    assert_within_one(long.pool, train)  # the pool split's shares, not the filtered ones
    with pytest.raises(
        DataError, match="asked for 80 pool examples but split 'train' has only .* left after the other subsets and the min_words"
    ):
        make_splits(TRI, SplitConfig(pool_size=80, dev_size=9, seed=0, min_words=4), data_dir=tri_dir)
    with pytest.raises(ConfigError, match="min_words must be an integer ≥ 1"):
        SplitConfig(min_words=0)


def test_impossible_requests_raise_errors_that_teach(tri_dir):
    with pytest.raises(
        DataError, match=r"draws its dev subset from split 'validaton' \(TaskConfig.dev_split\).*Available: \['test', 'train'\]"
    ):
        make_splits(dataclasses.replace(TRI, dev_split="validaton"), SplitConfig(pool_size=10, dev_size=5, test_size=5), data_dir=tri_dir)
    with pytest.raises(
        DataError, match=r"draws its dev and pool subsets from split 'trian' \(TaskConfig.pool_split\).*Did you mean 'train'"
    ):
        make_splits(dataclasses.replace(TRI, pool_split="trian"), SplitConfig(pool_size=10, dev_size=5, test_size=5), data_dir=tri_dir)
    with pytest.raises(DataError, match="asked for 61 test examples but split 'test' has only 60 left"):
        make_splits(TRI, SplitConfig(pool_size=10, dev_size=5, test_size=61), data_dir=tri_dir)
    # more dev queries than the split holds
    with pytest.raises(DataError, match="asked for 91 dev examples but split 'train' has only 90 left.*lower dev_size"):
        make_splits(TRI, SplitConfig(pool_size=10, dev_size=91, test_size=5), data_dir=tri_dir)
    # one shared split (45 a, 30 b, 15 c): a test subset of all 84 rows that dev (3) and pool (3) leave must hold
    # exactly 42 a; it does only when dev and pool took different numbers of a's, otherwise the draw refuses
    shared = dataclasses.replace(TRI, test_split="train")
    train = file_labels(tri_dir / "tri" / "train.jsonl")
    refused = 0
    for seed in range(12):
        config = SplitConfig(pool_size=3, dev_size=3, test_size=84, seed=seed)
        try:
            s = make_splits(shared, config, data_dir=tri_dir)
        except DataError as err:
            assert re.search(
                r"stratified test subset of 84 needs about 42.0 examples labelled 'a'.*only 4[13] are left.*stratify=False", str(err)
            )
            refused += 1
            assert len(make_splits(shared, dataclasses.replace(config, stratify=False), data_dir=tri_dir).test) == 84
        else:
            assert_within_one(s.test, train)
    assert 0 < refused < 12
    with pytest.raises(ConfigError, match="dev_split must be a split name"):
        dataclasses.replace(TRI, dev_split="")


# ---------------------------------------------------------------- the real SST-2 and AG News


def test_sst2_dev_from_validation_test_from_the_labelled_test(shared_data_dir):
    folder = shared_data_dir / "sst2"
    source = {split: read_jsonl(folder / f"{split}.jsonl") for split in ("train", "validation", "test")}
    s = make_splits("sst2", SplitConfig(pool_size=1000, dev_size=64, test_size=500, seed=0))
    assert s.sources == {"dev": "validation", "pool": "train", "test": "test"}
    for subset, split in ((s.dev, "validation"), (s.pool, "train"), (s.test, "test")):
        by_id = {r["idx"]: r for r in source[split]}
        assert all(e.split == split and by_id[e.id]["sentence"] == e.inputs["sentence"] and by_id[e.id]["label"] == e.label for e in subset)
        assert_within_one(subset, [r["label"] for r in source[split]])
    assert_disjoint(s)
    assert not {e.inputs["sentence"] for e in s.dev} & {e.inputs["sentence"] for e in (*s.pool, *s.test)}
    words = {
        name: median(len(e.inputs["sentence"].split()) for e in sub) for name, sub in (("dev", s.dev), ("test", s.test), ("pool", s.pool))
    }
    assert abs(words["dev"] - words["test"]) <= 2  # measured: dev 18.5, test 18
    assert words["pool"] < words["test"] / 2  # the candidates stay train phrases (measured median 7)
    assert "labelled SST test" in get_task("sst2").description


def test_sst2_on_the_hub_draws_dev_and_test_disjointly_from_validation(shared_data_dir, monkeypatch):
    """The hub's test split is unlabelled, so both come from validation; the hub is simulated by
    the local files (tests have no network)."""
    assert get_task("sst2").subset_splits("hub") == {"dev": "validation", "pool": "train", "test": "validation"}
    local = functools.cache(functools.partial(load_examples, "sst2"))

    def from_local_files(cfg, split, location, *, reader):
        assert location.kind == "hub"
        return SplitExamples(local(split), len(local(split)), location)

    monkeypatch.setattr(splits_module, "read_split", from_local_files)
    s = make_splits("sst2", SplitConfig(pool_size=100, dev_size=64, test_size=300, seed=0), source="hub")
    val = [r["label"] for r in read_jsonl(shared_data_dir / "sst2" / "validation.jsonl")]
    assert s.sources["test"] == "validation" and all(e.split == "validation" for e in (*s.dev, *s.test))
    assert_disjoint(s)
    assert_within_one(s.dev, val) and assert_within_one(s.test, val)
    with pytest.raises(DataError, match="asked for 900 test examples but split 'validation' has only 808 left after the other subsets"):
        make_splits("sst2", SplitConfig(pool_size=100, dev_size=64, test_size=900, seed=0), source="hub")


def test_ag_news_subsets_keep_the_label_shares(shared_data_dir):
    folder = shared_data_dir / "ag_news"
    train, test = ([r["label"] for r in read_jsonl(folder / f"{split}.jsonl")] for split in ("train", "test"))
    for dev_size in (24, 64):
        s = make_splits("ag_news", SplitConfig(pool_size=1000, dev_size=dev_size, test_size=500, seed=0))
        assert_within_one(s.dev, train) and assert_within_one(s.pool, train) and assert_within_one(s.test, test)
        assert_disjoint(s)
    dev24 = Counter(e.label for e in make_splits("ag_news", SplitConfig(pool_size=10, dev_size=24, test_size=10)).dev)
    assert sorted(dev24.values()) == [6, 6, 6, 6]  # was 6/8/3/7 unstratified


# ---------------------------------------------------------------- the experiment's data stage


def data_stage_of(config):
    return next(st for st in build_stages(config) if st.name.startswith("data/"))


def test_data_stage_key_holds_the_new_settings():
    base = data_stage_of(load_config(MINIMAL))
    assert base.version == 2
    assert base.params.splits == {"dev": "validation", "pool": "train", "test": "test"}
    assert base.params.split.stratify is True and base.params.split.min_words is None
    for change in ({"stratify": False}, {"min_words": 4}, {"dev_split": "train"}):
        other = data_stage_of(load_config({**MINIMAL, "tasks": [{"name": "sst2", **change}]}))
        assert other.params != base.params
    assert data_stage_of(load_config({**MINIMAL, "tasks": [{"name": "sst2", "dev_split": "train"}]})).params.splits["dev"] == "train"


def test_task_settings_pass_every_split_setting():
    t = load_config({**MINIMAL, "tasks": [{"name": "sst2", "stratify": False, "min_words": 3, "n_candidates": 8}]}).tasks[0]
    assert t.split_config(7) == SplitConfig(pool_size=8, dev_size=32, test_size=300, seed=7, stratify=False, min_words=3)
    for bad, match in (
        ({"stratify": "yes"}, "stratify must be true or false"),
        ({"min_words": 0}, "min_words must be an integer ≥ 1"),
        ({"dev_split": ""}, "dev_split must be a split name"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config({**MINIMAL, "tasks": [{"name": "sst2", **bad}]})
    clash = {
        "name": "x",
        "dev_split": "dev",
        "define": {
            "dev_split": "validation",
            "input_fields": ["q"],
            "template": "{q}",
            "label_names": ["a", "b"],
            "files": {"train": "t.jsonl"},
        },
    }
    with pytest.raises(ConfigError, match="set it in one place"):
        load_config({**MINIMAL, "tasks": [clash]}).tasks[0].task_config()


def test_data_stage_refuses_subsets_drawn_with_other_settings(tri_dir):
    drawn = make_splits(TRI, SplitConfig(pool_size=10, dev_size=5, test_size=5, seed=0), data_dir=tri_dir)
    wanted = SplitConfig(pool_size=10, dev_size=5, test_size=5, seed=0, stratify=False)

    def ctx(split: SplitConfig) -> SimpleNamespace:
        params = DataParams(task="tri", definition=TRI.describe(), split=split, source="local", splits=TRI.subset_splits())
        return SimpleNamespace(params=params, resources=SimpleNamespace(splits=lambda name: drawn))

    with pytest.raises(ConfigError, match=r"tasks\[tri\] asks for .*stratify=False.*TaskSettings.split_config"):
        data_stage(ctx(wanted))
    assert data_stage(ctx(drawn.config))["fingerprint"] == drawn.data_hash
