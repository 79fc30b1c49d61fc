"""Experiment config: YAML loading, unknown keys, contradictions, overrides, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mechsel.errors import ConfigError
from mechsel.experiment import ExperimentConfig, demo_config, dump_config, load_config
from mechsel.experiment.demo import DEMO, QUICK
from mechsel.serialize import to_dict

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {"selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True}], "budgets": [2]}}


def test_defaults_and_yaml_round_trip(tmp_path):
    cfg = load_config(MINIMAL)
    assert cfg.tasks[0].name == "sst2" and cfg.selection.runs[1].family == "activation"
    assert cfg.selection.runs[1].label == "activation" and isinstance(cfg.selection.budgets, tuple)
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_unknown_keys_name_the_key_and_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"Unknown key\(s\) \['sede'\] in selection.*Did you mean 'seeds'.*Valid keys: runs, budgets, seeds"
    ):
        load_config({**MINIMAL, "selection": {**MINIMAL["selection"], "sede": [1]}})
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) \['modle'\] in ExperimentConfig.*'model'"):
        load_config({**MINIMAL, "modle": {}})
    with pytest.raises(ConfigError, match=r"\['choose'\] in selection.runs\[1\]"):
        load_config({"selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose": True}]}})
    with pytest.raises(ConfigError, match=r"define has unknown key\(s\) \['label_feild'\].*label_field"):
        load_config({**MINIMAL, "tasks": [{"name": "x", "define": {"label_feild": "y"}}]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"selection": {**MINIMAL["selection"], "budgets": [100]}}, r"Budget k=100 exceeds the selection pool"),
        ({"tasks": [{"name": "sst2", "n_candidates": 10, "seed_pool_size": 20}]}, r"seed_pool_size=20 exceeds n_candidates=10"),
        ({"selection": {"runs": [{"selector": "random"}]}}, r"no activation-family selector"),
        (
            {
                "selection": {
                    "runs": [{"selector": "random"}, {"selector": "activation", "params": {"statistic": "kurtosis"}}],
                    "budgets": [2],
                },
                "collect": {"statistics": ["mean"]},
            },
            r"ranks by 'kurtosis'.*collect.statistics",
        ),
        (
            {
                "selection": {
                    "runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True, "mask": "alone"}],
                    "budgets": [2],
                }
            },
            r"mask 'alone'.*collect.masks",
        ),
        (
            {
                "tasks": [{"name": "e2e_nlg"}],
                "selection": {
                    "runs": [{"selector": "random"}, {"selector": "margin"}, {"selector": "activation", "choose_statistic": True}],
                    "budgets": [2],
                },
            },
            r"generation task.*\['margin'\]",
        ),
        ({"tasks": [{"name": "sst2", "quality_metric": "bleu"}]}, r"quality_metric='bleu' does not apply to a classification task"),
        (
            {
                "selection": {
                    "runs": [{"selector": "randm"}, {"selector": "activation", "choose_statistic": True}],
                    "baseline": "randm",
                    "budgets": [2],
                }
            },
            r"Unknown selector 'randm'.*Did you mean 'random'",
        ),
        ({"selection": {**MINIMAL["selection"], "baseline": "kate"}}, r"baseline='kate' is not a run label"),
        ({"selection": {**MINIMAL["selection"], "seeds": [1, 1]}}, r"must not repeat"),
        ({"collect": {"masks": ["full", "diagonal"]}}, r"collect.masks\[\] must be one of"),
        (
            {
                "selection": {
                    "runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True, "params": {"statistic": "mean"}}]
                }
            },
            r"choose_statistic picks statistic",
        ),
    ],
)
def test_contradictions_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**MINIMAL, **change})


def test_overrides(tmp_path):
    cfg = load_config(
        MINIMAL,
        [
            "selection.seeds=[0, 1]",
            "tasks.0.test_size=50",
            "analysis.n_boot=10",
            "selection.runs.1.params.nan_policy=exclude",
            "output_dir=/tmp/x",
        ],
    )
    assert cfg.selection.seeds == (0, 1) and cfg.tasks[0].test_size == 50 and cfg.analysis.n_boot == 10
    assert cfg.selection.runs[1].params == {"nan_policy": "exclude"} and cfg.output_dir == "/tmp/x"
    with pytest.raises(ConfigError, match=r"unknown key 'n_bot' in analysis.*Did you mean 'n_boot'"):
        load_config(MINIMAL, ["analysis.n_bot=10"])
    with pytest.raises(ConfigError, match=r"list of 1; use an index 0..0"):
        load_config(MINIMAL, ["tasks.3.test_size=5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(MINIMAL, ["analysis.n_boot"])


def test_identity_ignores_presentation_fields():
    a = load_config(MINIMAL)
    b = load_config(MINIMAL, ["output_dir=elsewhere", "progress=false", "plots.formats=[]", "name=other"])
    c = load_config(MINIMAL, ["analysis.seed=3"])
    assert a.identity_hash() == b.identity_hash() != c.identity_hash()


def test_shipped_configs_load_and_demo_yaml_matches_code():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)
    assert load_config(REPO / "configs" / "demo.yaml") == demo_config()
    assert load_config(REPO / "configs" / "quick.yaml") == demo_config(quick=True)
    assert to_dict(demo_config())["selection"]["budgets"] == DEMO["selection"]["budgets"]
    assert yaml.safe_load(yaml.safe_dump(QUICK)) == QUICK
    assert isinstance(demo_config(), ExperimentConfig)


def test_equal_masks_seed_caps_and_analysis_choices_are_checked_before_work():
    with pytest.raises(ConfigError, match="'isolated' and 'alone'.*same statistics by construction"):
        load_config({**MINIMAL, "collect": {"masks": ["full", "isolated", "alone"]}})
    runs = [{"selector": "random"}, {"selector": "activation", "choose_statistic": True, "n_seeds": 2}]
    ok = load_config({"selection": {"runs": runs, "budgets": [2], "seeds": [0, 1, 2]}, "tasks": [{"name": "sst2", "n_seeds": 2}]})
    assert ok.selection.seeds_for(ok.tasks[0]) == (0, 1)
    with pytest.raises(ConfigError, match="baseline runs every seed"):
        load_config({"selection": {"runs": [{"selector": "random", "n_seeds": 2}], "budgets": [2], "seeds": [0, 1, 2]}})
    with pytest.raises(ConfigError, match="n_seeds=6 exceeds"):
        load_config({**MINIMAL, "tasks": [{"name": "sst2", "n_seeds": 6}]})
    with pytest.raises(ConfigError, match="retrieval_baseline"):
        load_config({**MINIMAL, "selection": {**MINIMAL["selection"], "retrieval_baseline": "activation"}})
    for key, bad in (("rho_test", "exact"), ("fdr_family", "all"), ("rho_adjust", "holm"), ("rho_basis", "both"), ("margin", 2)):
        with pytest.raises(ConfigError, match=f"analysis.{key}"):
            load_config({**MINIMAL, "analysis": {key: bad}})


def test_candidate_slots_follow_the_packing():
    from mechsel.experiment.stages.collect import _order, candidate_slots

    slots = candidate_slots(10, 4, seed=3)
    order = _order(10, 3)
    assert [slots[i] for i in order] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # prompt by prompt, first demonstration first


def test_renamed_task_keys_still_load_with_one_warning_naming_the_new_key(tmp_path, caplog):
    old = {**MINIMAL, "tasks": [{"name": "sst2", "selection_pool": 12, "metric": "accuracy"}, {"name": "rte", "selection_pool": 10}]}
    new = {
        **MINIMAL,
        "tasks": [{"name": "sst2", "seed_pool_size": 12, "quality_metric": "accuracy"}, {"name": "rte", "seed_pool_size": 10}],
    }
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    with caplog.at_level("WARNING", logger="mechsel.experiment.loading"):
        cfg = load_config(path)
    assert cfg == load_config(new) and cfg.tasks[0].seed_pool_size == 12 and cfg.tasks[0].quality_metric == "accuracy"
    warnings = [r.getMessage() for r in caplog.records if r.name == "mechsel.experiment.loading"]
    assert len(warnings) == 2  # once per old key, not once per task
    pool = next(w for w in warnings if "selection_pool" in w)
    assert str(path) in pool and "tasks[].seed_pool_size" in pool and "sst2, rte" in pool
    assert any("tasks[].metric is deprecated; it is now tasks[].quality_metric" in w for w in warnings)
    caplog.clear()
    with caplog.at_level("WARNING", logger="mechsel.experiment.loading"):
        assert load_config(MINIMAL, ["tasks.0.selection_pool=7"]).tasks[0].seed_pool_size == 7
    assert "use --set tasks.0.seed_pool_size" in caplog.text.lower()
    with pytest.raises(ConfigError, match=r"tasks\[sst2\] sets both selection_pool .* keep only seed_pool_size"):
        load_config({**MINIMAL, "tasks": [{"name": "sst2", "selection_pool": 12, "seed_pool_size": 12}]})


def test_the_probe_config_shares_the_demo_s_sst2_settings():
    """configs/sst2_probe.yaml reuses the full demo's SST-2 data, collect and quality stages (its
    README measurement says so), so the settings those stages' keys derive from must stay the demo's."""
    probe, demo = load_config(REPO / "configs" / "sst2_probe.yaml"), demo_config()
    sst2 = next(t for t in demo.tasks if t.name == "sst2")
    assert [t.name for t in probe.tasks] == ["sst2"] and probe.tasks[0] == sst2
    assert (probe.model, probe.collect, probe.quality, probe.split_seed) == (demo.model, demo.collect, demo.quality, demo.split_seed)
