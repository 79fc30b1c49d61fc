"""The SAE causal test: the ablation hook edits exactly the demonstration tokens, the empty set is
the clean run, a planted latent is found (random stand-ins and an inert layer are not), the paired
test is scipy's, and random stand-ins come from their target's frequency bin."""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from scipy import stats as sps

from mechsel.errors import ConfigError, DataError
from mechsel.icl import ICLRunner
from mechsel.models import tiny_model
from mechsel.models.tiny import CharTokenizer
from mechsel.plots.sae_causal import causal_effects
from mechsel.sae.causal import (
    CausalTestConfig,
    ablate_latents,
    causal_test,
    demo_positions,
    frequency_bins,
    matched_random_latents,
    rank_latents,
    summarise_effects,
)
from mechsel.sae.statistics import collect_sae
from mechsel.tasks import Example, TaskConfig

TOY = TaskConfig(
    name="toy_xy",
    template="In: {sentence}\nOut: ",
    input_fields=("sentence",),
    label_names=("x", "y"),
    verbalizers=("x", "y"),
)
"""One-character verbalisers: label 1's answer is the single token ``y``."""
WORDS = ["great", "dull", "fun", "bad", "gem", "mess", "warm", "flat", "bold", "limp", "fresh", "stale"]
PLANTED = 0
"""The planted latent's index."""


def examples(n: int, split: str, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    return [Example(id=i, inputs={"sentence": " ".join(rng.choice(WORDS, 2))}, label=i % 2, split=split) for i in range(n)]


def meta(layer: int) -> SAEMetadata:
    return SAEMetadata(hook_name=f"blocks.{layer}.hook_mlp_out", model_name="tiny-random", model_from_pretrained_kwargs={})


@pytest.fixture(scope="module")
def planted():
    """A tiny model whose layer-0 attention writes nothing, so ``blocks.0.hook_mlp_out`` is a
    function of the token alone, and an SAE whose latent 0 fires only on the token ``y`` (label 1's
    verbaliser, activation 20) and writes a large direction; every other latent fires at its own
    rate but writes nothing (zero decoder rows), so ablating it changes nothing."""
    model = tiny_model(n_layers=2, n_ctx=256, seed=5)
    with torch.no_grad():
        model.blocks[0].attn.W_O.zero_()
    ids = torch.arange(3, model.cfg.d_vocab)
    _, cache = model.run_with_cache(ids[None], names_filter="blocks.0.hook_mlp_out")
    acts = cache["blocks.0.hook_mlp_out"][0]
    y_row = CharTokenizer().encode("y")[0] - 3
    y = acts[y_row]
    u = y - torch.cat([acts[:y_row], acts[y_row + 1 :]]).mean(0)
    others = torch.cat([acts[:y_row], acts[y_row + 1 :]]) @ u
    top_other, y_proj = float(others.max()), float(y @ u)
    assert y_proj > top_other + 1.0, "the planted direction must single out the token 'y'"
    tau = (y_proj + top_other) / 2

    def sae_at(layer: int) -> StandardSAE:
        g = torch.Generator().manual_seed(layer)
        sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=24, metadata=meta(layer)))
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(32, 24, generator=g) / 32**0.5 / acts.norm(dim=1).mean())
            sae.b_enc.copy_(0.15 * torch.rand(24, generator=g) - 0.1)
            sae.W_enc[:, PLANTED] = u * 20.0 / (y_proj - tau)
            sae.b_enc[PLANTED] = -tau * 20.0 / (y_proj - tau)
            sae.W_dec.zero_()
            sae.b_dec.zero_()
            v = torch.randn(32, generator=g)
            sae.W_dec[PLANTED] = v / v.norm() * 2.0 * y.norm()
        return sae.eval()

    return model, {0: sae_at(0), 1: sae_at(1)}


@pytest.fixture(scope="module")
def planted_run(planted):
    model, saes = planted
    runner = ICLRunner(model, TOY)
    cfg = CausalTestConfig(m_values=(1,), ablation=("zero", "mean"), n_random_draws=3, n_queries=24, n_frequency_bins=4, progress=False)
    return runner, causal_test(runner, saes, examples(16, "train", 0), examples(30, "test", 1), cfg)


def random_sae(layer: int, d_sae: int = 40) -> StandardSAE:
    torch.manual_seed(layer + 11)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=d_sae, metadata=meta(layer)))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return sae.eval()


