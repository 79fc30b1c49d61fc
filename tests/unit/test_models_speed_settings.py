"""Weight layout (bit-identical outputs) and the guarded float32 matmul precision."""

from __future__ import annotations

import logging

import einops
import pytest
import torch

from mechsel.errors import ConfigError
from mechsel.models import matmul_precision, measure_matmul_error, tiny_model, transpose_friendly_layout
from mechsel.models import precision as precision_module
from mechsel.models.layout import contiguous_copy
from mechsel.models.precision import FLOAT32_CLASS_ERROR, product_error


@pytest.mark.parametrize("gated", [True, False])
def test_layout_keeps_values_and_outputs_bit_identical(gated):
    model = tiny_model(n_layers=2, gated_mlp=gated, n_key_value_heads=2 if gated else None)
    plain = contiguous_copy(model)
    assert all(p.is_contiguous() for p in plain.parameters())
    transpose_friendly_layout(model)
    for (name, a), b in zip(model.named_parameters(), plain.parameters()):
        assert a.shape == b.shape and torch.equal(a, b), name
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    assert einops.rearrange(attn.W_Q, "h m d -> (h d) m").is_contiguous()
    assert einops.rearrange(attn.W_O, "h d m -> m (h d)").is_contiguous()
    assert model.W_U.T.is_contiguous()
    assert mlp.W_in.T.is_contiguous() == gated  # plain MLPs multiply W_in itself: left as they were
    tokens = torch.randint(3, 259, (3, 17))
    with torch.inference_mode():
        assert torch.equal(model(tokens), plain(tokens))
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_mlp_out"))
        _, ref = plain.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_mlp_out"))
    assert all(torch.equal(cache[k], ref[k]) for k in ref.keys())


def test_layout_leaves_attention_alone_when_heads_are_split():
    model = tiny_model(n_layers=1)
    model.cfg.use_attn_result = True
    transpose_friendly_layout(model)
    assert model.blocks[0].attn.W_Q.is_contiguous() and model.blocks[0].attn.W_O.is_contiguous()


def test_product_error_separates_float32_from_bfloat16_rounding():
    assert product_error(lambda a, b: a @ b) <= FLOAT32_CLASS_ERROR
    bf16 = product_error(lambda a, b: a.bfloat16().float() @ b.bfloat16().float())
    tf32_like = product_error(lambda a, b: a.half().float() @ b.half().float())
    assert bf16 > 50 * FLOAT32_CLASS_ERROR and tf32_like > 10 * FLOAT32_CLASS_ERROR


def test_highest_is_not_probed_and_the_previous_level_comes_back():
    before = torch.get_float32_matmul_precision()
    with matmul_precision("highest") as check:
        assert torch.get_float32_matmul_precision() == "highest"
    assert check.as_dict() == {"requested": "highest", "effective": "highest", "error": 0.0, "device": "cpu"}
    assert torch.get_float32_matmul_precision() == before
    assert measure_matmul_error("highest") <= FLOAT32_CLASS_ERROR


def test_a_lossy_level_falls_back_to_highest_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "measure_matmul_error", lambda level, device="cpu": 4e-3)
    with caplog.at_level(logging.WARNING, logger="mechsel.models.precision"), matmul_precision("medium") as check:
        assert torch.get_float32_matmul_precision() == "highest"
    assert (check.requested, check.effective, check.error) == ("medium", "highest", 4e-3)
    assert "running at 'highest'" in caplog.text


def test_an_accurate_level_is_used(monkeypatch):
    monkeypatch.setattr(precision_module, "measure_matmul_error", lambda level, device="cpu": 3e-7)
    with matmul_precision("medium") as check:
        assert torch.get_float32_matmul_precision() == "medium"
    assert check.effective == "medium"


def test_unknown_level_is_refused():
    with pytest.raises(ConfigError, match="must be one of"):
        with matmul_precision("low"):  # type: ignore[arg-type]
            pass
