"""The choices a GPU user needs: float16 refused on Gemma 3 before anything loads, and scoring
batches sized from free memory (the CPU keeps its measured 1,024-token cap)."""

from __future__ import annotations

import pytest
import torch

from mechsel.errors import ConfigError
from mechsel.icl import ScoringConfig
from mechsel.models import load_model, tiny_model
from mechsel.models.memory import CPU_BATCH_TOKENS, MAX_BATCH_TOKENS, batch_token_budget, bytes_per_batch_token


def test_float16_is_refused_on_gemma3_with_the_fix():
    with pytest.raises(ConfigError, match="65,504.*bfloat16"):
        load_model("google/gemma-3-270m", dtype="float16", device="cpu")


def test_cpu_keeps_the_measured_cap_and_a_gpu_budget_follows_free_memory():
    model = tiny_model(n_layers=2, d_model=32, n_heads=4, d_mlp=64)
    assert batch_token_budget(model) == CPU_BATCH_TOKENS
    per = bytes_per_batch_token(model.cfg, 4)
    # by hand: K and V of 2 layers × 4 heads × 8 dims, 6·32 + 3·64 + 2·4·8 transient, float32 scores to n_ctx 128
    assert per == 4 * (2 * 2 * 4 * 8 + 6 * 32 + 3 * 64 + 2 * 4 * 8) + 4 * 4 * 128
    assert batch_token_budget(model, free_bytes=per * 10_000) == 5_000  # half the free memory
    assert batch_token_budget(model, free_bytes=per * 100) == CPU_BATCH_TOKENS  # never below the CPU cap
    assert batch_token_budget(model, free_bytes=10**15) == MAX_BATCH_TOKENS
    assert bytes_per_batch_token(model.to(torch.bfloat16).cfg, 2) < per


def test_scoring_config_accepts_auto_and_teaches_otherwise():
    assert ScoringConfig().max_batch_tokens == "auto"
    with pytest.raises(ConfigError, match="'auto'"):
        ScoringConfig(max_batch_tokens="big")  # type: ignore[arg-type]
