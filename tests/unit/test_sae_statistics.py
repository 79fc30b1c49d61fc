"""SAE latent statistics streamed through the collector equal the same computed directly from ``sae.encode``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

from mechsel.collection import collect
from mechsel.errors import ConfigError, DataError
from mechsel.sae.reference import ActivationReference, attach_reference, collect_reference, reference_of
from mechsel.sae.statistics import (
    DEFAULT_SAE_STATISTICS,
    SAE_STATISTIC_NAMES,
    SAEStatistics,
    SAETopLatents,
    collect_sae,
    latent_density,
    top_latents,
    top_latents_frame,
)

TEXTS = ["a tiny text", "b", "another example, longer than the others by far", "xy z", "hello world", "q"]


def make_sae(kind: str, layer: int, d_in: int = 32, d_sae: int = 48, seed: int = 0):
    torch.manual_seed(seed)
    meta = SAEMetadata(hook_name=f"blocks.{layer}.hook_mlp_out", model_name="tiny-random", model_from_pretrained_kwargs={})
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=5, metadata=meta))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return sae.eval()


def direct_acts(model, text: str, layer: int) -> torch.Tensor:
    """Activations of the text tokens (BOS excluded) from a one-text run_with_cache."""
    tokens = torch.tensor([[model.tokenizer.bos_token_id, *model.tokenizer.encode(text)]])
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_mlp_out")
    return cache[f"blocks.{layer}.hook_mlp_out"][0, 1:]


def direct_stats(sae, x: torch.Tensor, variance: float) -> dict[str, float]:
    """Straightforward numpy versions of every statistic for one example (``variance``: the
    reference's per-token variance)."""
    with torch.no_grad():
        f = sae.encode(x).double().numpy()
        r = sae.decode(sae.encode(x)).double().numpy()
    xx = x.double().numpy()
    active = f > 0
    mass = f.sum(0)
    p = mass[mass > 0] / mass.sum()
    sst = ((xx - xx.mean(0)) ** 2).sum()
    cos = (xx * r).sum(1) / (np.linalg.norm(xx, axis=1) * np.linalg.norm(r, axis=1))
    return {
        "sae_l0": active.sum(1).mean(),
        "sae_mean_act": f[active].mean() if active.any() else np.nan,
        "sae_max_act": f.max(),
        "sae_entropy": -(p * np.log(p)).sum() if mass.sum() > 0 else np.nan,
        "sae_n_active": float((mass > 0).sum()),
        "sae_peak_share": p.max() if mass.sum() > 0 else np.nan,
        "sae_ev_own_mean": 1 - ((xx - r) ** 2).sum() / sst if len(xx) > 1 else np.nan,
        "sae_mse": ((xx - r) ** 2).sum() / len(xx),
        "sae_fvu": ((xx - r) ** 2).sum() / (len(xx) * variance),
        "sae_explained_variance": 1 - ((xx - r) ** 2).sum() / (len(xx) * variance),
        "sae_cosine": cos.mean(),
    }


def hand_reference(model, texts, layer: int) -> ActivationReference:
    """Mean and per-token variance of every text token, straight from numpy."""
    x = np.concatenate([direct_acts(model, t, layer).double().numpy() for t in texts])
    mean = x.mean(0)
    return ActivationReference(tuple(mean.tolist()), float(((x - mean) ** 2).sum(1).mean()), len(x), "hand")


@pytest.mark.parametrize("kind", ["topk", "standard"])
def test_streaming_statistics_equal_direct_encode(tiny, kind):
    saes = {0: make_sae(kind, 0, seed=1), 1: make_sae(kind, 1, seed=2)}
    refs = {layer: hand_reference(tiny, TEXTS, layer) for layer in saes}
    result = collect_sae(tiny, TEXTS, saes, statistics=SAE_STATISTIC_NAMES, references=refs, top_k=0, batch_size=4, progress=False)
    assert set(result.statistics) == set(SAE_STATISTIC_NAMES)
    for row, text in enumerate(TEXTS):
        for layer, sae in saes.items():
            want = direct_stats(sae, direct_acts(tiny, text, layer), refs[layer].variance)
            for name, value in want.items():
                got = result.array(name, [layer])[row, 0]
                np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=f"{name} layer {layer} row {row}")


