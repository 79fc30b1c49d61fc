"""A new selector is one file: ``tests/unit/plugins/shortest_first.py``, named in a config's
``plugins``, is registered, gets what it declares it needs, and runs through the whole pipeline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from shared_helpers import pipeline_config as _config

from mechsel.experiment import load_config, run_experiment
from mechsel.experiment.pipeline import build_stages
from mechsel.experiment.stages.select import pool_positions
from mechsel.models import tiny_model
from mechsel.selectors import SELECTORS, get_selector, selector_names

PLUGIN = Path(__file__).parent / "plugins" / "shortest_first.py"


@pytest.fixture
def registered():
    """The plug-in's registration, undone afterwards so other tests see the built-in selectors only."""
    yield
    SELECTORS._items.pop("shortest_first", None)
    for name in [m for m in sys.modules if m.startswith("mechsel_plugin_shortest_first")]:
        del sys.modules[name]


def test_a_selector_in_one_file_runs_from_a_config(tmp_path, registered):
    cfg = _config(tmp_path, "plugin")
    cfg["selection"]["runs"].append({"selector": "shortest_first"})
    cfg["plugins"] = [os.path.relpath(PLUGIN, tmp_path)]  # relative to the config file's folder
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_config(path)
    assert "shortest_first" in selector_names() and config.plugins == (str(PLUGIN.resolve()),)
    run = config.selection.run("shortest_first")
    assert run.family == "coverage"  # the class's own family, no list in the pipeline
    features = next(s for s in build_stages(config) if s.name == "features/reviews")
    assert features.params.needs == ("label_probs",)  # its declared need, computed for it alone (margin needs it too)

    model = tiny_model(n_ctx=256)
    result = run_experiment(config, model=model)
    sel = result.tables["selections"]
    mine = sel[sel["selector"] == "shortest_first"]
    assert set(mine["seed"]) == {0, 1, 2} and (mine["query"] == -1).all() and (mine["protocol"] == "fixed").all()
    examples = result.tables["examples"]
    cands = examples[examples["subset"] == "candidate"].sort_values("position")
    texts, ids = cands["text"].tolist(), cands["example_id"].tolist()
    for seed, part in mine.groupby("seed"):
        pos = pool_positions(len(ids), 9, config.split_seed, int(seed))
        n = {ids[i]: len(model.tokenizer.encode(texts[i], add_special_tokens=False)) for i in pos}
        picked = [n[i] for i in part.sort_values("rank")["example_id"]]
        assert sorted(picked) == sorted(sorted(n.values())[:2])  # the two shortest of the seed's pool (model tokens)
        np.testing.assert_array_equal(part["score"].to_numpy(), -np.array(picked, dtype=float))
    scores = result.tables["scores"]
    assert (scores[scores["selector"] == "shortest_first"]["family"] == "coverage").all()
    # the saved config names the plug-in by absolute path, so the run folder reloads on its own
    assert load_config(result.output_dir / "config.yaml").plugins == (str(PLUGIN.resolve()),)


def test_needs_are_honoured_outside_the_pipeline(registered):
    from mechsel.plugins import load_plugins

    load_plugins([str(PLUGIN)])
    load_plugins([str(PLUGIN)])  # importing again registers nothing twice
    sel = get_selector("shortest_first")
    pool_texts = ["a", "bb bb", "c"]
    from mechsel.errors import ConfigError, DataError
    from mechsel.selectors import Pool

    pool = Pool.from_texts(pool_texts, label_probs=np.full((3, 2), 0.5))
    with pytest.raises(ConfigError, match="needs model="):
        sel.select(pool, 1, seed=0)
    with pytest.raises(DataError, match="needs pool.label_probs"):
        get_selector("shortest_first").select(Pool.from_texts(pool_texts), 1, seed=0)
