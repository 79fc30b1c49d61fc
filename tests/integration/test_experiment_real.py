"""The experiment runner on the embedded model: a classification task defined only in a config
(``configs/custom_task.yaml``, pointed at JSON-lines files with their own field names) runs end to
end from the CLI with no code change, reruns from the cache, and resumes after an interruption
with the same results."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from mechsel.cli import main
from mechsel.experiment import load_config, load_results, run_experiment
from mechsel.experiment.rundir import read_manifest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "custom_task.yaml"
LABELS = ["negative", "positive"]


def _write_jsonl(source: Path, target: Path, n: int) -> None:
    """The first ``n`` SST-2 rows of ``source`` with other field names and labels as names."""
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i == n:
                break
            row = json.loads(line)
            out.write(json.dumps({"review_text": row["sentence"], "verdict": LABELS[int(row["label"])]}) + "\n")


@pytest.fixture(scope="module")
def overrides(tmp_path_factory, shared_data_dir) -> list[str]:
    """``--set`` overrides of the shipped config: our files and field names, tiny sizes."""
    folder = tmp_path_factory.mktemp("custom-data")
    _write_jsonl(shared_data_dir / "sst2" / "train.jsonl", folder / "reviews_train.jsonl", 200)
    _write_jsonl(shared_data_dir / "sst2" / "validation.jsonl", folder / "reviews_test.jsonl", 100)
    return [
        f"tasks.0.define.files={{train: {folder / 'reviews_train.jsonl'}, validation: {folder / 'reviews_test.jsonl'}}}",
        "tasks.0.define.input_fields=[review_text]",
        "tasks.0.define.label_field=verdict",
        'tasks.0.define.template="Movie review: {review_text}\\nWas it good or bad? Answer:"',
        "tasks.0.n_candidates=8",
        "tasks.0.dev_size=4",
        "tasks.0.test_size=16",
        "tasks.0.seed_pool_size=6",
        "selection.budgets=[2]",
        "selection.seeds=[0, 1]",
        "analysis.n_boot=100",
        "analysis.n_perm=100",
        "analysis.samples_per_example=200",
        "plots.formats=[]",
    ]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, overrides) -> tuple[Path, str]:
    """``mechsel run configs/custom_task.yaml --set ...`` into a fresh directory; its stdout."""
    out = tmp_path_factory.mktemp("custom-run") / "run"
    args = ["run", str(CONFIG), "--output", str(out), "--quiet"] + [a for o in overrides for a in ("--set", o)]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(args)
    assert status == 0, buffer.getvalue()
    return out, buffer.getvalue()


def test_config_defined_task_runs_end_to_end_from_the_cli(cli_run, shared_data_dir):
    out, printed = cli_run
    tables = load_results(out)
    summary_txt = (out / "results" / "summary.txt").read_text()
    assert summary_txt.strip() in printed  # the printed table is the saved one
    examples = tables["examples"]
    assert set(examples["task"]) == {"movie_verdict"}
    assert examples.groupby("subset").size().to_dict() == {"candidate": 8, "dev": 4, "test": 16}
    with open(shared_data_dir / "sst2" / "validation.jsonl", encoding="utf-8") as fh:
        sentences = {json.loads(line)["sentence"] for line, _ in zip(fh, range(100))}
    assert set(examples[examples["subset"] == "test"]["text"]) <= sentences  # test queries come from our file
    scores = tables["scores"]
    assert set(scores["selector"]) == {"random", "activation (dev-chosen)", "kate", "bm25", "margin"}
    assert len(scores) == 5 * 2 and (scores["n_test"] == 16).all() and scores["score"].between(0, 1).all()
    assert set(tables["statistics"]["mask"]) == {"full", "isolated"}
    assert tables["statistics"]["layer"].nunique() == 18  # every layer of Gemma 3 270M
    assert tables["grid"]["rho"].notna().any() and len(tables["summary"]) == 1
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["model"]["loaded"]["name"] == "google/gemma-3-270m"
    assert manifest["identity"]["tasks"][0]["define"]["label_field"] == "verdict"
    assert {p.name for p in (out / "figures").glob("*.html")} >= {"rho_heatmap_movie_verdict_moments.html", "selectors_movie_verdict.html"}


def test_rerun_is_cached_and_interrupted_run_resumes_identically(cli_run, overrides, embedded_model, spy_evaluate, tmp_path):
    ref_dir, _ = cli_run
    ref = load_results(ref_dir)
    config = load_config(CONFIG, overrides, output_dir=str(ref_dir), progress=False)
    again = run_experiment(config, model=embedded_model)
    assert all(r.cached for r in again.records)  # nothing recomputed, not even the model's stages

    spy_evaluate(interrupt_on=3)
    config = load_config(CONFIG, overrides, output_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, model=embedded_model)
    assert read_manifest(config.output_dir)["status"] == "interrupted"

    calls = spy_evaluate()
    result = run_experiment(config, model=embedded_model)
    cached = {r.name: r.cached for r in result.records}
    assert cached["collect/movie_verdict"] and cached["quality/movie_verdict"] and not cached["evaluate/movie_verdict"]
    distinct = ref["scores"][["selector", "budget", "seed"]].drop_duplicates().shape[0]
    assert 0 < calls["n"] <= distinct + 1 - 2  # the two finished evaluations were not redone (+1: the 0-shot baseline)
    for name in ("statistics", "quality", "scores", "grid", "comparison", "summary"):
        pd.testing.assert_frame_equal(result.tables[name].reset_index(drop=True), ref[name].reset_index(drop=True), check_dtype=False)


def test_quick_demo_from_the_cli_runs_every_selector_family_on_the_packaged_data_alone(tmp_path, monkeypatch):
    """``mechsel demo --quick`` (shrunk further by ``--set``) on the embedded model, with no data
    folder anywhere (no ``$MECHSEL_DATA_DIR``, no ``../shared/data``): the packaged subset alone
    feeds it, every selector family runs, and what it prints is the saved summary and verdict."""
    import mechsel.paths

    monkeypatch.delenv("MECHSEL_DATA_DIR", raising=False)
    monkeypatch.setattr(mechsel.paths, "default_data_dirs", lambda: [tmp_path / "no-shared-data"])
    out = tmp_path / "quick"
    tiny = [
        "tasks.0.n_candidates=8",
        "tasks.0.dev_size=4",
        "tasks.0.test_size=12",
        "tasks.0.seed_pool_size=6",
        "selection.budgets=[2]",
        "analysis.n_boot=100",
        "analysis.n_perm=100",
        "analysis.samples_per_example=200",
        "plots.formats=[]",
    ]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["demo", "--quick", "--output", str(out), "--quiet"] + [a for o in tiny for a in ("--set", o)])
    printed = buffer.getvalue()
    assert status == 0, printed
    assert (out / "results" / "summary.txt").read_text().strip() in printed and "--quick runs toy sizes" in printed
    tables = load_results(out)
    scores = tables["scores"]
    assert set(scores["family"]) == {"baseline", "activation", "similarity", "coverage", "uncertainty", "neuron"}
    assert len(scores) == 8 * 3 and sorted(scores["seed"].unique()) == [0, 1, 2]
    assert "the packaged subset" in (out / "run.log").read_text()
    assert set(scores["protocol"]) == {"fixed", "retrieve_from_pool", "annotate_then_retrieve"}
    verdict = tables["verdict"]
    assert verdict["outcome"] in {"holds", "does_not_hold", "inconclusive"} and verdict["text"] in printed
    assert all("mde" in line for line in verdict["parts"]["gain"]["lines"])
