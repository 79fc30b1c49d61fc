"""Bad input to collect gets a clear error that names the fix."""

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from mechsel.collection import CollectConfig, collect
from mechsel.errors import ConfigError, DataError
from mechsel.masks import PromptBuilder


def _run(model, inputs=("a fine film",), **kw):
    return collect(model, list(inputs) if not isinstance(inputs, str) else inputs, progress=False, **kw)


@pytest.mark.parametrize(
    "inputs, match",
    [
        ([], "non-empty list"),
        (["ok", ""], "Input 1 is empty.*remove it from the inputs"),
        (["ok", "   "], "Input 1 is empty.*remove it from the inputs"),
        (["ok", 3], "Input 1 is a int, not a string.*Pass texts as str"),
        ("just one string", "wrap a single text in a list"),
    ],
)
def test_bad_texts(tiny, inputs, match):
    with pytest.raises(DataError, match=match):
        _run(tiny, inputs)


def test_unknown_names(tiny):
    with pytest.raises(ConfigError, match="Did you mean 'mlp_out'.*Valid hooks.*resid_post"):
        _run(tiny, hook="mlp_outt")
    with pytest.raises(ConfigError, match="Unknown statistic 'kurtosys'.*Did you mean 'kurtosis'"):
        _run(tiny, statistics=["kurtosys"])
    with pytest.raises(ConfigError, match="Unknown mask 'isolate'.*Valid masks"):
        _run(tiny, mask="isolate")
    with pytest.raises(ConfigError, match="Unknown positions 'inputs'"):
        _run(tiny, positions="inputs")
    with pytest.raises(ConfigError, match="per head|\\[batch, pos, d\\]"):
        _run(tiny, hook="attn.hook_q")


def test_layers(tiny):
    with pytest.raises(ConfigError, match=r"Layer 2 is out of range: this model has 2 layers \(0\.\.1; negative counts from the end\)"):
        _run(tiny, layers=[0, 2])
    with pytest.raises(ConfigError, match="layers must be"):
        _run(tiny, layers="first")
    assert _run(tiny, layers=-1).layers == (1,)


def test_too_long_text_raises_unless_truncate(tiny):
    long = "x" * (tiny.cfg.n_ctx + 5)
    with pytest.raises(DataError, match="context is .*Shorten it, or pass truncate=True"):
        _run(tiny, ["fine", long])
    result = _run(tiny, ["fine", long], truncate=True)
    assert result.n_tokens[1] == tiny.cfg.n_ctx - 1 and result.provenance.extra["n_truncated"] == 1


def test_plain_texts_need_alone(tiny):
    with pytest.raises(ConfigError, match="mask='alone'"):
        _run(tiny, mask="isolated")


def test_prompt_errors(tiny):
    tok = tiny.tokenizer
    b = PromptBuilder(tok, bos_token_id=tok.bos_token_id)
    b.segment("demo", 0).add("R: ", "template").add("nice", "text")
    b.segment("query", 1).add("R: ", "template")
    prompt = b.build()
    with pytest.raises(DataError, match="Example 1 .*no tokens for positions='all'.*include_template=True"):
        collect(tiny, [prompt], mask="full", progress=False)
    assert len(collect(tiny, [prompt], mask="full", include_template=True, progress=False)) == 2
    with pytest.raises(DataError, match="mix of texts"):
        collect(tiny, [prompt, "text"], progress=False)
    with pytest.raises(ConfigError, match="plain texts only"):
        collect(tiny, [prompt], truncate=True, progress=False)


class _BadReducer:
    family: ClassVar[str] = "bad"

    def statistic_names(self):
        return ("x",)

    def reduce(self, acts, groups, n_groups, layer):
        return {"x": torch.zeros(n_groups + 1, dtype=torch.float64)}


def test_bad_reducers(tiny):
    with pytest.raises(ConfigError, match="one value per group"):
        _run(tiny, statistics=[_BadReducer()])
    with pytest.raises(ConfigError, match="names or Reducer instances"):
        _run(tiny, statistics=[42])
    with pytest.raises(ConfigError, match="produced twice"):
        _run(tiny, statistics=["mean", "mean"])


def test_config_validation_and_save_folder(tiny, tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        CollectConfig(batch_size=0)
    with pytest.raises(ConfigError, match="bos_token_id"):
        CollectConfig(bos_token_id="first")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an activation-shard folder"):
        _run(tiny, save_activations=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_no_bos_tokenizer_needs_an_explicit_choice(tiny):
    tiny.tokenizer.bos_token_id = None
    with pytest.raises(ConfigError, match="bos_token_id=None"):
        _run(tiny)
    assert _run(tiny, bos_token_id=None).provenance.bos_policy == "no BOS"


def test_any_iterable_of_texts_is_accepted(tiny):
    texts = ["a fine film", "dull"]
    ref = _run(tiny, texts)
    for inputs in (tuple(texts), pd.Series(texts), (t for t in texts)):
        np.testing.assert_array_equal(collect(tiny, inputs, progress=False).array("mean"), ref.array("mean"))