# ------------------------------------------------------------------------------------ (1), (2) the hook
@pytest.mark.parametrize("include_template", [False, True])
def test_hook_edits_only_demonstration_tokens(include_template):
    model = tiny_model(n_layers=2, n_ctx=256, seed=3)
    sae = random_sae(0)
    runner = ICLRunner(model, TOY)
    pool = examples(4, "train", 2)
    prompt = runner.prompts([pool[:3]], examples(1, "test", 3))[0]
    positions = demo_positions(prompt, include_template)
    roles = np.array(prompt.roles)
    kinds = np.array([seg.kind for seg in prompt.segments])[prompt.segment_ids()]
    want_positions = [i for i, (k, r) in enumerate(zip(kinds, roles)) if k == "demo" and (include_template or r != "template")]
    assert list(positions) == want_positions
    inside = np.zeros(len(prompt), dtype=bool)
    inside[list(positions)] = True
    assert not inside[0] and not inside[kinds == "query"].any() and not inside[kinds == "sep"].any()
    tokens = torch.tensor([prompt.tokens])
    name = "blocks.0.hook_mlp_out"
    _, clean = model.run_with_cache(tokens, names_filter=name)
    x = clean[name][0]
    f = sae.encode(x).detach()
    latents = torch.argsort(-(f[inside] > 0).sum(0))[:3]  # latents that fire on demonstration tokens
    baseline = torch.tensor([0.0, 0.5, 0.25])
    with ablate_latents(model, sae, latents, positions, baseline):
        _, edited = model.run_with_cache(tokens, names_filter=name)
    x2 = edited[name][0]
    assert torch.equal(x2[~torch.from_numpy(inside)], x[~torch.from_numpy(inside)])  # bit-identical outside
    want = x - (f[:, latents] - baseline) @ sae.W_dec[latents].detach()
    torch.testing.assert_close(x2[inside], want[inside])
    fired = (f[inside][:, latents] != baseline).any(1)
    assert fired.any() and (x2[inside][fired] != x[inside][fired]).any(1).all()


def test_empty_set_and_silent_latents_leave_the_run_unchanged():
    model = tiny_model(n_layers=2, n_ctx=256, seed=3)
    sae = random_sae(0)
    runner = ICLRunner(model, TOY)
    prompt = runner.prompts([examples(3, "train", 2)], examples(1, "test", 3))[0]
    tokens, positions = torch.tensor([prompt.tokens]), demo_positions(prompt)
    clean = model(tokens)
    with ablate_latents(model, sae, [], positions):
        assert torch.equal(model(tokens), clean)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.hook_mlp_out")
    silent = torch.nonzero((sae.encode(cache["blocks.0.hook_mlp_out"][0]) <= 0).all(0)).flatten()
    assert silent.numel() > 0
    with ablate_latents(model, sae, silent[:2], positions):  # zero-ablating latents that never fire
        assert torch.equal(model(tokens), clean)
    assert all(not hp._forward_hooks for hp in model.hook_dict.values())  # the context removed its hook


# ------------------------------------------------------------------------------------ (3) planted / null
def test_planted_latent_is_singled_out_and_its_ablation_found(planted_run):
    _, res = planted_run
    sets = res.latent_sets.set_index(["layer", "latent_set"])
    assert sets.loc[(0, "targeted"), "latents"] == [PLANTED]
    t = res.table.set_index(["layer", "ablation", "latent_set", "metric"])
    for ablation in ("zero", "mean"):
        assert t.loc[(0, ablation, "targeted", "gold_logprob"), "significant"]
        diff = t.loc[(0, ablation, "targeted - random", "gold_logprob")]
        assert diff["significant"] and diff["p_value"] < 0.01 and not diff["ci_low"] <= 0 <= diff["ci_high"]
        for d in range(3):  # the stand-ins write nothing: no change at all
            row = t.loc[(0, ablation, f"random draw {d}", "gold_logprob")]
            assert row["effect"] == 0 and not row["significant"]


def test_inert_layer_is_not_found(planted_run):
    """Demonstration tokens' MLP output at the last layer cannot reach the answer position: the
    same planted latent there has no effect, so nothing is significant."""
    _, res = planted_run
    last = res.table[res.table["layer"] == 1]
    assert not last["significant"].any() and (last["effect"] == 0).all()


