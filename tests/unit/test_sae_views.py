"""SAE views: token colouring data equal direct encoding; figures checked by structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from mechsel.errors import ConfigError, DataError
from mechsel.sae.views import latent_density_figure, latent_token_activations, latent_token_view


@pytest.fixture
def sae():
    torch.manual_seed(0)
    meta = SAEMetadata(hook_name="blocks.1.hook_mlp_out", model_name="tiny-random", model_from_pretrained_kwargs={})
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=40, metadata=meta))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae.eval()


def test_token_activations_equal_direct_encoding(tiny, sae):
    text = "hello"
    frame = latent_token_activations(tiny, sae, text, k=3)
    tokens = torch.tensor([[tiny.tokenizer.bos_token_id, *tiny.tokenizer.encode(text)]])
    _, cache = tiny.run_with_cache(tokens, names_filter="blocks.1.hook_mlp_out")
    with torch.no_grad():
        feats = sae.encode(cache["blocks.1.hook_mlp_out"][0, 1:]).double().numpy()
    order = np.argsort(-feats.max(0), kind="stable")[:3]
    assert list(frame.columns[1:]) == list(order)
    np.testing.assert_allclose(frame[list(order)].to_numpy(), feats[:, order], rtol=1e-6)
    assert list(frame["token"]) == list(text)


def test_token_view_renders(tiny, sae):
    html = latent_token_view(tiny, sae, "abc", latents=[0, 5])
    assert "latent 5" in str(html)
    with pytest.raises(ConfigError, match="out of range"):
        latent_token_activations(tiny, sae, "abc", latents=[99])


def test_density_figure_structure():
    density = pd.DataFrame({"layer": [2] * 4 + [5] * 4, "latent": list(range(4)) * 2, "density": [0.0, 0.1, 0.5, 0.01, 0.2, 0.0, 0.0, 1.0]})
    fig = latent_density_figure(density)
    assert [t.name for t in fig.data] == ["layer 2 (1 of 4 never fire)", "layer 5 (2 of 4 never fire)"]
    np.testing.assert_allclose(sorted(fig.data[1].x), [np.log10(0.2), 0.0])
    assert "log10" in fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "latents"
    with pytest.raises(DataError, match="columns"):
        latent_density_figure(density.drop(columns="density"))
