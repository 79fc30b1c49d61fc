"""A Gemma Scope 2 folder in its published layout loads offline and computes the JumpReLU SAE."""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from mechsel.errors import ConfigError, DataError
from mechsel.models import tiny_model
from mechsel.sae.loading import check_sae_matches, load_sae


def _folder(root, d_in: int, d_sae: int = 24, site: str = "mlp_out", layer: int = 1, config: dict | None = None):
    folder = root / "gemma-scope-2-270m-pt" / site / f"layer_{layer}_width_16k_l0_small"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    tensors = {
        "w_enc": torch.randn(d_in, d_sae, generator=g) * 0.3,
        "w_dec": torch.randn(d_sae, d_in, generator=g) * 0.3,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
        "threshold": torch.rand(d_sae, generator=g) * 0.2,
    }
    save_file(tensors, str(folder / "params.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(__import__("json").dumps(config))
    return folder, tensors


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access during an offline load")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_published_layout_loads_offline_and_encodes_as_jumprelu(tmp_path, no_network):
    folder, t = _folder(tmp_path, d_in=16)
    sae = load_sae(path=folder)
    assert type(sae).__name__ == "JumpReLUSAE" and (sae.cfg.d_in, sae.cfg.d_sae) == (16, 24)
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_mlp_out" and sae.cfg.metadata.model_name == "google/gemma-3-270m"
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    pre = x @ t["w_enc"] + t["b_enc"]
    latents = torch.where(pre > t["threshold"], pre.clamp(min=0), torch.zeros(()))  # by hand: JumpReLU
    torch.testing.assert_close(sae.encode(x), latents)
    torch.testing.assert_close(sae.decode(latents), latents @ t["w_dec"] + t["b_dec"])


def test_it_is_checked_against_the_model_like_any_sae(tmp_path):
    model = tiny_model(n_layers=2)
    folder, _ = _folder(tmp_path, d_in=model.cfg.d_model, config={"architecture": "jump_relu", "model_name": "tiny-random"})
    assert check_sae_matches(load_sae(path=folder), model, "mlp_out", layer=1) == 1
    wrong, _ = _folder(tmp_path / "w", d_in=model.cfg.d_model + 1)
    with pytest.raises(ConfigError, match="d_in"):
        check_sae_matches(load_sae(path=wrong), model, "mlp_out", layer=1)


def test_layouts_it_cannot_read_say_why(tmp_path):
    folder, _ = _folder(tmp_path / "a", d_in=8, site="attn_out")
    with pytest.raises(ConfigError, match="attention-output"):
        load_sae(path=folder)
    folder, _ = _folder(tmp_path / "b", d_in=8, config={"architecture": "topk"})
    with pytest.raises(ConfigError, match="jump_relu"):
        load_sae(path=folder)
    folder, _ = _folder(tmp_path / "c", d_in=8)
    (folder / "params.safetensors").write_bytes((folder / "params.safetensors").read_bytes()[:100])
    with pytest.raises(DataError, match="damaged or truncated"):
        load_sae(path=folder)
