"""The selector protocol: registry, pool validation, budgets, invariants and determinism for every selector."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.selectors import SELECTORS, Pool, Queries, Selection, get_selector, selector_names
from mechsel.selectors.neufs import NeuFSSelector

N = 40


def _sets(rng: np.random.Generator, n: int) -> list[frozenset]:
    return [
        frozenset((int(l), int(x)) for l in range(2) for x in rng.choice(30, size=int(rng.integers(3, 9)), replace=False)) for _ in range(n)
    ]


@pytest.fixture
def pool() -> Pool:
    rng = np.random.default_rng(1)
    stats = pd.DataFrame(
        rng.normal(size=(N, 4)), columns=pd.MultiIndex.from_tuples([(0, "mean"), (1, "mean"), (0, "kurtosis"), (1, "kurtosis")])
    )
    return Pool.from_texts(
        [f"example number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(N)],
        embeddings=rng.normal(size=(N, 8)).astype(np.float32),
        statistics=stats,
        label_probs=rng.dirichlet([1.0, 1.0, 1.0], size=N),
        neuron_sets=_sets(rng, N),
        representations=rng.normal(size=(N, 6)),
    )


def _confidence(pool: Pool):
    rng = np.random.default_rng(7)
    base = rng.random(len(pool))
    return lambda selected: base + 0.01 * len(selected)


# SAE selectors read SAE columns this pool lacks (tests/unit/test_sae_selectors.py covers them), and
# the relational ones need a model (tests/unit/test_selectors_relational.py runs these invariants on them).
_CORE = [n for n in selector_names() if SELECTORS.get(n).reads != "sae" and "model" not in SELECTORS.get(n).needs_for({})]
ANNOTATORS = [n for n in _CORE if "annotate" in SELECTORS.get(n).modes]
RETRIEVERS = [n for n in _CORE if "retrieve" in SELECTORS.get(n).modes]
PARAMS = {"activation": {"statistic": "kurtosis"}}


def _build(name: str, pool: Pool):
    params = dict(PARAMS.get(name, {}))
    if "confidence_fn" in SELECTORS.get(name).needs_for({}):
        params["confidence_fn"] = _confidence(pool)
    if "probe_training" in SELECTORS.get(name).needs_for({}):
        from mechsel.selectors import ProbeTraining

        rng = np.random.default_rng(11)
        params["probe_training"] = ProbeTraining([f"t{i}" for i in range(20)], rng.normal(size=(20, 6)), rng.normal(size=20))
    return get_selector(name, **params)


def test_registry_lists_every_selector():
    expected = {
        "random",
        "activation",
        "knn",
        "bm25",
        "diversity",
        "kmeans",
        "facility_location",
        "sub_sa",
        "fast_votek",
        "votek",
        "ideal",
        "least_confidence",
        "margin",
        "entropy",
        "neufs",
    }
    assert expected <= set(selector_names())
    assert SELECTORS.get("neufs") is NeuFSSelector


@pytest.mark.parametrize("name", ANNOTATORS)
@pytest.mark.parametrize("k", [1, 7])
def test_annotation_invariants_and_determinism(pool, name, k):
    a = _build(name, pool).select(pool, k, seed=3)
    b = _build(name, pool).select(pool, k, seed=3)
    assert isinstance(a, Selection) and a.selector == name
    assert len(a.indices) == k and len(set(a.indices)) == k
    assert all(0 <= i < N for i in a.indices)
    assert a.ids == tuple(pool.ids[i] for i in a.indices)
    assert a.indices == b.indices and np.allclose(a.scores, b.scores, equal_nan=True)
    assert a.provenance["pool_data_hash"] == pool.data_hash() and a.seed == 3
    json.dumps(a.to_dict())  # serialisable


def test_seed_changes_random_choices(pool):
    picks = {get_selector("random").select(pool, 5, seed=s).indices for s in range(5)}
    assert len(picks) > 1


@pytest.mark.parametrize("name", RETRIEVERS)
def test_retrieval_only_returns_annotated(pool, name):
    annotated = list(range(0, N, 3))
    queries = Queries(texts=[pool.texts[i] for i in (1, 3, 5)], embeddings=pool.embeddings[[1, 3, 5]])
    out = get_selector(name).retrieve(pool, annotated, queries, 4, seed=0)
    assert len(out) == 3
    for q, sel in zip((1, 3, 5), out):
        assert set(sel.indices) <= set(annotated) and len(set(sel.indices)) == len(sel.indices) <= 4
        assert q not in sel.indices  # exact duplicate of the query text is skipped
    again = get_selector(name).retrieve(pool, annotated, queries, 4, seed=0)
    assert [s.indices for s in again] == [s.indices for s in out]


@pytest.mark.parametrize("k", [0, -1])
def test_k_must_be_positive(pool, k):
    with pytest.raises(ConfigError, match="at least 1"):
        get_selector("random").select(pool, k, seed=0)


def test_k_larger_than_pool(pool):
    with pytest.raises(ConfigError, match=f"exceeds the pool size \\({N}\\)"):
        get_selector("fast_votek").select(pool, N + 1, seed=0)
    with pytest.raises(ConfigError, match="annotated set"):
        get_selector("knn").retrieve(pool, [0, 1], pool.embeddings[:1], 3, seed=0)


def test_unknown_selector_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        get_selector("fastvotek")
    assert "fast_votek" in str(err.value) and "ideal" in str(err.value) and "Valid selectors" in str(err.value)


def test_unknown_parameter_lists_fields():
    with pytest.raises(ConfigError, match="Valid parameters: n_neighbors, runs"):
        get_selector("ideal", neighbours=5)


def test_mode_errors_point_to_the_other_method(pool):
    with pytest.raises(ConfigError, match="retrieve"):
        get_selector("knn").select(pool, 3, seed=0)
    with pytest.raises(ConfigError, match="select"):
        get_selector("ideal").retrieve(pool, [0, 1, 2], pool.embeddings[:1], 2, seed=0)


def test_missing_embeddings_say_how_to_compute_them():
    bare = Pool.from_texts(["a", "b", "c"])
    with pytest.raises(DataError, match="embed_texts"):
        get_selector("diversity").select(bare, 2, seed=0)
    with pytest.raises(DataError, match="label_probs"):
        get_selector("entropy").select(bare, 2, seed=0)


def test_wrong_length_embeddings():
    with pytest.raises(DataError, match="embeddings has 2 rows but the pool has 3"):
        Pool.from_texts(["a", "b", "c"], embeddings=np.zeros((2, 4), dtype=np.float32))


def test_nan_embeddings_and_bad_probs():
    e = np.ones((2, 3), dtype=np.float32)
    e[1, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        Pool.from_texts(["a", "b"], embeddings=e)
    with pytest.raises(DataError, match="softmax"):
        Pool.from_texts(["a", "b"], label_probs=np.array([[0.5, 0.6], [1.0, 0.0]]))


def test_pool_ids_must_be_unique_and_aligned():
    with pytest.raises(DataError, match="unique"):
        Pool(ids=[1, 1], texts=["a", "b"])
    with pytest.raises(DataError, match="2 ids but 3 texts"):
        Pool(ids=[1, 2], texts=["a", "b", "c"])


def test_retrieval_rejects_bad_annotated(pool):
    knn = get_selector("knn")
    with pytest.raises(DataError, match="empty"):
        knn.retrieve(pool, [], pool.embeddings[:1], 1, seed=0)
    with pytest.raises(DataError, match="duplicates"):
        knn.retrieve(pool, [1, 1], pool.embeddings[:1], 1, seed=0)
    with pytest.raises(DataError, match="pool positions"):
        knn.retrieve(pool, [1, N], pool.embeddings[:1], 1, seed=0)


def test_config_and_params_are_exclusive():
    from mechsel.selectors.ideal import IdealConfig, IdealSelector

    sel = IdealSelector(IdealConfig(runs=3))
    assert sel.config.runs == 3
    with pytest.raises(ConfigError, match="not both"):
        IdealSelector(IdealConfig(), runs=3)
