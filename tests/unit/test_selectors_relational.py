"""Relational selectors (``qk_affinity``, ``fv_alignment``) on tiny models: the selector
invariants, a planted single head against a hand q·k computation, function-vector alignment
against a hand computation, the diversity term on a pool with duplicates, and teaching errors."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import numpy as np
import pytest
import torch

from mechsel.errors import ConfigError, DataError
from mechsel.experiment.config import SelectorRun
from mechsel.experiment.stages.select import _selector
from mechsel.heads import FunctionVectorConfig, InductionConfig, function_vector_scores, induction_scores, task_function_vector
from mechsel.models import CharTokenizer, tiny_model
from mechsel.selectors import SELECTORS, FVAlignmentSelector, Pool, QKAffinitySelector, Selection, get_selector, selector_names
from mechsel.selectors.base import FAMILIES
from mechsel.selectors.relational import greedy_mmr
from mechsel.tasks import Example, TaskConfig
from mechsel.tasks.base import TASKS

TOY = TaskConfig(
    name="toy_relational", template="In: {text}\nOut: ", input_fields=("text",), label_names=("a", "b"), verbalizers=("a", "b")
)
WORDS = ["cat", "horse", "owl", "ant", "eagle", "bee", "yak", "lion", "emu", "sardine", "crab", "wolf"]
LABELS = [i % 2 for i in range(len(WORDS))]
FV = {"task": TOY.name, "n_heads": 3, "n_prompts": 3, "n_shots": 3}
"""Small function-vector settings for the 8 heads of the tiny model."""


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_layers=2, n_heads=4, n_ctx=128, seed=7)


@pytest.fixture(autouse=True)
def _task_and_cache(tmp_path, monkeypatch):
    """The toy task registered for the test only, and head scores cached in a temporary folder."""
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    TASKS.add(TOY.name, TOY)
    yield
    TASKS._items.pop(TOY.name, None)


@pytest.fixture
def pool() -> Pool:
    return Pool.from_texts(WORDS, labels=LABELS)


def _chars(text: str) -> list[int]:
    return [CharTokenizer.bos_token_id, *CharTokenizer().encode(text)]


def _check_selection(sel: Selection, pool: Pool, name: str, k: int, seed: int) -> None:
    assert isinstance(sel, Selection) and sel.selector == name and sel.seed == seed
    assert len(sel.indices) <= k and len(set(sel.indices)) == len(sel.indices)
    assert all(0 <= i < len(pool) for i in sel.indices)
    assert sel.ids == tuple(pool.ids[i] for i in sel.indices)
    assert np.isfinite(sel.scores).all() and len(sel.scores) == len(sel.indices)
    assert sel.provenance["pool_data_hash"] == pool.data_hash()
    json.dumps(sel.to_dict())  # serialisable


# ---- self-description ------------------------------------------------------------------------
def test_both_are_registered_and_describe_themselves():
    assert {"qk_affinity", "fv_alignment"} <= set(selector_names()) and "internal-relational" in FAMILIES
    qk, fv = SELECTORS.get("qk_affinity"), SELECTORS.get("fv_alignment")
    assert qk is QKAffinitySelector and fv is FVAlignmentSelector
    assert qk.family == fv.family == "internal-relational"
    assert qk.modes == frozenset({"retrieve"}) and fv.modes == frozenset({"annotate"})
    assert qk.needs_for({}) == {"model"} and qk.needs_for({"task": "sst2"}) == {"model", "labels"}
    assert fv.needs_for({"task": "sst2"}) == {"model", "labels"}
    assert SelectorRun(selector="qk_affinity").family == "internal-relational"  # the class's own family, no list in the pipeline


def test_the_experiment_passes_the_model(model):
    sel, _ = _selector(SelectorRun(selector="fv_alignment", params=FV), None, None, model=lambda: model, confidence_fn=lambda: None)
    assert isinstance(sel, FVAlignmentSelector) and cast(Any, sel).model is model


# ---- invariants ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params", [{}, {"task": TOY.name}, {"similarity": "logit", "n_heads": 2}, {"lam": 0.5, "heads": [[0, 1], [1, 3]]}], ids=str
)
def test_qk_retrieval_invariants_and_determinism(model, pool, params):
    annotated = list(range(0, len(WORDS), 2))
    queries = [WORDS[0], WORDS[4], "tiger"]
    out = get_selector("qk_affinity", model=model, **params).retrieve(pool, annotated, queries, 4, seed=3)
    again = get_selector("qk_affinity", model=model, **params).retrieve(pool, annotated, queries, 4, seed=9)
    assert len(out) == 3
    for q, sel in zip(queries, out):
        _check_selection(sel, pool, "qk_affinity", 4, 3)
        assert set(sel.indices) <= set(annotated) and len(sel.indices) == 4
        assert q not in [pool.texts[i] for i in sel.indices]  # an exact duplicate of the query is skipped
    assert out[0].provenance["skipped_duplicates"] == 1 and out[2].provenance["skipped_duplicates"] == 0
    assert [s.indices for s in again] == [s.indices for s in out]  # deterministic; the seed changes nothing
    np.testing.assert_allclose([s.scores for s in again], [s.scores for s in out])


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_fv_annotation_invariants_and_determinism(model, pool, k, lam):
    a = get_selector("fv_alignment", model=model, lam=lam, **FV).select(pool, k, seed=3)
    b = get_selector("fv_alignment", model=model, lam=lam, **FV).select(pool, k, seed=4)
    _check_selection(a, pool, "fv_alignment", k, 3)
    assert len(a.indices) == k
    assert a.indices == b.indices and np.allclose(a.scores, b.scores)
    assert len(a.provenance["heads"]) == 3 and a.provenance["fv_norm"] > 0


# ---- qk_affinity: a planted head against a hand computation -----------------------------------
@torch.no_grad()
def _hand_qk(model, layer: int, head: int, text_q: str, text_k: str) -> tuple[float, float]:
    """(cosine, q·k / sqrt(d_head)) of head (layer, head) between two texts, each BOS + text alone."""
    name = f"blocks.{layer}.hook_resid_pre"

    def resid(text: str) -> torch.Tensor:
        return model.run_with_cache(torch.tensor([_chars(text)]), names_filter=name)[1][name][0, -1].double()

    attn, ln = model.blocks[layer].attn, model.blocks[layer].ln1
    cfg = model.cfg

    def normed(x: torch.Tensor) -> torch.Tensor:  # TransformerLens RMSNorm, by hand
        return x / torch.sqrt((x**2).mean() + cfg.eps) * ln.w.double()

    q = normed(resid(text_q)) @ attn.W_Q[head].double() + attn.b_Q[head].double()
    k = normed(resid(text_k)) @ attn.W_K[head].double() + attn.b_K[head].double()
    return float(q @ k / (q.norm() * k.norm())), float(q @ k / math.sqrt(cfg.d_head))


@pytest.mark.parametrize("similarity", ["cosine", "logit"])
def test_qk_affinity_of_one_head_matches_a_hand_computation(model, pool, similarity):
    layer, head = 1, 2
    annotated = [1, 2, 3, 5, 8, 9, 11]
    query = "tiger"
    sel = get_selector("qk_affinity", model=model, heads=[[layer, head]], similarity=similarity)
    got = sel.retrieve(pool, annotated, [query], 3, seed=0)[0]
    hand = {i: _hand_qk(model, layer, head, query, WORDS[i])[similarity == "logit"] for i in annotated}
    best = sorted(annotated, key=lambda i: (-hand[i], i))[:3]
    assert got.indices == tuple(best[::-1])  # most relevant last
    np.testing.assert_allclose(got.scores, [hand[i] for i in best[::-1]], rtol=1e-4, atol=1e-6)
    assert got.provenance["heads"] == [(layer, head)]


def test_qk_default_heads_are_the_top_induction_heads(model, pool):
    sel = cast(Any, get_selector("qk_affinity", model=model, n_heads=3))  # register_selector types the class as type[Selector]
    assert sel.heads() == induction_scores(model, InductionConfig()).top(3)
    # two heads average their per-head values
    two = get_selector("qk_affinity", model=model, heads=[[0, 1], [1, 2]]).retrieve(pool, [0, 1, 2], ["tiger"], 3, seed=0)[0]
    mean = {i: np.mean([_hand_qk(model, L, h, "tiger", WORDS[i])[0] for L, h in [(0, 1), (1, 2)]]) for i in (0, 1, 2)}
    np.testing.assert_allclose(two.scores, [mean[i] for i in two.indices], rtol=1e-4, atol=1e-6)


def test_qk_with_a_task_reads_the_query_cue_and_the_candidates_label(model, pool, monkeypatch):
    import mechsel.selectors.relational as relational

    seen: list[tuple[int, ...]] = []
    real = relational.run_last_token

    def spy(model, rows, recorder, stop):
        seen.extend(rows)
        return real(model, rows, recorder, stop)

    monkeypatch.setattr(relational, "run_last_token", spy)
    get_selector("qk_affinity", model=model, task=TOY.name, heads=[[1, 0]]).retrieve(pool, [0, 1], ["tiger"], 2, seed=0)
    assert tuple(_chars("In: cat\nOut: a")) in seen and tuple(_chars("In: horse\nOut: b")) in seen
    assert tuple(_chars("In: tiger\nOut: ")) in seen


# ---- fv_alignment: alignment against a hand computation ----------------------------------------
@torch.no_grad()
def test_fv_alignment_matches_a_hand_computation(model, pool):
    k = 4
    got = get_selector("fv_alignment", model=model, lam=0.0, **FV).select(pool, k, seed=0)
    examples = [Example(id=i, inputs={"text": w}, label=LABELS[i], split="pool") for i, w in enumerate(WORDS)]
    scores = function_vector_scores(model, TOY, examples, FunctionVectorConfig(n_prompts=3, n_shots=3, seed=0, batch_size=16))
    heads = scores.top(3)
    fv = task_function_vector(model, scores, 3).double()
    layers = sorted({L for L, _ in heads})
    names = [f"blocks.{L}.attn.hook_z" for L in layers]
    align = []
    for w, label in zip(WORDS, LABELS):
        tokens = torch.tensor([_chars(f"In: {w}\nOut: {'ab'[label]}\n\nIn: N/A\nOut: ")])
        cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)[1]
        out = torch.stack([cache[f"blocks.{L}.attn.hook_z"][0, -1, h].double() @ model.W_O[L, h].double() for L, h in heads]).sum(0)
        align.append(float(out @ fv / (out.norm() * fv.norm())))
    best = sorted(range(len(WORDS)), key=lambda i: (-align[i], i))[:k]
    assert got.indices == tuple(best)
    np.testing.assert_allclose(got.scores, [align[i] for i in best], rtol=1e-4, atol=1e-6)
    assert got.provenance["heads"] == heads


# ---- the diversity term ----------------------------------------------------------------------
def test_greedy_mmr_by_hand():
    rel = np.array([1.0, 1.0, 0.9, 0.2])
    unit = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert greedy_mmr(rel, unit, 0.0, 3) == ([0, 1, 2], [1.0, 1.0, 0.9])
    picks, gains = greedy_mmr(rel, unit, 0.5, 3)
    assert picks == [0, 2, 1] and np.allclose(gains, [1.0, 0.9, 0.5])  # an anti-similar row gets no bonus


def test_fv_diversity_skips_duplicates(model):
    words, labels = WORDS * 3, LABELS * 3  # every example three times (the pool's FV is built from these)
    dup_pool = Pool.from_texts(words, labels=labels)
    plain = get_selector("fv_alignment", model=model, lam=0.0, **FV).select(dup_pool, 3, seed=0)
    diverse = get_selector("fv_alignment", model=model, lam=1.0, **FV).select(dup_pool, 3, seed=0)
    best = plain.indices[0]
    assert set(plain.indices) == {best, best + len(WORDS), best + 2 * len(WORDS)}  # identical prompts: all three copies
    assert len({words[i] for i in diverse.indices}) == 3 and diverse.indices[0] == best


def test_qk_diversity_skips_duplicates(model):
    sel = get_selector("qk_affinity", model=model, heads=[[1, 2]])
    top = sel.retrieve(Pool.from_texts(WORDS), list(range(len(WORDS))), ["tiger"], 1, seed=0)[0].indices[0]
    words = [*WORDS, WORDS[top], WORDS[top]]
    dup_pool = Pool.from_texts(words)
    everything = list(range(len(words)))
    plain = sel.retrieve(dup_pool, everything, ["tiger"], 3, seed=0)[0]
    diverse = get_selector("qk_affinity", model=model, heads=[[1, 2]], lam=1.0).retrieve(dup_pool, everything, ["tiger"], 3, seed=0)[0]
    assert {words[i] for i in plain.indices} == {WORDS[top]}
    assert len({words[i] for i in diverse.indices}) == 3 and diverse.indices[-1] == plain.indices[-1]


# ---- errors that teach -----------------------------------------------------------------------
def test_errors_teach(model, pool):
    with pytest.raises(ConfigError, match="needs model="):
        get_selector("qk_affinity")
    with pytest.raises(ConfigError, match="needs model="):
        get_selector("fv_alignment", task=TOY.name)
    with pytest.raises(ConfigError, match="task is required"):
        get_selector("fv_alignment", model=model)
    with pytest.raises(ConfigError, match="toy_relational"):  # unknown task: the registered ones are listed
        get_selector("fv_alignment", model=model, task="toy_relatonal")
    for lam in (-0.5, float("nan"), "high"):
        with pytest.raises(ConfigError, match="lam must be a finite number ≥ 0"):
            get_selector("fv_alignment", model=model, task=TOY.name, lam=lam)
        with pytest.raises(ConfigError, match="lam must be a finite number ≥ 0"):
            get_selector("qk_affinity", model=model, lam=lam)
    generation = TaskConfig(
        name="toy_relational_gen", template="{text} ->", input_fields=("text",), kind="generation", reference_field="out"
    )
    TASKS.add(generation.name, generation)
    try:
        with pytest.raises(ConfigError, match="needs a classification task"):
            get_selector("qk_affinity", model=model, task=generation.name)
    finally:
        TASKS._items.pop(generation.name, None)
    with pytest.raises(ConfigError, match="similarity must be one of"):
        get_selector("qk_affinity", model=model, similarity="dot")
    with pytest.raises(ConfigError, match="do not exist"):
        get_selector("qk_affinity", model=model, heads=[[2, 0]]).retrieve(pool, [0, 1], ["tiger"], 1, seed=0)
    with pytest.raises(ConfigError, match="exceeds the pool size"):
        get_selector("fv_alignment", model=model, **FV).select(pool, len(WORDS) + 1, seed=0)
    with pytest.raises(ConfigError, match="exceeds the annotated set size"):
        get_selector("qk_affinity", model=model).retrieve(pool, [0, 1], ["tiger"], 3, seed=0)
    with pytest.raises(ConfigError, match="retrieve"):
        get_selector("qk_affinity", model=model).select(pool, 2, seed=0)
    with pytest.raises(DataError, match="needs pool.labels"):
        get_selector("fv_alignment", model=model, **FV).select(Pool.from_texts(WORDS), 2, seed=0)
    unlabelled = Pool.from_texts(WORDS, labels=[-1] * len(WORDS))
    with pytest.raises(DataError, match="needs a label in 0..1"):
        get_selector("qk_affinity", model=model, task=TOY.name).retrieve(unlabelled, [0, 1], ["tiger"], 1, seed=0)
