"""Per-demonstration attribution: attention shares partition the row and match the model's own
pattern, a planted pattern is found, the DLA parts sum to the model's own logit difference (for
several architectures, weights processed or not), the view is written offline, errors teach."""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
import pytest
import torch

from mechsel.attribution import AttributionConfig, attribute_demonstrations, attribute_prompt, attribution_view
from mechsel.errors import ConfigError, DataError
from mechsel.icl import ICLRunner
from mechsel.models import tiny_model
from mechsel.tasks import Example, TaskConfig

TASK = TaskConfig(
    name="tiny_sentiment",
    template="R: {sentence}\nS: ",
    input_fields=("sentence",),
    label_names=("negative", "positive"),
    verbalizers=("n", "p"),  # one token each for the character tokenizer
)
TASK3 = TaskConfig(
    name="tiny_topic",
    template="T: {text}\nA: ",
    input_fields=("text",),
    label_names=("world", "sport", "tech"),
    verbalizers=("w", "s", "t"),
)
DEMOS = [Example(id=f"d{i}", inputs={"sentence": s}, label=y) for i, (s, y) in enumerate([("good fun", 1), ("dull", 0), ("fine", 1)])]
QUERY = Example(id="q", inputs={"sentence": "awful mess"}, label=0)


def runner_for(model, task=TASK) -> ICLRunner:
    return ICLRunner(model, task)


def model_logit_diff(model, tokens, label_tokens, gold) -> float:
    """Gold minus the other labels' mean, from the model's own forward output at the last position."""
    with torch.no_grad():
        logits = model(torch.tensor([list(tokens)]))[0, -1].double()
    others = [label_tokens[i] for i in range(len(label_tokens)) if i != gold]
    return float(logits[label_tokens[gold]] - logits[others].mean())


def share_sums(frame) -> np.ndarray:
    """Sum of ``share`` per (layer, head)."""
    return np.asarray(cast(Any, frame.groupby(["layer", "head"])["share"].sum()), dtype=float)


def randomise_biases(model) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".b", "b_O", "b_V", "b_Q", "b_K", "b_in", "b_out", "b_U")) or name.endswith(".w"):
                p.add_(0.3 * torch.randn_like(p))