def test_moments_and_sae_statistics_in_one_pass_match_separate_passes(tiny):
    saes = {1: make_sae("topk", 1)}
    both = collect_sae(tiny, TEXTS, saes, moments=("mean", "kurtosis"), top_k=2, batch_size=3, progress=False)
    alone = collect(tiny, TEXTS, layers=[1], statistics=("mean", "kurtosis"), progress=False)
    np.testing.assert_allclose(both.array("kurtosis"), alone.array("kurtosis"), rtol=1e-6, equal_nan=True)
    assert both.provenance.hook == alone.provenance.hook
    reducers = {r["family"]: r for r in both.provenance.extra["reducers"]}
    assert reducers["sae"]["saes"]["1"]["hook_name"] == "blocks.1.hook_mlp_out"
    frame = both.to_frame()
    assert {"sae_l0", "kurtosis", "sae_top1_latent"} <= set(frame["statistic"])


def test_top_latents_equal_direct_ranking(tiny):
    sae = make_sae("standard", 0, seed=3)
    frame = top_latents(tiny, {0: sae}, TEXTS, k=3, batch_size=2, progress=False)
    for row, text in enumerate(TEXTS):
        with torch.no_grad():
            f = sae.encode(direct_acts(tiny, text, 0)).double().numpy()
        peak = f.max(0)
        order = np.argsort(-peak, kind="stable")[:3]
        order = order[peak[order] > 0]
        got = frame[frame["row"] == row].sort_values("rank")
        np.testing.assert_array_equal(got["latent"].to_numpy(), order)
        np.testing.assert_allclose(got["activation"].to_numpy(), peak[order], rtol=1e-6)


def test_top_latents_rank_by_sum_and_empty_slots(tiny):
    sae = make_sae("topk", 0)
    reducer = SAETopLatents({0: sae}, k=6, rank_by="sum")
    result = collect(tiny, ["q"], layers=[0], statistics=[reducer], progress=False)
    x = direct_acts(tiny, "q", 0)  # one token: TopK k=5, so the 6th slot is empty
    with torch.no_grad():
        f = sae.encode(x).double().numpy().sum(0)
    n_live = int((f > 0).sum())
    assert n_live <= 5
    assert result.array("sae_top6_latent")[0, 0] == -1 and result.array("sae_top6_act")[0, 0] == 0
    assert len(top_latents_frame(result)) == n_live


def test_latent_density_counts_examples_where_each_latent_fires(tiny):
    sae = make_sae("standard", 1, seed=4)
    density = latent_density(tiny, TEXTS, {1: sae}, batch_size=4, progress=False)
    fired = np.zeros(sae.cfg.d_sae)
    for text in TEXTS:
        with torch.no_grad():
            fired += (sae.encode(direct_acts(tiny, text, 1)) > 0).any(0).numpy()
    np.testing.assert_allclose(density["density"].to_numpy(), fired / len(TEXTS))
    assert set(density.columns) == {"layer", "latent", "n_examples", "n_fired", "density"}


def test_single_sae_is_keyed_by_its_hook_layer(tiny):
    stats = SAEStatistics(make_sae("topk", 1), statistics=("sae_l0",))
    assert stats.layers == (1,)


