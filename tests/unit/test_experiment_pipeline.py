"""The whole pipeline on a tiny random model and a task defined only in config: results, cache,
resume after an interruption, provenance refusal, figure regeneration and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from shared_helpers import pipeline_config

from mechsel.cli import main
from mechsel.errors import ConfigError, ProvenanceMismatchError
from mechsel.experiment import load_config, load_results, regenerate_figures, run_experiment
from mechsel.experiment.rundir import read_manifest
from mechsel.models import tiny_model

_config = pipeline_config


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_ctx=256)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("exp")
    result = run_experiment(load_config(_config(root, "ref")), model=model)
    return root, result


def test_end_to_end_tables_verdict_and_figures(reference):
    root, result = reference
    t = result.tables
    assert set(t["scores"]["selector"]) == {"random", "activation", "bm25", "margin"}
    assert len(t["scores"]) == 4 * 3 and (t["scores"]["n_test"] == 6).all()
    assert set(t["statistics"]["mask"]) == {"full", "isolated"} and t["statistics"]["example_id"].nunique() == 12
    assert len(t["grid"]) == 2 * 2 * 2 and {"rho", "q_value"} <= set(t["grid"].columns)
    assert len(t["masking"]) == 4 and len(t["summary"]) == 1
    assert result.verdict["outcome"] in {"holds", "does_not_hold", "inconclusive"} and "paper's finding" in result.verdict["text"]
    assert (
        {"rho_partial", "q_partial", "n_covariates"} <= set(t["grid"].columns)
        and "partial ρ" in result.verdict["text"]
        and "n_tokens, label, slot" in result.verdict["table"]
    )
    assert {"n_tokens", "slot"} <= set(t["statistics"].columns)
    assert {"gain", "correlation"} == set(result.verdict["parts"]) and all("mde" in x for x in result.verdict["parts"]["gain"]["lines"])
    retrieval = t["selections"][t["selections"]["selector"] == "bm25"]
    assert (retrieval["query"] >= 0).all() and retrieval["query"].nunique() == 6
    manifest = read_manifest(result.output_dir)
    assert manifest["status"] == "complete" and manifest["model"]["loaded"]["name"] == "tiny-random"
    assert manifest["model"]["matmul_precision"] == {"requested": "highest", "effective": "highest", "error": 0.0, "device": "cpu"}
    assert set(manifest["stages"]) >= {"collect/reviews", "quality/reviews", "select/reviews", "evaluate/reviews", "analyse"}
    names = {p.name for p in result.figures}
    assert {
        "rho_heatmap_reviews_moments.html",
        "selectors_reviews.html",
        "abs_rho_by_layer_reviews.html",
        "best_statistic_reviews.html",
        "activations_reviews.html",
    } <= names
    saved = load_results(result.output_dir)
    pd.testing.assert_frame_equal(saved["summary"], t["summary"])
    pd.testing.assert_frame_equal(saved["baselines"], t["baselines"])
    assert (result.output_dir / "results" / "README.md").read_text().count("parquet") >= 8


def test_rerun_is_cached_and_identical(reference, model):
    root, first = reference
    again = run_experiment(load_config(_config(root, "ref")), model=model)
    assert all(r.cached for r in again.records)
    pd.testing.assert_frame_equal(again.tables["scores"], first.tables["scores"])


def test_interrupted_run_resumes_with_identical_results(reference, model, spy_evaluate, tmp_path):
    root, ref = reference
    calls = spy_evaluate(interrupt_on=4)
    config = load_config(_config(root, "interrupted"))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, model=model)
    assert read_manifest(config.output_dir)["status"] == "interrupted"
    done_before = calls["n"] - 1
    calls = spy_evaluate()
    result = run_experiment(config, model=model)
    cached = {r.name: r.cached for r in result.records}
    assert cached["collect/reviews"] and cached["quality/reviews"] and cached["select/reviews"] and not cached["evaluate/reviews"]
    distinct = len({(s, b, seed) for s, b, seed in ref.tables["scores"][["selector", "budget", "seed"]].itertuples(index=False)})
    assert calls["n"] <= distinct + 1 - done_before  # finished evaluations were not redone (+1: the 0-shot baseline)
    for name in ("scores", "predictions", "grid", "comparison", "summary"):
        pd.testing.assert_frame_equal(result.tables[name], ref.tables[name])


def test_baselines_are_the_zero_shot_score_and_the_majority_share_beside_every_family(reference, model):
    from mechsel.experiment.resources import Resources
    from mechsel.icl import evaluate

    root, result = reference
    base = result.tables["baselines"]
    assert list(base.columns[:5]) == ["task", "metric", "zero_shot", "zero_shot_ci_low", "zero_shot_ci_high"]
    assert (
        len(base) == 1
        and base["n_test"].iloc[0] == 6
        and set(result.tables["scores"]["selector"]) == {"random", "activation", "bm25", "margin"}
    )
    res = Resources(load_config(_config(root, "ref")), model=model)
    test = list(res.splits("reviews").test)
    assert base["zero_shot"].iloc[0] == evaluate(res.runner("reviews"), test, [], n_boot=200).score  # scored once, as a direct call
    labels = [e.label for e in test]
    assert base["majority"].iloc[0] == max(labels.count(0), labels.count(1)) / 6
    per_task = result.verdict["baselines"]["reviews"]
    assert per_task["majority"] == base["majority"].iloc[0] and isinstance(per_task["below_majority"], bool)
    table = result.verdict["table"]
    assert "Baselines of each task" in table and "Best of each family vs random" in table and "winner's curse" in table
    assert (
        table.index("activation selector") < table.index("Baselines") < table.index("Best of each family") < table.index("Every selector")
    )
    family_lines = table.split("Best of each family")[1].split("Every selector")[0]
    assert "bm25 (1)" in family_lines and "margin (1)" in family_lines and "similarity" in family_lines
    assert ("FLAG task reviews" in table) == per_task["below_majority"] == ("Caution, task reviews" in result.verdict["text"])


def test_config_check_reads_the_data_as_the_run_would_without_a_model(tmp_path, capsys, monkeypatch):
    import yaml

    import mechsel.models

    monkeypatch.setattr(mechsel.models, "load_model", lambda *a, **k: pytest.fail("config --check loaded a model"))
    path = tmp_path / "c.yaml"
    cfg = _config(tmp_path, "out")
    path.write_text(yaml.safe_dump(cfg))
    assert main(["config", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "reviews: classification; candidates 12 (train), dev 3 (train), test 6 (test); test labels bad " in out
    assert "majority share" in out and "model:" not in out  # a summary, not the config
    cfg["tasks"][0]["define"]["test_split"] = "tset"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["config", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mechsel: error: {path}: tasks[reviews]:") and err.count("\n") == 1
    assert "(tasks[reviews].define.test_split)" in err and "Did you mean 'test'" in err and "Available: ['test', 'train']" in err


def test_other_provenance_is_refused_unless_overwrite(reference, model):
    root, _ = reference
    changed = load_config(_config(root, "ref"), ["analysis.seed=5"])
    with pytest.raises(ProvenanceMismatchError, match=r"analysis.seed: 0 → 5"):
        run_experiment(changed, model=model)
    result = run_experiment(changed, model=model, overwrite=True)
    cached = {r.name: r.cached for r in result.records}
    assert cached["collect/reviews"] and cached["evaluate/reviews"] and not cached["analyse"]
    assert read_manifest(result.output_dir)["identity"]["analysis"]["seed"] == 5


def test_figures_regenerate_identically_from_saved_results(reference, tmp_path):
    _, result = reference
    *written, report = regenerate_figures(result.output_dir, tmp_path / "figs", formats=[])
    assert {p.name for p in written} == {p.name for p in result.figures}
    for path in written:
        assert path.read_bytes() == (result.output_dir / "figures" / path.name).read_bytes()
    assert report == tmp_path / "figs" / "report.html"  # beside the redrawn figures, the run folder untouched
    _check_report_links(report)


def test_cli_figures_config_and_errors(reference, tmp_path, capsys):
    _, result = reference
    assert main(["figures", str(result.output_dir), "--output", str(tmp_path / "f"), "--formats"]) == 0
    assert "selectors_reviews.html" in capsys.readouterr().out
    assert main(["config", "--quick", "--set", "selection.seeds=[7]"]) == 0
    assert "- 7" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("selection:\n  seedz: [1]\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Unknown key(s) ['seedz'] in selection" in err and "seeds" in err


def test_protocols_label_their_annotation_budget_and_retrieve_among_the_annotated(tmp_path, model):
    """``annotate_then_retrieve``: random labels B = 5 examples, each query then gets its k most
    BM25-similar among those 5; fixed sets use B = k,
    retrieval over the whole pool B = the pool size; the protocol's own baseline is paired."""
    runs = [
        {"selector": "random"},
        {"selector": "bm25", "label": "random → bm25", "annotated": "random", "annotation_budget": 5},
        {"selector": "bm25", "label": "pool bm25"},
        {"selector": "bm25", "label": "activation → bm25", "annotated": "activation", "annotation_budget": 5, "n_seeds": 2},
        {"selector": "activation", "choose_statistic": True},
    ]
    cfg = _config(
        tmp_path, "protocols", selection={"runs": runs, "budgets": [2], "seeds": [0, 1, 2], "retrieval_baseline": "random → bm25"}
    )
    result = run_experiment(load_config(cfg), model=model)
    scores = result.tables["scores"].set_index("selector")
    assert scores.loc["random", "protocol"].eq("fixed").all() and scores.loc["random", "annotation_budget"].eq(2).all()
    assert scores.loc["pool bm25", "protocol"].eq("retrieve_from_pool").all() and scores.loc["pool bm25", "annotation_budget"].eq(9).all()
    assert scores.loc["random → bm25", "protocol"].eq("annotate_then_retrieve").all()
    assert scores.loc["random → bm25", "annotation_budget"].eq(5).all()
    assert len(scores.loc[["activation → bm25"]]) == 2  # n_seeds: the first two seeds only
    comp = result.tables["comparison"].set_index("selector")
    assert comp.loc["activation → bm25", "baseline"] == "random → bm25" and comp.loc["pool bm25", "baseline"] == "random"
    assert "B" in result.verdict["table"] and "annotate_then_retrieve" in result.verdict["table"]

    sel = result.tables["selections"]
    mine = sel[sel["selector"] == "random → bm25"]
    for seed, part in mine.groupby("seed"):
        detail = json.loads(next(d for d in part["detail"] if d))
        annotated = detail["annotated"]
        fixed_random = sel[(sel["selector"] == "random") & (sel["seed"] == seed) & (sel["budget"] == 2)]
        assert len(annotated) == 5 and set(part["example_id"]) <= set(annotated)
        assert detail["annotated_by"] == "random" and len(fixed_random) == 2
        for q, demos in part.groupby("query"):  # BM25 itself is checked by hand in test_selectors_retrieval
            assert list(demos.sort_values("rank")["score"]) == sorted(demos["score"])  # most similar last


