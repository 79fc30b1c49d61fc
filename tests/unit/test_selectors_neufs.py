"""NeuFS: neuron sets on a tiny model against a cached-activation computation; clustering on hand-built sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import alone_prompt
from mechsel.selectors import Pool, get_selector, neuron_sets
from mechsel.selectors.neufs import SetMatrix

TEXTS = ["a fine film", "dull", "the plot is thin but the actors shine", "ok", "what a waste of time!"]


def _jaccard(a: frozenset, b: frozenset) -> float:
    return 0.0 if not (a | b) else 1 - len(a & b) / len(a | b)


def test_neuron_sets_match_cached_contributions(tiny):
    torch.manual_seed(1)
    with torch.no_grad():
        tiny.ln_final.w.copy_(torch.rand_like(tiny.ln_final.w) + 0.5)  # exercise the final-norm fold
    prompts = [alone_prompt(tiny.tokenizer, t, bos_token_id=1) for t in TEXTS]
    answers = [40, 50, 60]
    got = neuron_sets(tiny, prompts, answers, top_n=6, batch_size=2)
    got_pos = neuron_sets(tiny, prompts, answers, top_n=6, batch_size=3, positive_only=True)
    for p, s, s_pos in zip(prompts, got, got_pos):
        logits, cache = tiny.run_with_cache(torch.tensor([p.tokens]))
        pred = answers[int(logits[0, -1, answers].argmax())]
        readout = tiny.W_U[:, pred] * tiny.ln_final.w
        want, want_pos = set(), set()
        for layer in range(tiny.cfg.n_layers):
            act = cache[f"blocks.{layer}.mlp.hook_post"][0, -1]
            contrib = act * (tiny.blocks[layer].mlp.W_out @ readout)
            top = torch.argsort(contrib, descending=True)[:6].tolist()
            want |= {(layer, n) for n in top}
            want_pos |= {(layer, n) for n in top if contrib[n] > 0}
        assert s == want
        assert s_pos == want_pos
        assert len(s) == 6 * tiny.cfg.n_layers


def test_neuron_sets_bad_inputs(tiny):
    prompts = [alone_prompt(tiny.tokenizer, "hi", bos_token_id=1)]
    with pytest.raises(ConfigError, match="top_n"):
        neuron_sets(tiny, prompts, [5], top_n=tiny.cfg.d_mlp + 1)
    with pytest.raises(DataError, match="answer_token_ids"):
        neuron_sets(tiny, prompts, [10**6], top_n=3)


def test_jaccard_distances_dense_and_sparse():
    rng = np.random.default_rng(0)
    sparse_sets = [frozenset((0, int(x)) for x in rng.choice(500, size=int(rng.integers(0, 6)), replace=False)) for _ in range(15)]
    dense_sets = [frozenset((1, int(x)) for x in rng.choice(8, size=int(rng.integers(0, 8)), replace=False)) for _ in range(15)]
    for sets in (sparse_sets, dense_sets):
        m = SetMatrix(sets)
        d = m.distances(np.arange(15), np.arange(15))
        assert np.allclose(d, [[_jaccard(a, b) for b in sets] for a in sets])
    assert not SetMatrix(sparse_sets).dense and SetMatrix(dense_sets).dense


def _groups() -> list[frozenset]:
    rng = np.random.default_rng(3)
    sets = []
    for layer, start in ((0, 0), (0, 40), (1, 0)):
        core = [(layer, start + i) for i in range(10)]
        for _ in range(5):
            drop = rng.choice(10, size=int(rng.integers(0, 3)), replace=False)
            extra = [(layer, start + 10 + int(x)) for x in rng.choice(5, size=int(rng.integers(0, 4)), replace=False)]
            sets.append(frozenset(c for i, c in enumerate(core) if i not in drop) | frozenset(extra))
    return sets


def _mm(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.zeros_like(x)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tau", [0.5, 0.0, 1.0])
def test_neufs_is_a_kmedoids_fixed_point_with_the_pick_rule(seed, tau):
    sets = _groups()
    pool = Pool.from_texts([f"t{i}" for i in range(15)], neuron_sets=sets)
    got = get_selector("neufs", tau=tau).select(pool, 3, seed=seed)
    medoids = got.provenance["medoids"]
    dist = np.array([[_jaccard(a, sets[m]) for m in medoids] for a in sets])
    for c, m in enumerate(medoids):
        dist[m, c] = -1.0  # a medoid belongs to its own cluster
    assign = dist.argmin(axis=1)
    for c, m in enumerate(medoids):
        members = [i for i in range(15) if assign[i] == c]
        cost = lambda x: sum(_jaccard(sets[x], sets[o]) for o in members)  # noqa: E731
        assert m == min(members, key=lambda x: (cost(x), x))  # each medoid minimises its cluster's total distance
        d = np.array([_jaccard(sets[i], sets[m]) for i in members])
        size = np.array([len(sets[i]) for i in members], dtype=float)
        score = tau * _mm(size) + (1 - tau) * (1 - _mm(d))
        assert got.indices[c] == members[int(np.argmax(score))]
        assert got.scores[c] == pytest.approx(score.max())


def test_neufs_recovers_well_separated_groups():
    sets = _groups()
    pool = Pool.from_texts([f"t{i}" for i in range(15)], neuron_sets=sets)
    recovered = [sorted(i // 5 for i in get_selector("neufs").select(pool, 3, seed=s).indices) == [0, 1, 2] for s in range(20)]
    assert sum(recovered) >= 16  # k-means++ seeding can put two medoids in one group; alternation may not undo it


def test_neufs_with_fewer_distinct_sets_than_k():
    same = frozenset({(0, 1), (0, 2)})
    pool = Pool.from_texts(["a", "b", "c", "d"], neuron_sets=[same, same, same, frozenset({(0, 3)})])
    got = get_selector("neufs").select(pool, 3, seed=0)
    assert len(set(got.indices)) == 3