def test_attention_shares_partition_the_row_and_match_the_models_pattern(tiny):
    runner = runner_for(tiny)
    result = attribute_demonstrations(runner, DEMOS, QUERY)
    assert result.segments == ("bos", "demo 1", "demo 2", "demo 3", "sep", "query")
    frame = result.attention_frame()
    assert list(frame.columns) == ["layer", "head", "segment", "share"]
    np.testing.assert_allclose(share_sums(frame), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.attention_shares.sum(-1), 1.0, atol=1e-5)
    by_role = result.attention_frame(by="segment_role")
    assert {"label", "text", "template", "sep", "bos"} <= set(by_role["role"])
    np.testing.assert_allclose(share_sums(by_role), 1.0, atol=1e-5)

    # independent cross-check: the full pattern from run_with_cache, summed over demo 2's token span
    prompt = runner.prompts([DEMOS], [QUERY])[0]
    span = [s for s in prompt.segments if s.kind == "demo"][1]
    _, cache = tiny.run_with_cache(torch.tensor([list(prompt.tokens)]), names_filter=lambda n: n.endswith("hook_pattern"))
    for layer in range(tiny.cfg.n_layers):
        expected = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, -1, span.start : span.end].sum(-1).numpy()
        rows = frame[(frame["layer"] == layer) & (frame["segment"] == "demo 2")]
        got = rows.set_index("head").sort_index()["share"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_planted_attention_on_demonstration_2_is_found(tiny):
    runner = runner_for(tiny)
    prompt = runner.prompts([DEMOS], [QUERY])[0]
    span = [s for s in prompt.segments if s.kind == "demo"][1]

    def plant(pattern, hook):
        planted = pattern.clone()
        planted[:, :, -1, :] = 0.0
        planted[:, :, -1, span.start : span.end] = 1.0 / len(span)
        return planted

    with tiny.hooks(fwd_hooks=[(lambda name: name.endswith("hook_pattern"), plant)]):
        result = attribute_demonstrations(runner, DEMOS, QUERY)
        expected = model_logit_diff(tiny, prompt.tokens, result.label_tokens, result.gold)
    shares = result.attention_shares
    demo2 = result.segments.index("demo 2")
    np.testing.assert_allclose(shares[:, :, demo2], 1.0, atol=1e-6)
    np.testing.assert_allclose(np.delete(shares, demo2, axis=-1), 0.0, atol=1e-7)
    assert result.top_demo("attention") == "demo 2"
    assert np.all(np.delete(result.segment_dla, demo2, axis=-1) == 0.0)  # no attention, no direct effect
    assert result.reconstructed_logit_diff == pytest.approx(expected, rel=1e-5, abs=1e-6)


ARCHITECTURES = {
    "rotary-rms": dict(),
    "gemma-like (GQA, pre+post RMS norms)": dict(n_key_value_heads=2, use_normalization_before_and_after=True),
    "standard-ln with biases": dict(positional_embedding_type="standard", normalization_type="LN"),
    "attn-only": dict(attn_only=True),
}


@pytest.mark.parametrize("overrides", list(ARCHITECTURES.values()), ids=list(ARCHITECTURES))
def test_dla_parts_sum_to_the_models_logit_difference(overrides):
    model = tiny_model(dtype=torch.float64, **overrides)
    randomise_biases(model)
    runner = runner_for(model)
    prompt = runner.prompts([DEMOS], [QUERY])[0]
    result = attribute_demonstrations(runner, DEMOS, QUERY)
    expected = model_logit_diff(model, prompt.tokens, result.label_tokens, result.gold)
    assert result.reconstructed_logit_diff == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert result.logit_diff == pytest.approx(expected, rel=1e-12, abs=1e-12)
    frame = result.dla_frame()
    assert list(frame.columns) == ["layer", "head", "segment", "dla"]
    assert frame["dla"].sum() + result.other_terms["dla"].sum() == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert result.dla_by_segment().sum() == pytest.approx(result.dla.sum(), rel=1e-12, abs=1e-12)


def test_dla_identity_in_float32_and_with_three_labels(tiny):
    runner = runner_for(tiny, TASK3)
    demos = [Example(id=i, inputs={"text": t}, label=y) for i, (t, y) in enumerate([("war", 0), ("goal", 1), ("chip", 2)])]
    query = Example(id="q", inputs={"text": "match"}, label=1)
    result = attribute_demonstrations(runner, demos, query)
    prompt = runner.prompts([demos], [query])[0]
    expected = model_logit_diff(tiny, prompt.tokens, result.label_tokens, 1)  # gold minus the mean of the two others
    assert result.reconstructed_logit_diff == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert result.identity_error < 1e-4


def test_weight_processing_keeps_the_identity_and_the_head_terms():
    """TransformerLens's folding and centring: the identity still holds, Δ is unchanged, and with
    no value bias to move (b_V and ln1's bias, which folding turns into one, are zero) every head's
    per-segment DLA is unchanged."""
    raw = tiny_model(dtype=torch.float64, positional_embedding_type="standard", normalization_type="LN")
    randomise_biases(raw)
    with torch.no_grad():
        for name, param in raw.named_parameters():
            if name.endswith(("attn.b_V", "ln1.b")):
                param.zero_()
    processed = tiny_model(dtype=torch.float64, positional_embedding_type="standard", normalization_type="LN")
    processed.load_state_dict(raw.state_dict())
    processed.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert processed.cfg.normalization_type == "LNPre"
    before = attribute_demonstrations(runner_for(raw), DEMOS, QUERY)
    after = attribute_demonstrations(runner_for(processed), DEMOS, QUERY)
    prompt = runner_for(processed).prompts([DEMOS], [QUERY])[0]
    expected = model_logit_diff(processed, prompt.tokens, after.label_tokens, after.gold)
    assert after.reconstructed_logit_diff == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert after.logit_diff == pytest.approx(before.logit_diff, rel=1e-6, abs=1e-8)  # processing itself rounds
    np.testing.assert_allclose(after.segment_dla, before.segment_dla, rtol=1e-6, atol=1e-8)


def test_view_writes_offline_html_with_the_segment_labels(tiny, tmp_path):
    result = attribute_demonstrations(runner_for(tiny), DEMOS, QUERY)
    view = attribution_view(result)
    path = view.write_html(tmp_path / "views" / "attribution.html")
    text = path.read_text()
    for label in ("demo 1 (p)", "demo 2 (n)", "demo 3 (p)", "bos", "query"):
        assert label in text
    assert "unpkg.com" not in text  # circuitsvis inlined, not loaded from its CDN
    assert "ColoredTokensMulti" in text
    assert re.search(r'<div id="circuits-vis-[^"]*"[^>]*></div>', text)  # its root closed, so the figure is not its child
    assert "demo 2 (n)" in view._repr_html_()
    fig = view.figure
    assert [type(t).__name__ for t in fig.data] == ["Heatmap", "Heatmap", "Bar"]
    assert list(fig.data[0].x) == ["bos", "demo 1 (p)", "demo 2 (n)", "demo 3 (p)", "sep", "query"]
    np.testing.assert_allclose(np.asarray(fig.data[0].z).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fig.data[2].y, result.dla_by_segment().to_numpy())
    demos_only = attribution_view(result, columns="demos").figure
    assert list(demos_only.data[1].x) == ["demo 1 (p)", "demo 2 (n)", "demo 3 (p)"]
    with pytest.raises(ConfigError, match="plotlyjs"):
        view.html(plotlyjs="inline")  # type: ignore[arg-type]


def test_errors_name_the_problem_and_the_fix(tiny):
    runner = runner_for(tiny)
    with pytest.raises(ConfigError, match="k ≥ 1"):
        attribute_demonstrations(runner, [], QUERY)
    zero_shot = runner.encoder.build([], QUERY)
    with pytest.raises(ConfigError, match="no demonstration segment"):
        attribute_prompt(tiny, zero_shot, label_token_ids=runner.encoder.label_token_ids, gold=0)
    with pytest.raises(ConfigError, match="ends with its query"):
        attribute_prompt(tiny, runner.encoder.demonstrations(DEMOS), label_token_ids=runner.encoder.label_token_ids, gold=0)
    sst2 = ICLRunner(tiny, "sst2")  # ' negative' / ' positive' are many character tokens
    with pytest.raises(ConfigError, match="single token.*first_token"):
        attribute_demonstrations(sst2, DEMOS, QUERY)
    with pytest.raises(ConfigError, match="different tokens"):  # both start with ' '
        attribute_demonstrations(sst2, DEMOS, QUERY, config=AttributionConfig(multi_token_labels="first_token"))
    with pytest.raises(ConfigError, match="gold must be a label index"):
        attribute_demonstrations(runner, DEMOS, QUERY, gold=2)
    with pytest.raises(DataError, match="no gold label"):
        attribute_demonstrations(runner, DEMOS, Example(id="u", inputs={"sentence": "meh"}))
    with pytest.raises(ConfigError, match="multi_token_labels"):
        AttributionConfig(multi_token_labels="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="by must be"):
        attribute_demonstrations(runner, DEMOS, QUERY).attention_frame(by="role")  # type: ignore[arg-type]