PROBE_FIGURES = """JSON.stringify(Array.from(document.querySelectorAll('figure[data-figure]')).map(
    f => [f.dataset.figure, f.querySelectorAll('.js-plotly-plot svg.main-svg').length]))"""
ALL_DRAWN = "Array.from(document.querySelectorAll('figure[data-figure]')).every(f => f.querySelector('svg.main-svg'))"


def _check_report_links(report: Path) -> list[str]:
    """Every relative link of ``report`` resolves to an existing file; its hrefs."""
    from html.parser import HTMLParser
    from urllib.parse import unquote

    hrefs: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("a", "link", "script", "img"):
                hrefs.extend(v for k, v in attrs if k in ("href", "src") and v)

    Links().feed(report.read_text(encoding="utf-8"))
    for href in hrefs:
        if href.startswith("#"):
            continue
        assert "://" not in href, f"{href}: the report must not point outside the run"
        assert (report.parent / unquote(href)).is_file(), href
    return hrefs


def test_report_has_the_verdict_summary_every_figure_and_links(reference):
    import html

    from plotly.offline import get_plotlyjs

    _, result = reference
    report = result.report_path
    assert report == result.output_dir / "report.html"
    page = report.read_text(encoding="utf-8")
    verdict = result.verdict
    assert html.escape(verdict["text"]) in page and f'data-outcome="{verdict["outcome"]}"' in page
    assert html.escape(verdict["table"]) in page  # the printed summary table
    assert "summary.parquet as a table" in page and "<table" in page
    stems = [p.stem for p in result.figures if p.suffix == ".html"]
    assert stems and all(f'data-figure="{stem}"' in page for stem in stems)
    assert page.count('class="plotly-graph-div"') == len(stems)
    assert page.count(get_plotlyjs()[:500]) == 1 and "<script src=" not in page  # plotly.js inlined once, nothing fetched
    hrefs = _check_report_links(report)
    results = result.output_dir / "results"
    assert {f"results/{p.name}" for p in results.glob("*.parquet")} | {"results/README.md"} <= set(hrefs)
    assert f"figures/{stems[0]}.html" in hrefs


