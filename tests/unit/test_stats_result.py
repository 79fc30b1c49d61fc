"""StatsResult: views, save/load round trip, concat/combine refusing mismatched provenance."""

import json

import numpy as np
import pytest

from mechsel.collection import collect
from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.stats import StatsResult

TEXTS = ["a fine film", "dull", "the plot was thin but the acting held up"]


@pytest.fixture
def result(tiny):
    return collect(tiny, TEXTS, progress=False)


def test_views(result, tiny):
    assert len(result) == 3 and result.layers == tuple(range(tiny.cfg.n_layers))
    arr = result.array("kurtosis")
    assert arr.shape == (3, tiny.cfg.n_layers) and arr.dtype == np.float64
    assert result.array("mean", layers=[1]).shape == (3, 1)
    np.testing.assert_array_equal(result.array("mean", layers=[1])[:, 0], result.array("mean")[:, 1])
    frame = result.to_frame()
    for col in ("example_id", "prompt_id", "layer", "statistic", "value", "mask", "positions", "hook"):
        assert col in frame.columns
    assert len(frame) == 3 * tiny.cfg.n_layers * len(result.statistics)
    row = frame[(frame.example_id == 2) & (frame.layer == 1) & (frame.statistic == "variance")]
    assert row.value.item() == result.array("variance")[2, 1]
    assert set(frame["mask"]) == {"alone"} and set(frame["hook"]) == {"mlp_out"}
    wide = result.to_wide()
    assert wide.shape == (3, tiny.cfg.n_layers * 6) and wide.loc[2, (1, "variance")] == result.array("variance")[2, 1]
    with pytest.raises(ConfigError, match="kurtosis"):
        result.array("kurtosys")
    with pytest.raises(ConfigError, match="not collected"):
        result.array("mean", layers=[7])


def test_save_load_round_trip(result, tmp_path):
    path = result.save(tmp_path / "res")
    manifest = json.loads((path / "manifest.json").read_text())
    prov = manifest["provenance"]
    for key in (
        "model_name",
        "weight_hash",
        "weight_processing",
        "mask",
        "positions",
        "bos_policy",
        "padding_side",
        "dtype",
        "versions",
        "data_hash",
    ):
        assert prov[key], key
    loaded = StatsResult.load(path)
    assert loaded.provenance == result.provenance
    assert loaded.example_ids == result.example_ids and loaded.layers == result.layers
    for name in result.statistics:
        np.testing.assert_array_equal(loaded.array(name), result.array(name))
    result.save(tmp_path / "res")  # overwriting replaces the folder atomically
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["manifest.json", "stats.parquet"]
    with pytest.raises(DataError, match="save"):
        StatsResult.load(tmp_path / "nothing")


def test_string_ids_round_trip(tmp_path):
    from mechsel.provenance import Provenance

    prov = Provenance("m", "h", "none", "float32", hook="mlp_out", mask="isolated", positions="all")
    r = StatsResult({"mean": np.arange(4.0).reshape(2, 2)}, (0, 3), ("a", "b"), np.array([0, 0]), ("demo", "query"), np.array([3, 4]), prov)
    back = StatsResult.load(r.save(tmp_path / "r"))
    assert back.example_ids == ("a", "b") and back.segments == ("demo", "query")
    np.testing.assert_array_equal(back.array("mean"), r.array("mean"))
    with pytest.raises(DataError, match="shape"):
        StatsResult({"mean": np.zeros((3, 2))}, (0, 3), ("a", "b"), np.array([0, 0]), ("demo", "query"), np.array([3, 4]), prov)


def test_concat(tiny, result):
    other = collect(tiny, ["more text", "and more"], progress=False)
    both = StatsResult.concat([result, other])
    assert len(both) == 5 and list(both.prompt_ids) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(both.array("mean")[3:], other.array("mean"))
    assert both.provenance.data_hash not in (result.provenance.data_hash, other.provenance.data_hash)
    alone_input = collect(tiny, ["more text"], positions="last", progress=False)
    with pytest.raises(ProvenanceMismatchError, match="positions: 'all' vs 'last'.*Recompute one of them with the other's settings"):
        StatsResult.concat([result, alone_input])


def test_combine(tiny, result):
    extra = collect(tiny, TEXTS, statistics=["token_variance"], progress=False)
    both = StatsResult.combine([result, extra])
    assert set(both.statistics) == set(result.statistics) | {"token_variance"}
    with pytest.raises(ConfigError, match="more than one"):
        StatsResult.combine([result, result])
    other_data = collect(tiny, ["x", "y", "z"], statistics=["token_variance"], progress=False)
    with pytest.raises(ProvenanceMismatchError, match="data_hash"):
        StatsResult.combine([result, other_data])
    other_hook = collect(tiny, TEXTS, hook="resid_post", statistics=["token_variance"], progress=False)
    with pytest.raises(ProvenanceMismatchError, match="hook: 'mlp_out' vs 'resid_post'"):
        StatsResult.combine([result, other_hook])
