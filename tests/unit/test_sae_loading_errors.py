"""Damaged SAE folders, missing local folders named in config, and width mismatches each get one clear error."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

from mechsel.errors import ConfigError, DataError
from mechsel.experiment.sae_glue import load_configured_saes
from mechsel.models.loading import model_info
from mechsel.sae.loading import check_sae_matches, load_sae


def _save_sae(folder, d_in=32, **meta):
    meta.setdefault("model_name", "tiny-random")
    meta.setdefault("model_from_pretrained_kwargs", {})
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=24, k=3, metadata=SAEMetadata(hook_name="blocks.1.hook_mlp_out", **meta)))
    sae.save_model(folder)
    return sae


@pytest.mark.parametrize("text", ['{"d_in": 32, "d_sae"', "", '["d_in", 32]', '{"architecture": "topk"}'])
def test_damaged_cfg_json_is_named(tmp_path, text):
    _save_sae(tmp_path / "sae")
    cfg = tmp_path / "sae" / "cfg.json"
    cfg.write_text(text)
    with pytest.raises(DataError, match=rf"{cfg}.*(not valid JSON|not an SAE config).*sae.save_model"):
        load_sae(path=tmp_path / "sae")


@pytest.mark.parametrize("keep", [0, 7, 300, -10])
def test_truncated_weights_are_named(tmp_path, keep):
    _save_sae(tmp_path / "sae")
    weights = tmp_path / "sae" / "sae_weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(DataError, match=rf"{weights} cannot be read .*damaged or truncated"):
        load_sae(path=tmp_path / "sae")


def test_weights_of_another_shape_than_cfg_json_are_named(tmp_path):
    _save_sae(tmp_path / "sae")
    cfg = tmp_path / "sae" / "cfg.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "d_in": 16}))
    with pytest.raises(DataError, match=r"sae_weights.safetensors do not have the shapes .*cfg.json describes \(d_in=16, d_sae=24\)"):
        load_sae(path=tmp_path / "sae")


def test_missing_local_folder_in_config_is_not_read_as_a_release(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for spec in (str(tmp_path / "nowhere" / "layer_1"), "./nowhere/layer_1", "runs/sae/layer_1", "~/nowhere/layer_1"):
        with pytest.raises(DataError, match=rf"The SAE folder {spec} does not exist \(checked from {tmp_path}\)"):
            load_configured_saes(tiny, {1: spec})
    # a name that could be a release or a relative folder: the release error also says the folder is missing
    with pytest.raises(
        ConfigError, match=r"Unknown SAE release 'nowhere'.*'nowhere/layer_1' is meant as a local SAE folder: no such folder"
    ):
        load_configured_saes(tiny, {1: "nowhere/layer_1"})
    _save_sae(tmp_path / "runs" / "layer_1")
    assert list(load_configured_saes(tiny, {1: "runs/layer_1"})) == [1]  # an existing folder still loads


def test_width_mismatch_says_which_d_in_was_expected_and_found(tmp_path, tiny):
    name = model_info(tiny).name
    same_model = _save_sae(tmp_path / "a", d_in=16, model_name=name)
    with pytest.raises(ConfigError) as info:
        check_sae_matches(same_model, tiny, "mlp_out")
    message = str(info.value)
    assert "expected d_in=32, found d_in=16" in message and f"of this model ({name!r})" in message
    assert "another model" not in message
    other = _save_sae(tmp_path / "b", d_in=16, model_name="gpt2")
    with pytest.raises(ConfigError, match=r"expected d_in=32, found d_in=16\. The SAE records model 'gpt2': load that model"):
        check_sae_matches(other, tiny, "mlp_out")