def test_report_escapes_text(reference, tmp_path):
    from mechsel.experiment import write_report

    _, result = reference
    tables = {**result.tables, "verdict": {**result.verdict, "text": "<script>alert(1)</script> & more"}}
    page = write_report(result.output_dir, tmp_path / "r.html", tables=tables).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page and "<script>alert(1)" not in page
    _check_report_links(tmp_path / "r.html")


def test_report_renders_in_headless_chromium_offline(reference):
    """The report opens in a real browser with the network cut off: no console error, no uncaught
    exception, no request other than the file itself (and inline data), and every figure drew."""
    from _chromium import load_page

    _, result = reference
    stems = [p.stem for p in result.figures if p.suffix == ".html"]
    page = load_page(result.report_path, probe=PROBE_FIGURES, until=ALL_DRAWN)
    assert page.errors == []
    assert all(url.startswith(("file:", "data:", "blob:")) for url in page.requests), page.requests
    drawn = dict(page.probe)  # figure → number of plotly svg layers drawn in it
    assert sorted(drawn) == sorted(stems) and all(n >= 1 for n in drawn.values()), drawn


def test_fixed_column_tables_are_written_as_documented(reference):
    """``selections``, ``scores`` and ``baselines`` are defined once (mechsel.experiment.results):
    the written tables have exactly those columns in that order (scores: then the secondary
    metric), and results/README.md documents every one of them."""
    from mechsel.experiment.results import BASELINE_COLUMNS, SCORE_COLUMNS, SELECTION_COLUMNS

    _, result = reference
    t = result.tables
    assert list(t["selections"].columns) == list(SELECTION_COLUMNS)
    assert list(t["baselines"].columns) == list(BASELINE_COLUMNS)
    assert list(t["scores"].columns)[: len(SCORE_COLUMNS)] == list(SCORE_COLUMNS)
    readme = (result.output_dir / "results" / "README.md").read_text()
    for column in [*SELECTION_COLUMNS, *SCORE_COLUMNS, *BASELINE_COLUMNS]:
        assert f"| {column} |" in readme, column


