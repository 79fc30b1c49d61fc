"""LM embeddings on a tiny model against run_with_cache, and the embedding cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mechsel.collection.stream import right_pad
from mechsel.embeddings import lm_embeddings
from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import PromptBuilder

TEXTS = ["short", "a somewhat longer text", "mid length"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_lm_embeddings_are_mean_pooled_resid_post(tiny, cache):
    got = lm_embeddings(tiny, TEXTS, 1, batch_size=2)
    assert got.shape == (3, tiny.cfg.d_model) and got.dtype == np.float32
    for i, t in enumerate(TEXTS):
        tokens = torch.tensor([[1] + tiny.tokenizer.encode(t)])
        _, c = tiny.run_with_cache(tokens)
        want = c["blocks.1.hook_resid_post"][0, 1:].mean(0).numpy()  # BOS excluded
        assert np.allclose(got[i], want, atol=1e-5)


def test_text_positions_of_segmented_prompts(tiny, cache):
    p = PromptBuilder(tiny.tokenizer, bos_token_id=1).segment("query", 0).add("Review: ", "template").add("great", "text").build()
    text_only = lm_embeddings(tiny, [p], 0, positions="text")
    every = lm_embeddings(tiny, [p], 0, positions="all")
    _, c = tiny.run_with_cache(torch.tensor([p.tokens]))
    acts = c["blocks.0.hook_resid_post"][0]
    roles = np.array(p.roles)
    assert np.allclose(text_only[0], acts[roles == "text"].mean(0).numpy(), atol=1e-5)
    assert np.allclose(every[0], acts[1:].mean(0).numpy(), atol=1e-5)


def test_cache_round_trip_with_provenance(tiny, cache, monkeypatch):
    first = lm_embeddings(tiny, TEXTS, 0)
    files = sorted((cache / "embeddings" / "lm").iterdir())
    assert [f.suffix for f in files] == [".json", ".npy"]
    record = json.loads(files[0].read_text())
    assert record["provenance"]["hook"] == "blocks.0.hook_resid_post"
    assert record["provenance"]["weight_hash"] == tiny.mechsel_info.weight_hash
    monkeypatch.setattr(tiny, "forward", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert np.array_equal(lm_embeddings(tiny, TEXTS, 0), first)  # served from the cache
    with pytest.raises(AssertionError, match="recomputed"):
        lm_embeddings(tiny, TEXTS + ["new"], 0)  # different inputs miss the cache


def test_bad_inputs(tiny, cache):
    with pytest.raises(ConfigError, match="layer must be in"):
        lm_embeddings(tiny, TEXTS, 5)
    with pytest.raises(DataError, match="empty"):
        lm_embeddings(tiny, ["ok", "  "], 0)


def test_right_pad():
    tokens, lengths = right_pad([[5, 6, 7], [8]], pad_id=0)
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