def test_paired_test_is_calibrated_under_the_null():
    """Targeted and random effects drawn from one distribution: the targeted - random test rejects
    at about its level (120 replicates at alpha 0.05: 0-0.12 holds 99.9% of the binomial, and no
    rejection at all has probability 0.002)."""
    rng = np.random.default_rng(0)
    n_rep, n_q, n_draws = 120, 20, 2  # 20 queries: scipy's signed-rank test permutes (slowly) below 14 tied pairs
    frames = []
    for rep in range(n_rep):
        clean = rng.normal(size=n_q)
        frames.append(fake_runs(rep, "targeted", -1, clean, clean + rng.normal(0.3, 1.0, size=n_q), rng))
        for d in range(n_draws):  # each draw has n_draws times the variance, so their mean matches the targeted one's
            frames.append(fake_runs(rep, "random draw", d, clean, clean + rng.normal(0.3, np.sqrt(n_draws), size=n_q), rng))
    table = summarise_effects(pd.concat(frames, ignore_index=True))
    diff = table[(table["kind"] == "difference") & (table["metric"] == "gold_logprob")]
    assert len(diff) == n_rep
    assert 0 < diff["significant"].mean() <= 0.12


def fake_runs(layer, kind, draw, clean, ablated, rng):
    n = len(clean)
    acc_clean = rng.integers(0, 2, size=n).astype(float)
    acc = rng.integers(0, 2, size=n).astype(float)
    return pd.DataFrame(
        {
            "layer": layer,
            "m": 1,
            "ablation": "zero",
            "latent_set": kind if draw < 0 else f"random draw {draw}",
            "kind": kind,
            "draw": draw,
            "query_id": np.arange(n),
            "accuracy": acc,
            "clean_accuracy": acc_clean,
            "gold_logprob": ablated,
            "clean_gold_logprob": clean,
        }
    )


# ------------------------------------------------------------------------------------ (4) paired test
def test_paired_test_matches_scipy_and_accuracy_intervals_stay_in_range():
    rng = np.random.default_rng(1)
    clean = rng.normal(size=15)
    frames = [fake_runs(0, "targeted", -1, clean, clean + rng.normal(0.5, 1, 15), rng)]
    frames += [fake_runs(0, "random draw", d, clean, clean + rng.normal(0, 1, 15), rng) for d in range(4)]
    # accuracy: almost every query flips from wrong to right under the targeted ablation
    frames[0]["clean_accuracy"] = 0.0
    frames[0]["accuracy"] = np.r_[np.ones(14), 0.0]
    per_query = pd.concat(frames, ignore_index=True)
    table = summarise_effects(per_query).set_index(["latent_set", "metric"])
    runs = per_query.pivot(index="query_id", columns="latent_set")
    for metric in ("gold_logprob", "accuracy"):
        d_t = runs[metric]["targeted"] - runs[f"clean_{metric}"]["targeted"]
        d_r = np.mean([runs[metric][f"random draw {d}"] - runs[f"clean_{metric}"]["targeted"] for d in range(4)], axis=0)
        want = sps.ttest_rel(d_t, d_r)
        got = table.loc[("targeted - random", metric)]
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-10)
        assert got["t_stat"] == pytest.approx(want.statistic, rel=1e-10)
        assert got["effect"] == pytest.approx(float(np.mean(d_t - d_r)))
        one = sps.ttest_rel(runs[metric]["targeted"], runs[f"clean_{metric}"]["targeted"])
        assert table.loc[("targeted", metric), "p_value"] == pytest.approx(one.pvalue, rel=1e-10)
        ci = sps.t.interval(0.95, 14, loc=float(np.mean(d_t - d_r)), scale=sps.sem(d_t - d_r))
        if metric == "gold_logprob":
            assert (got["ci_low"], got["ci_high"]) == pytest.approx(ci)
    acc = table.xs("accuracy", level="metric")
    assert (acc["ci_low"] >= -1).all() and (acc["ci_high"] <= 1).all()
    raw = sps.t.interval(0.95, 14, loc=14 / 15, scale=sps.sem(np.r_[np.ones(14), 0.0]))
    assert raw[1] > 1 and acc.loc["targeted", "ci_high"] == 1.0  # the raw t-interval spills over 1; ours does not
    # the rank of the targeted effect among the draws' effects, counted by hand
    for metric in ("gold_logprob", "accuracy"):
        clean_m = runs[f"clean_{metric}"]["targeted"]
        target = abs(float((runs[metric]["targeted"] - clean_m).mean()))
        draws = [abs(float((runs[metric][f"random draw {d}"] - clean_m).mean())) for d in range(4)]
        want = (1 + sum(x >= target for x in draws)) / 5
        assert table.loc[("targeted - random", metric), "draw_rank_p"] == pytest.approx(want)