def test_bad_inputs_teach(tiny):
    sae = make_sae("topk", 0)
    with pytest.raises(ConfigError, match="sae_entropy"):
        SAEStatistics({0: sae}, statistics=("sae_entrpy",))
    with pytest.raises(ConfigError, match="layers=\\[0\\]"):
        collect(tiny, TEXTS, layers=[1], statistics=[SAEStatistics({0: sae})], progress=False)
    with pytest.raises(ConfigError, match="not a sae-lens SAE"):
        SAEStatistics({0: "not an sae"})
    with pytest.raises(DataError, match="collect"):
        SAEStatistics({0: sae}).latent_density()
    with pytest.raises(ConfigError, match="positive integer"):
        SAETopLatents({0: sae}, k=0)
    with pytest.raises(ConfigError, match="sets layers"):
        collect_sae(tiny, TEXTS, {0: sae}, layers=[0])


def test_dataset_mean_fvu_against_a_hand_computation(tiny):
    """Per example: squared error over the dataset variance, summed over its tokens; the dataset
    FVU (numpy, all tokens against their mean) is the token-weighted mean of the examples'."""
    sae = make_sae("topk", 1, seed=5)
    ref = hand_reference(tiny, TEXTS, 1)
    result = collect_sae(
        tiny, TEXTS, {1: sae}, statistics=("sae_fvu", "sae_explained_variance"), references={1: ref}, top_k=0, progress=False
    )
    xs = [direct_acts(tiny, t, 1).double() for t in TEXTS]
    with torch.no_grad():
        errs = [((x - sae.decode(sae.encode(x.float())).double()) ** 2).sum().item() for x in xs]
    x_all = torch.cat(xs).numpy()
    variance = ((x_all - x_all.mean(0)) ** 2).sum(1).mean()
    fvu = result.array("sae_fvu", [1])[:, 0]
    np.testing.assert_allclose(fvu, [e / (len(x) * variance) for e, x in zip(errs, xs)], rtol=1e-6)
    np.testing.assert_allclose(result.array("sae_explained_variance", [1])[:, 0], 1 - fvu, rtol=1e-9)
    dataset_fvu = sum(errs) / ((x_all - x_all.mean(0)) ** 2).sum()
    n = np.array([len(x) for x in xs])
    assert (fvu * n).sum() / n.sum() == pytest.approx(dataset_fvu, rel=1e-6)


def test_collect_reference_equals_numpy_over_the_same_tokens(tiny):
    from mechsel.collection import CollectConfig

    refs = collect_reference(tiny, TEXTS, CollectConfig(layers=(0, 1), batch_size=4, progress=False), source="test")
    for layer in (0, 1):
        want = hand_reference(tiny, TEXTS, layer)
        np.testing.assert_allclose(refs[layer].mean, want.mean, rtol=1e-5, atol=1e-6)
        assert refs[layer].variance == pytest.approx(want.variance, rel=1e-5)
        assert refs[layer].n_tokens == want.n_tokens == sum(len(t) for t in TEXTS)


def test_reference_is_stored_with_the_sae_and_needed_for_fvu(tiny):
    sae = make_sae("topk", 0)
    with pytest.raises(ConfigError, match="no activation reference"):
        SAEStatistics({0: sae}, statistics=("sae_fvu",))
    default = SAEStatistics({0: sae})  # no reference: FVU and EV left out, and said so
    assert "sae_fvu" not in default.names and "sae_explained_variance" not in default.names
    assert set(default.provenance_info()["omitted"]) == {"sae_explained_variance"}
    ref = hand_reference(tiny, TEXTS, 0)
    attach_reference(sae, ref)
    assert reference_of(sae) == ref
    assert SAEStatistics({0: sae}).names == DEFAULT_SAE_STATISTICS
    with pytest.raises(ConfigError, match="d_in"):
        attach_reference(make_sae("topk", 0, d_in=32), ActivationReference((0.0,) * 5, 1.0, 10, "x"))
    with pytest.raises(DataError, match="positive"):
        ActivationReference((0.0,), 0.0, 10, "constant")


def test_no_statistic_name_takes_the_top_latent_prefix():
    # ``sae_top{i}_latent`` / ``sae_top{i}_act`` are labels kept out of the correlation grid by name
    assert not [n for n in SAE_STATISTIC_NAMES if n.startswith("sae_top")]
