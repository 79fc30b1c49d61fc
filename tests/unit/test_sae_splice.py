"""The spliced-in loss: identity SAE = clean loss; mean SAE = ablated loss; clean loss by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mechsel.collection import CollectConfig
from mechsel.errors import ConfigError
from mechsel.sae.splice import SplicedLoss, spliced_loss

TEXTS = ["a tiny text", "b c", "another example, longer than the others", "xy z", "hello world"]
CONFIG = CollectConfig(layers=(1,), batch_size=2, progress=False)


class FunctionSAE:
    """An SAE-shaped wrapper of a function: ``decode(encode(x)) == fn(x)``."""

    def __init__(self, d_in: int, fn) -> None:
        self.cfg = SimpleNamespace(d_in=d_in, d_sae=d_in, metadata={})
        self.device, self.dtype, self.fn = "cpu", torch.float32, fn

    def encode(self, x):
        return x

    def decode(self, f):
        return self.fn(f)


def hand_clean_loss(model, texts) -> float:
    """Mean next-token cross-entropy of every text run alone (BOS + text), via torch's cross_entropy."""
    total, n = 0.0, 0
    for text in texts:
        tokens = torch.tensor([[model.tokenizer.bos_token_id, *model.tokenizer.encode(text)]])
        with torch.no_grad():
            logits = model(tokens)[0, :-1].double()
        total += torch.nn.functional.cross_entropy(logits, tokens[0, 1:], reduction="sum").item()
        n += tokens.shape[1] - 1
    return total / n


def test_identity_sae_gives_the_clean_loss_and_the_clean_loss_matches_a_hand_computation(tiny):
    d = tiny.cfg.d_model
    mean = torch.randn(d)
    out = spliced_loss(tiny, FunctionSAE(d, lambda x: x), TEXTS, CONFIG, layer=1, mean=mean)
    assert out.spliced_loss == out.clean_loss
    assert out.clean_loss == pytest.approx(hand_clean_loss(tiny, TEXTS), rel=1e-5)
    assert out.ce_loss_recovered == pytest.approx(1.0)
    assert out.n_predictions == sum(len(t) for t in TEXTS)
    assert out.n_replaced == sum(len(t) for t in TEXTS)  # every text token, BOS kept


def test_mean_sae_gives_the_ablated_loss(tiny):
    d = tiny.cfg.d_model
    mean = 3 * torch.randn(d)
    out = spliced_loss(tiny, FunctionSAE(d, lambda x: mean.to(x.dtype).expand_as(x)), TEXTS, CONFIG, layer=1, mean=mean)
    assert out.spliced_loss == pytest.approx(out.ablated_loss, rel=1e-6)
    assert out.ablated_loss != pytest.approx(out.clean_loss)
    assert out.ce_loss_recovered == pytest.approx(0.0, abs=1e-5)


def test_recovered_formula_and_errors(tiny):
    loss = SplicedLoss(layer=0, clean_loss=2.0, spliced_loss=2.5, ablated_loss=4.0, n_predictions=10, n_replaced=8)
    assert loss.ce_loss_recovered == pytest.approx(0.75)
    assert loss.ce_loss_increase == pytest.approx(0.5)
    d = tiny.cfg.d_model
    with pytest.raises(ConfigError, match="no activation reference"):
        spliced_loss(tiny, FunctionSAE(d, lambda x: x), TEXTS, CONFIG, layer=1)
    with pytest.raises(ConfigError, match="shape"):
        spliced_loss(tiny, FunctionSAE(d, lambda x: x), TEXTS, CONFIG, layer=1, mean=torch.zeros(d + 1))