# ------------------------------------------------------------------------------------ (5) matched draws
def test_frequency_bins_and_matched_draws():
    rng = np.random.default_rng(0)
    freq = np.r_[np.zeros(10), rng.uniform(0.001, 0.9, size=90), [0.5] * 5]
    bins = frequency_bins(freq, 5)
    assert (bins[freq == 0] == -1).all() and set(bins[freq > 0]) == set(range(5))
    assert len(set(bins[freq == 0.5])) == 1  # equal frequencies share a bin
    order = np.argsort(freq[freq > 0])
    assert (np.diff(bins[freq > 0][order]) >= 0).all()  # bins are ordered by frequency
    targets = np.array([11, 40, 99, 60])
    draws = matched_random_latents(bins, targets, 400, np.random.default_rng(3))
    assert draws.shape == (400, 4)
    assert (bins[draws] == bins[targets]).all()
    assert not np.isin(draws, targets).any()
    assert all(len(set(row)) == 4 for row in draws)
    members = set(np.flatnonzero(bins == bins[targets[0]])) - set(targets.tolist())
    assert set(draws[:, 0]) == members  # every member of the bin gets drawn


def test_exhausted_bin_borrows_from_the_nearest(caplog):
    bins = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    with caplog.at_level(logging.WARNING, logger="mechsel.sae.causal"):
        draws = matched_random_latents(bins, [0, 1], 5, np.random.default_rng(0))
    assert (bins[draws] == 1).all() and "neighbouring frequency bin" in caplog.text


# ------------------------------------------------------------------------------------ the rest
def test_reference_statistics_equal_a_direct_encode(planted_run, planted):
    runner, res = planted_run
    model, saes = planted
    f_all = []
    for e in examples(16, "train", 0):
        prompt = runner.encoder.demonstrations([e])
        _, cache = model.run_with_cache(torch.tensor([prompt.tokens]), names_filter="blocks.0.hook_mlp_out")
        keep = [i for i, r in enumerate(prompt.roles) if r in ("text", "label")]
        f_all.append(saes[0].encode(cache["blocks.0.hook_mlp_out"][0, keep]).detach())
    f = torch.cat(f_all).double().numpy()
    ref = res.reference[res.reference["layer"] == 0]
    np.testing.assert_allclose(ref["frequency"], (f > 0).mean(0))
    np.testing.assert_allclose(ref["mean_activation"], f.mean(0), rtol=1e-5, atol=1e-7)


def test_top_frequency_counts_top_list_appearances(tiny):
    sae = random_sae(1)
    texts = ["a tiny text", "b", "another, longer example", "xy z", "hello world", "q"]
    result = collect_sae(tiny, texts, {1: sae}, statistics=("sae_l0",), top_k=3, progress=False)
    lat = np.stack([result.array(f"sae_top{i}_latent", [1])[:, 0] for i in (1, 2, 3)])
    counts = np.bincount(lat[lat >= 0].astype(int), minlength=40)
    score = rank_latents(result, 1, "top_frequency", np.zeros(6), 40)
    np.testing.assert_array_equal(np.floor(score), counts)


def test_errors_before_any_work(planted):
    model, saes = planted
    runner = ICLRunner(model, TOY)
    pool, queries = examples(8, "train", 0), examples(8, "test", 1)
    with pytest.raises(ConfigError, match=r"layers \[3\] without an SAE"):
        causal_test(runner, saes, pool, queries, CausalTestConfig(layers=(3,), m_values=(1,), n_queries=4, progress=False))
    with pytest.raises(ConfigError, match="m ≤ 12"):
        causal_test(runner, saes, pool, queries, CausalTestConfig(m_values=(13,), n_queries=4, progress=False))
    with pytest.raises(DataError, match="n_queries=20"):
        causal_test(runner, saes, pool, queries, CausalTestConfig(m_values=(1,), n_queries=20, progress=False))
    with pytest.raises(ConfigError, match="Did you mean 'label_contrast'"):
        CausalTestConfig(rule="label_contrst")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ablation"):
        CausalTestConfig(ablation=("resample",))  # type: ignore[arg-type]
    assert CausalTestConfig(ablation="mean").ablation == ("mean",)  # type: ignore[arg-type]


def test_figure_structure(planted_run):
    _, res = planted_run
    fig = causal_effects(res.table, ablation="zero")
    layout = cast(Any, fig).layout
    assert {a.text for a in layout.annotations} == {"layer 0, m = 1", "layer 1, m = 1"}  # one panel per (layer, m)
    names = [tr.name for tr in cast(Any, fig).data]
    assert names.count("targeted") == 2 and names.count("targeted - random") == 2 and names.count("random draws") == 2
    assert "targeted vs matched random" in layout.title.text and layout.yaxis.title.text == "Δ gold_logprob vs clean"
    with pytest.raises(DataError, match="ablation"):
        causal_effects(res.table)  # two ablation kinds: choose one
