"""The shipped custom-task config runs end to end (tiny model), and every ``analyses/`` script and
``mechsel figures`` rebuild the run's figures from its saved results without loading a model."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

import mechsel.models
from mechsel.cli import main as mechsel_main
from mechsel.experiment import FIGURE_FAMILIES, load_config, run_experiment
from mechsel.models import tiny_model

REPO = Path(__file__).resolve().parents[2]
ANALYSES = REPO / "analyses"
SCRIPTS = {
    "correlation_heatmaps.py": "rho_heatmap_",
    "rho_by_layer.py": "abs_rho_by_layer_",
    "selector_comparison.py": "selectors_",
    "best_statistic_scatter.py": "best_statistic_",
    "activation_distributions.py": "activations_",
}
TINY = [  # the shipped config at toy sizes; nothing about the task itself changes
    "model.name=tiny-random",
    "tasks.0.n_candidates=8",
    "tasks.0.dev_size=2",
    "tasks.0.test_size=4",
    "tasks.0.seed_pool_size=6",
    "collect.context_size=2",
    "collect.statistics=[mean,kurtosis]",
    "selection.budgets=[1]",
    "selection.seeds=[0,1]",
    "selection.runs=[{selector: random}, {selector: activation, choose_statistic: true}, {selector: bm25}, {selector: margin}]",
    "analysis.n_boot=20",
    "analysis.n_perm=20",
    "analysis.n_extreme=2",
    "analysis.samples_per_example=10",
    "plots.formats=[]",
    "progress=false",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``configs/custom_task.yaml`` (a task defined only in YAML, on the shared SST-2 files), run to completion."""
    out = tmp_path_factory.mktemp("custom") / "run"
    config = load_config(REPO / "configs" / "custom_task.yaml", TINY, output_dir=str(out))
    return run_experiment(config, model=tiny_model(n_ctx=1024))


def test_config_only_task_runs_end_to_end(finished_run):
    t = finished_run.tables
    assert set(t["examples"]["task"]) == {"movie_verdict"}
    assert set(t["scores"]["selector"]) == {"random", "activation", "bm25", "margin"}
    assert (t["scores"]["n_test"] == 4).all() and t["scores"]["score"].between(0, 1).all()
    assert t["statistics"]["example_id"].nunique() == 8 and set(t["statistics"]["mask"]) == {"full", "isolated"}
    assert t["quality"]["metric"].eq("gold_prob").all() and len(t["quality"]) == 8
    preds = t["predictions"]
    assert set(preds["gold"]) <= {0, 1} and "p_negative" in preds.columns  # the config's label names reach the outputs
    assert finished_run.verdict["table"]


@pytest.mark.parametrize(("script", "prefix"), sorted(SCRIPTS.items()))
def test_each_analysis_script_writes_its_family(finished_run, script, prefix, tmp_path, monkeypatch, capsys):
    out = tmp_path / "figures"
    code = _run_script(script, [str(finished_run.output_dir), "--out", str(out), "--formats"], monkeypatch)
    assert code == 0
    html = sorted(p.name for p in out.glob("*.html"))
    assert html and all(name.startswith(prefix) for name in html), html
    assert html == sorted(p.name for p in finished_run.figures if p.name.startswith(prefix))
    assert str(out / html[0]) in capsys.readouterr().out


def test_sae_script_writes_nothing_without_sae_statistics(finished_run, tmp_path, monkeypatch, capsys):
    assert _run_script("sae_panel.py", [str(finished_run.output_dir), "-o", str(tmp_path), "--formats"], monkeypatch) == 0
    assert not list(tmp_path.glob("*.html")) and "No figures" in capsys.readouterr().out


def test_all_script_and_cli_regenerate_the_run_figures_without_a_model(finished_run, tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("regenerating figures must not load a model")

    monkeypatch.setattr(mechsel.models, "load_model", no_model)
    monkeypatch.setattr(mechsel.models, "tiny_model", no_model)
    monkeypatch.setattr("transformer_lens.HookedTransformer.__init__", no_model)
    original = {p.name: p.read_bytes() for p in (finished_run.output_dir / "figures").iterdir()}
    assert {p.name for p in finished_run.figures} < set(original)  # + plotly.min.js
    assert _run_script("all.py", [str(finished_run.output_dir), "--out", str(tmp_path / "a"), "--formats"], monkeypatch) == 0
    assert mechsel_main(["figures", str(finished_run.output_dir), "-o", str(tmp_path / "b"), "--formats"]) == 0
    for folder in ("a", "b"):
        files = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir() if p.is_file() and p.name != "report.html"}
        assert files == original  # same file set, byte for byte (div ids are derived from the file stem)
    assert (tmp_path / "b" / "report.html").is_file() and not (tmp_path / "a" / "report.html").exists()  # the CLI writes the report
    assert set(FIGURE_FAMILIES) == {"correlation", "layers", "selectors", "scatter", "sae", "activations", "decodability"}


def test_scripts_explain_a_folder_without_results(tmp_path, monkeypatch, capsys):
    assert _run_script("correlation_heatmaps.py", [str(tmp_path), "--formats"], monkeypatch) == 2
    assert "no mechsel results" in capsys.readouterr().err


def test_every_family_has_a_script():
    documented = (ANALYSES / "README.md").read_text()
    for script in [*SCRIPTS, "sae_panel.py", "decodability.py", "all.py"]:
        assert (ANALYSES / script).is_file() and f"`{script}`" in documented
    for family in FIGURE_FAMILIES:
        assert f"`{family}`" in documented


def _run_script(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``analyses/<name>`` in this process as ``python analyses/<name> ARGV`` would; its exit status."""
    monkeypatch.syspath_prepend(str(ANALYSES))
    monkeypatch.setattr(sys, "argv", [str(ANALYSES / name), *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ANALYSES / name), run_name="__main__")
    return int(exit_info.value.code or 0)
