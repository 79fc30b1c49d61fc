"""Loading SAEs from disk and from the pretrained directory, and refusing SAEs that do not fit the model."""

from __future__ import annotations

import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.sae.loading import (
    check_sae_matches,
    load_sae,
    load_saes,
    pretrained_releases,
    pretrained_sae_ids,
    sae_weight_processing,
)


def make_sae(hook: str = "blocks.1.hook_mlp_out", d_in: int = 32, **meta):
    meta.setdefault("model_name", "tiny-random")
    meta.setdefault("model_from_pretrained_kwargs", {})
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=24, k=3, metadata=SAEMetadata(hook_name=hook, **meta)))
    with torch.no_grad():
        sae.b_enc.normal_()
    return sae


def test_save_load_round_trip(tmp_path):
    sae = make_sae()
    sae.save_model(tmp_path / "sae")
    loaded = load_sae(path=tmp_path / "sae")
    assert type(loaded) is TopKSAE and loaded.cfg.k == 3
    assert loaded.cfg.metadata.hook_name == "blocks.1.hook_mlp_out"
    for name, tensor in sae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    x = torch.randn(7, 32)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))


def test_missing_or_wrong_folder_is_explained(tmp_path):
    with pytest.raises(DataError, match="No SAE folder"):
        load_sae(path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="missing cfg.json"):
        load_sae(path=tmp_path / "empty")
    make_sae().save_model(tmp_path / "run" / "layer_1")
    with pytest.raises(DataError, match="load_saes"):
        load_sae(path=tmp_path / "run")
    assert list(load_saes(tmp_path / "run")) == [1]
    with pytest.raises(ConfigError, match="either"):
        load_sae()


def test_unknown_release_or_id_lists_near_matches():
    assert "gemma-scope-2-270m-pt-mlp" in pretrained_releases(model="google/gemma-3-270m")
    with pytest.raises(ConfigError, match="gemma-scope-2-270m-pt-mlp"):
        load_sae("gemma-scope-2-270m-pt-mpl", "layer_5_width_16k_l0_small")
    assert "layer_5_width_16k_l0_small" in pretrained_sae_ids("gemma-scope-2-270m-pt-mlp")
    with pytest.raises(ConfigError, match="layer_5_width_16k_l0_small"):
        load_sae("gemma-scope-2-270m-pt-mlp", "layer_5_width_16k_l0_smal")


def test_matching_sae_passes_and_returns_its_layer(tiny):
    assert check_sae_matches(make_sae(), tiny, "mlp_out") == 1
    assert check_sae_matches(make_sae(), tiny, "mlp_out", layer=1) == 1


def test_hook_mismatch_raises(tiny):
    with pytest.raises(ConfigError, match="hook='resid_post'"):
        check_sae_matches(make_sae("blocks.1.hook_resid_post"), tiny, "mlp_out")
    with pytest.raises(ConfigError, match="layer 0"):
        check_sae_matches(make_sae(), tiny, "mlp_out", layer=0)
    with pytest.raises(ConfigError, match="only 2 layers"):
        check_sae_matches(make_sae("blocks.7.hook_mlp_out"), tiny, "mlp_out")
    sae = make_sae()
    sae.cfg.metadata.hook_name = None
    with pytest.raises(ConfigError, match="hook_name"):
        check_sae_matches(sae, tiny)


def test_d_in_mismatch_raises(tiny):
    with pytest.raises(ConfigError, match="d_in is 16"):
        check_sae_matches(make_sae(d_in=16), tiny, "mlp_out")


def test_weight_processing_mismatch_says_how_to_load(tiny):
    sae = make_sae(model_from_pretrained_kwargs={"center_writing_weights": True})
    assert sae_weight_processing(sae) == "default"
    with pytest.raises(ProvenanceMismatchError, match="weight_processing='default'"):
        check_sae_matches(sae, tiny, "mlp_out")
    assert check_sae_matches(sae, tiny, "mlp_out", weight_processing="default") == 1
    assert sae_weight_processing(make_sae(model_from_pretrained_kwargs={"fold_ln": True})) == "none"


def test_sae_for_another_model_raises(tiny):
    with pytest.raises(ProvenanceMismatchError, match="gpt2"):
        check_sae_matches(make_sae(model_name="gpt2"), tiny, "mlp_out")
    other = make_sae(mechsel={"weight_processing": "none", "weight_hash": "0123456789abcdef", "model_dtype": "float32"})
    with pytest.raises(ProvenanceMismatchError, match="fingerprint"):
        check_sae_matches(other, tiny, "mlp_out")
