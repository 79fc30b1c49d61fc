"""The embedded model loads offline and its hook_mlp_out equals transformers' own MLP-block output."""

import json

import pytest
import torch

pytestmark = pytest.mark.integration


def test_embedded_model_info(embedded_model):
    info = embedded_model.mechsel_info
    assert info.name == "google/gemma-3-270m"
    assert info.weight_processing == "none"
    assert "gguf" in info.source.lower()
    assert embedded_model.cfg.n_layers == 18 and embedded_model.cfg.d_model == 640


def test_hook_mlp_out_matches_transformers(embedded_model, sst2_sentences):
    from transformers import AutoModelForCausalLM

    from mechsel.models import embedded_hf_folder

    hf = AutoModelForCausalLM.from_pretrained(str(embedded_hf_folder()), dtype=torch.float32).eval()
    text = sst2_sentences[0]
    tokens = embedded_model.to_tokens(text, prepend_bos=True)
    captured = {}
    handles = []
    for layer in (0, 5, 17):  # a local layer, a global layer, the last layer
        mod = hf.model.layers[layer].post_feedforward_layernorm
        handles.append(mod.register_forward_hook(lambda m, i, o, layer=layer: captured.__setitem__(layer, o.detach())))
    try:
        with torch.inference_mode():
            hf(tokens)
    finally:
        for h in handles:
            h.remove()
    names = [f"blocks.{layer}.hook_mlp_out" for layer in captured]
    with torch.inference_mode():
        _, cache = embedded_model.run_with_cache(tokens, names_filter=names)
    for layer, ref in captured.items():
        ours = cache[f"blocks.{layer}.hook_mlp_out"]
        scale = ref.abs().max().item()
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, scale), layer


def test_conversion_record(embedded_model):
    from mechsel.models import embedded_hf_folder

    record = json.loads((embedded_hf_folder() / "mechsel_conversion.json").read_text())
    assert record["model"] == "google/gemma-3-270m" and len(record["gguf_sha256"]) == 64
