"""``mechsel demo --sae PATH``: the SAE's layer comes from its cfg.json; bad folders teach."""

from __future__ import annotations

import json

import pytest

from mechsel.errors import ConfigError
from mechsel.experiment import demo_config, load_config
from mechsel.experiment.demo import SAE_RUNS, sae_changes
from mechsel.serialize import to_dict


def sae_folder(tmp_path, name, hook):
    folder = tmp_path / name
    folder.mkdir()
    reference = {"mean": [0.0] * 640, "variance": 1.0, "n_tokens": 10, "source": "test"}
    (folder / "cfg.json").write_text(json.dumps({"d_in": 640, "metadata": {"hook_name": hook, "mechsel": {"reference": reference}}}))
    return folder


def test_sae_folder_adds_statistics_and_selector_runs(tmp_path):
    base = demo_config(quick=True)
    folder = sae_folder(tmp_path, "layer_9", "blocks.9.hook_mlp_out")
    config = load_config(to_dict(base), **sae_changes(base, [str(folder)]))
    assert dict(config.sae.saes) == {9: str(folder.resolve())}
    labels = [r.label for r in config.selection.runs]
    assert labels[: len(base.selection.runs)] == [r.label for r in base.selection.runs]
    assert labels[len(base.selection.runs) :] == [r["label"] for r in SAE_RUNS]
    added = config.selection.runs[len(base.selection.runs) :]
    assert {r.family for r in added} == {"sae"}
    coverage = next(r for r in added if r.selector == "sae_coverage")
    assert coverage.params["n_seed"] == min(t.effective_seed_pool_size for t in base.tasks)  # fits the quick pool of 12


def test_two_saes_pin_the_topk_layer(tmp_path):
    base = demo_config(quick=True)
    paths = [str(sae_folder(tmp_path, f"layer_{L}", f"blocks.{L}.hook_mlp_out")) for L in (12, 4)]
    changes = sae_changes(base, paths)
    assert sorted(changes["sae"]["saes"]) == [4, 12]
    added = changes["selection"]["runs"][len(base.selection.runs) :]
    assert all(r["params"]["layer"] == 4 for r in added)


def test_bad_sae_folders_teach(tmp_path):
    base = demo_config(quick=True)
    with pytest.raises(ConfigError, match="no cfg.json"):
        sae_changes(base, [str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="hook_mlp_out"):
        sae_changes(base, [str(sae_folder(tmp_path, "resid", "blocks.3.hook_resid_post"))])
    same = [str(sae_folder(tmp_path, n, "blocks.5.hook_mlp_out")) for n in ("a", "b")]
    with pytest.raises(ConfigError, match="two SAEs for layer 5"):
        sae_changes(base, same)


def test_an_sae_without_an_activation_reference_is_refused_up_front(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"d_in": 640, "metadata": {"hook_name": "blocks.9.hook_mlp_out"}}))
    with pytest.raises(ConfigError, match="no activation reference"):
        sae_changes(demo_config(quick=True), [str(folder)])