def test_a_probe_run_adds_representations_a_paired_line_and_the_decodability_table(tmp_path, model):
    """With a ``probe`` run: the representations stage runs, the probe trains on the candidates
    outside each seed's pool only, it gets its paired line against random, and the analysis
    writes the decodability table and its sentence."""
    from mechsel.experiment.stages import select as select_module

    cfg = _config(tmp_path, "probe")
    cfg["selection"]["runs"].append({"selector": "probe", "params": {"layer": 1}})
    cfg["tasks"][0]["seed_pool_size"] = 2  # 10 of 12 candidates outside each pool: the probe's training set
    cfg["selection"]["budgets"] = [2]
    seen = []
    real = select_module.Selecting.probe_training

    def spy(self, run, pos):
        training = real(self, run, pos)
        seen.append((set(training.ids), {self.ids[i] for i in pos}))
        return training

    select_module.Selecting.probe_training = spy
    try:
        result = run_experiment(load_config(cfg), model=model)
    finally:
        select_module.Selecting.probe_training = real
    assert seen and all(not (train & pool) and len(train) == 10 for train, pool in seen)  # never the quality of what it can pick
    comparison = result.tables["comparison"]
    line = comparison[comparison["selector"] == "probe"]
    assert len(line) == 1 and line["family"].iloc[0] == "internal-probe" and line["baseline"].iloc[0] == "random"
    dec = result.tables["decodability"]
    reps = dec[dec["kind"] == "representation"]
    assert set(reps["mask"]) == {"full", "isolated"} and len(reps) == 2 * model.cfg.n_layers
    # the sentence embedding is computed for the decodability baselines even with no KATE run
    assert {"label + length + slot", "bag of words", "sentence embedding"} <= set(dec["baseline_name"]) and (dec["ci_high"] <= 1).all()
    assert "Decodability" in result.verdict["table"] and result.verdict["decodability"]


def test_a_probe_needs_candidates_outside_the_pools(tmp_path):
    cfg = _config(tmp_path, "probe-bad")
    cfg["selection"]["runs"].append({"selector": "probe"})
    with pytest.raises(ConfigError, match=r"leaves 3 of its 12 candidates outside it; set tasks\[reviews\].seed_pool_size to at most 2"):
        load_config(cfg)


def test_the_decodability_figure_has_a_panel_per_mask_and_the_baselines():
    import pandas as pd

    from mechsel.plots import decodability_by_layer

    rows = [
        {"task": "t", "kind": "baseline", "baseline_name": "bag of words", "r2": 0.1, "ci_low": 0.0, "ci_high": 0.2, "target": "quality"}
    ]
    for mask in ("full", "isolated"):
        for layer in range(3):
            rows.append(
                {"task": "t", "kind": "representation", "mask": mask, "layer": layer, "r2": 0.05 * layer, "ci_low": 0.0, "ci_high": 0.3}
                | {"p_value": 0.5, "gain": 0.0, "gain_low": -0.1, "gain_high": 0.1, "baseline_name": "bag of words", "target": "quality"}
            )
    fig = decodability_by_layer(pd.DataFrame(rows), task="t")
    assert [a.text for a in fig.layout.annotations][:2] == ["mask full", "mask isolated"]
    probes = [tr for tr in fig.data if tr.name == "mean hook_mlp_out probe"]
    assert len(probes) == 2 and list(probes[1].y) == [0.0, 0.05, 0.1]
    assert any(tr.name == "bag of words (baseline)" for tr in fig.data)
