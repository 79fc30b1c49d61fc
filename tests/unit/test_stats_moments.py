"""Moment reducers against scipy.stats / numpy on grouped random data."""

import numpy as np
import pytest
import scipy.stats
import torch

from mechsel.errors import ConfigError
from mechsel.stats import STATISTICS, Moments, Reducer, TokenMoments


def _grouped(rng, sizes, d, heavy=False):
    blocks = []
    for g, n in enumerate(sizes):
        x = rng.standard_t(3, size=(n, d)) if heavy else rng.normal(loc=g - 1.0, scale=1 + g, size=(n, d))
        blocks.append(x.astype(np.float32))
    acts = np.concatenate(blocks)
    groups = np.concatenate([np.full(n, g) for g, n in enumerate(sizes)])
    return acts, groups, blocks


def _rel(a, b):
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-12)


@pytest.mark.parametrize("heavy", [False, True])
@pytest.mark.parametrize("chunk", [None, 50])
def test_moments_match_scipy(heavy, chunk, monkeypatch):
    if chunk is not None:  # force several float64 chunks per call, splitting groups across them
        monkeypatch.setattr("mechsel.stats.moments._CHUNK_VALUES", chunk)
    rng = np.random.default_rng(1)
    sizes = [1, 5, 17, 3]
    acts, groups, blocks = _grouped(rng, sizes, d=24, heavy=heavy)
    out = Moments().reduce(torch.from_numpy(acts), torch.from_numpy(groups), len(sizes), layer=0)
    for g, block in enumerate(blocks):
        v = block.astype(np.float64).reshape(-1)
        ref = {
            "mean": v.mean(),
            "variance": v.var(),
            "skewness": scipy.stats.skew(v, bias=True),
            "kurtosis": scipy.stats.kurtosis(v, fisher=True, bias=True),
            "max_abs": np.abs(v).max(),
            "l2_norm": np.linalg.norm(v),
        }
        for name, value in ref.items():
            got = out[name][g].item()
            assert out[name].dtype == torch.float64
            assert _rel(got, value) <= 1e-5, (name, g, got, value)


@pytest.mark.parametrize("chunk", [None, 50])
def test_token_moments_match_scipy(chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr("mechsel.stats.moments._CHUNK_VALUES", chunk)
    rng = np.random.default_rng(2)
    sizes = [4, 1, 9]
    acts, groups, blocks = _grouped(rng, sizes, d=16, heavy=True)
    out = TokenMoments().reduce(torch.from_numpy(acts), torch.from_numpy(groups), len(sizes), layer=3)
    for g, block in enumerate(blocks):
        b = block.astype(np.float64)
        ref = {
            "token_variance": b.var(axis=1).mean(),
            "token_skewness": scipy.stats.skew(b, axis=1, bias=True).mean(),
            "token_kurtosis": scipy.stats.kurtosis(b, axis=1, fisher=True, bias=True).mean(),
            "token_max_abs": np.abs(b).max(axis=1).mean(),
            "token_l2_norm": np.linalg.norm(b, axis=1).mean(),
        }
        for name, value in ref.items():
            assert _rel(out[name][g].item(), value) <= 1e-5, (name, g)


def test_constant_activations_give_nan_shape_statistics_not_a_crash():
    acts = torch.cat([torch.full((3, 8), 2.5), torch.randn(2, 8)])
    groups = torch.tensor([0, 0, 0, 1, 1])
    out = Moments().reduce(acts, groups, 2, layer=0)
    assert np.isnan(out["skewness"][0].item()) and np.isnan(out["kurtosis"][0].item())
    assert out["variance"][0].item() == 0.0 and out["mean"][0].item() == 2.5
    assert np.isfinite(out["skewness"][1].item()) and np.isfinite(out["kurtosis"][1].item())
    # scipy agrees that a constant sample has NaN skewness / kurtosis.
    with pytest.warns(RuntimeWarning, match="catastrophic cancellation"):
        assert np.isnan(scipy.stats.skew(np.full(24, 2.5)))
    tok = TokenMoments().reduce(acts, groups, 2, layer=0)
    assert np.isnan(tok["token_skewness"][0].item()) and np.isfinite(tok["token_skewness"][1].item())


def test_subsets_and_protocol():
    m = Moments(statistics=("kurtosis", "mean"))
    assert isinstance(m, Reducer) and isinstance(TokenMoments(), Reducer)
    assert m.statistic_names() == ("kurtosis", "mean")
    out = m.reduce(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 1, 1]), 2, layer=0)
    assert list(out) == ["kurtosis", "mean"]
    full = Moments().reduce(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 1, 1]), 2, layer=0)
    assert set(full) == {"mean", "variance", "skewness", "kurtosis", "max_abs", "l2_norm"}
    assert STATISTICS.get("moments") is Moments and STATISTICS.get("token_moments") is TokenMoments


def test_unknown_statistic_in_family_raises_with_hint():
    with pytest.raises(ConfigError, match="kurtosis"):
        Moments(statistics=("kurtosys",))
