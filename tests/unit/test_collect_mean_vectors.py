"""``collect(..., mean_vectors=True)``: each row's mean ``hook_mlp_out`` over its summarised tokens,
in the same streaming pass, equal to the mean of ``run_with_cache``'s activations (to 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechsel.collection import collect
from mechsel.errors import ConfigError
from mechsel.models import tiny_model

TEXTS = ["a fine film", "dull", "the plot of the film is long and the music is great", "ok ok"]


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_ctx=64)


def test_mean_vectors_equal_the_cached_activations(model):
    result = collect(model, TEXTS, statistics=["mean"], mean_vectors=True, batch_size=3, progress=False)
    vec = result.vectors["mean"]
    assert vec.shape == (len(TEXTS), model.cfg.n_layers, model.cfg.d_model) and vec.dtype == np.float32
    bos = model.tokenizer.bos_token_id
    for i, text in enumerate(TEXTS):
        tokens = [bos, *model.tokenizer.encode(text, add_special_tokens=False)]
        _, cache = model.run_with_cache(torch.tensor([tokens]))
        for j, layer in enumerate(result.layers):
            ref = cache[f"blocks.{layer}.hook_mlp_out"][0, 1:].double().mean(dim=0).numpy()  # the text's tokens, BOS left out
            np.testing.assert_allclose(vec[i, j], ref, rtol=1e-5, atol=1e-5)
            # the scalar mean statistic is the mean of the same values
            assert result.values["mean"][i, j] == pytest.approx(float(ref.mean()), rel=1e-5, abs=1e-6)
    assert result.provenance.extra["vectors"] == ["mean"]


def test_off_by_default_and_the_flag_is_checked(model):
    result = collect(model, TEXTS[:2], statistics=["mean"], progress=False)
    assert result.vectors == {} and "vectors" not in result.provenance.extra
    with pytest.raises(ConfigError, match="mean_vectors must be True or False"):
        collect(model, TEXTS[:2], mean_vectors="yes", progress=False)  # type: ignore[arg-type]
