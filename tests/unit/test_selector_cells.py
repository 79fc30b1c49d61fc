"""A selector that reads a (layer, statistic, mask) cell gets the checks ``activation`` gets,
whatever it calls its fields: ``tests/unit/plugins/closest_to_median.py`` names its cell
``at_layer`` / ``stat`` and declares them (``layer_field``, ``statistic_field``, ``reads``).

Each mistake is made twice, once on the built-in activation selector and once on the plug-in,
and must fail the same way when the config loads (or, for layer ranges, when the model's depth
is read), before any model work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_errors_config import embedded_cache  # noqa: F401  (a fixture: the embedded model's depth, 18 layers)

from mechsel.errors import ConfigError
from mechsel.experiment import load_config
from mechsel.experiment.loading import validate_against_model
from mechsel.experiment.pipeline import build_stages
from mechsel.selectors import SELECTORS

PLUGIN = Path(__file__).parent / "plugins" / "closest_to_median.py"
FIELDS = {"activation": ("layer", "statistic"), "closest_to_median": ("at_layer", "stat")}


@pytest.fixture
def registered():
    yield
    SELECTORS._items.pop("closest_to_median", None)
    for name in [m for m in sys.modules if m.startswith("mechsel_plugin_closest_to_median")]:
        del sys.modules[name]


def config(selector: str, *, layer=0, statistic="mean", mask=None, layers=(0, 17), **run) -> dict:
    layer_field, stat_field = FIELDS[selector]
    params = {stat_field: statistic, layer_field: layer}
    runs = [{"selector": "random"}, {"selector": selector, "label": "cell", "params": params, "mask": mask, **run}]
    if selector != "activation":
        runs.append({"selector": "activation", "choose_statistic": True})
    return {
        "plugins": [str(PLUGIN)],
        "collect": {
            "masks": ["full", "isolated"],
            "statistics": ["mean", "kurtosis"],
            "layers": list(layers) if layers != "all" else "all",
        },
        "selection": {"runs": runs, "budgets": [2]},
    }


BOTH = pytest.mark.parametrize("selector", ["activation", "closest_to_median"])


@BOTH
def test_a_valid_cell_loads(selector, registered):
    run = load_config(config(selector, layer=17, statistic="kurtosis", mask="isolated")).selection.run("cell")
    assert run.mask == "isolated"


@BOTH
@pytest.mark.parametrize(
    "change, message",
    [
        ({"mask": "alone"}, r"selection.runs\[cell\] reads statistics under mask 'alone', which collect.masks \['full', 'isolated'\]"),
        ({"statistic": "skewness"}, r"selection.runs\[cell\] ranks by 'skewness', which collect.statistics \['mean', 'kurtosis'\]"),
        ({"layer": 5}, r"selection.runs\[cell\] uses layer\(s\) \[5\], not in collect.layers \[0, 17\]"),
        ({"choose_statistic": True}, r"selection.runs\[cell\]: choose_statistic "),
    ],
)
def test_the_same_mistakes_fail_the_same_way_at_load(selector, change, message, registered):
    with pytest.raises(ConfigError, match=message):
        load_config(config(selector, **change))


@BOTH
def test_layers_counted_from_the_end_are_range_checked_and_normalised(selector, registered, embedded_cache):  # noqa: F811
    layer_field = FIELDS[selector][0]
    cfg = validate_against_model(load_config(config(selector, layer=-1)))
    assert cfg.selection.run("cell").params[layer_field] == 17
    with pytest.raises(ConfigError, match=rf"selection.runs\[cell\].params.{layer_field}: layer 30 is out of range .* 18 layers"):
        validate_against_model(load_config(config(selector, layer=30, layers="all")))


@BOTH
def test_its_cell_is_recorded_beside_its_results(selector, registered):
    stages = build_stages(load_config(config(selector, layer=17, statistic="kurtosis", mask="isolated")))
    analyse = next(s for s in stages if s.name == "analyse")
    cells = [c for c in analyse.params.cell_runs if c.label == "cell"]
    assert [(c.mask, c.layer, c.statistic) for c in cells] == [("isolated", 17, "kurtosis")]


def test_a_plugin_parameter_is_typed_and_checked_at_load(registered):
    data = config("closest_to_median")
    data["selection"]["runs"][1]["params"] = {"stat": "mean", "at_layr": 0}
    with pytest.raises(ConfigError, match=r"selection.runs\[cell\].params.at_layr is not a parameter .* Did you mean 'at_layer'"):
        load_config(data)
    data["selection"]["runs"][1]["params"] = {"stat": "mean", "at_layer": "first"}
    with pytest.raises(ConfigError, match=r"selection.runs\[cell\].params: closest_to_median: at_layer must be one layer index"):
        load_config(data)
