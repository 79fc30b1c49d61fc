"""The sequential design inside a run: seeds added to the undecided gain lines only, checkpointed,
resumable, and the verdict decided from the looks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mechsel.experiment import load_config, run_experiment
from mechsel.models import tiny_model

sys.path.insert(0, str(Path(__file__).parent))
from shared_helpers import pipeline_config as _config  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_ctx=256)


def _sequential(tmp_path: Path, out: str, **seq) -> dict:
    cfg = _config(tmp_path, out)
    cfg["selection"]["sequential"] = {"enabled": True, "batch": 2, "max_seeds": 7, **seq}
    return cfg


def test_seeds_are_added_to_undecided_lines_until_the_last_look(tmp_path, model):
    res = run_experiment(load_config(_sequential(tmp_path, "seq")), model=model)
    looks = res.tables["looks"]
    scores = res.tables["scores"]
    assert set(looks["selector"]) == {"activation"} and sorted(looks["budget"].unique()) == [2]
    last = looks.sort_values("look").iloc[-1]
    # looks at 3, 5, 7 seeds: the tiny model decides nothing, so the line runs to the last look
    assert list(looks["n_pairs"]) == [3, 5, 7][: len(looks)]
    n = int(last["n_pairs"])
    for sel in ("random", "activation"):
        assert scores[scores["selector"] == sel]["seed"].nunique() == n
    # the other runs keep the configured seeds
    assert scores[scores["selector"] == "margin"]["seed"].nunique() == 3
    # the predictions of the added seeds are there too (they make the per-query bootstrap)
    assert res.tables["predictions"].groupby("selector")["seed"].nunique()["activation"] == n
    gain = res.verdict["parts"]["gain"]["lines"][0]
    assert gain["design"].startswith(f"sequential, look {int(last['look'])} of 3")
    assert "Sequential design" in res.verdict["table"]
    # a cached rerun computes nothing and gives the same tables
    again = run_experiment(load_config(_sequential(tmp_path, "seq")), model=model)
    assert all(r.cached for r in again.records)
    pd.testing.assert_frame_equal(again.tables["looks"], looks)


def test_sequential_settings_are_checked(tmp_path):
    from mechsel.errors import ConfigError

    with pytest.raises(ConfigError, match="batch"):
        load_config(_sequential(tmp_path, "bad", batch=0))
    with pytest.raises(ConfigError, match="max_seeds"):
        load_config(_sequential(tmp_path, "bad", max_seeds=1))


def test_looks_are_written_with_the_results(tmp_path, model):
    res = run_experiment(load_config(_sequential(tmp_path, "seq2", max_seeds=5)), model=model)
    folder = res.output_dir / "results"
    assert (folder / "looks.parquet").is_file()
    v = json.loads((folder / "verdict.json").read_text())
    assert v["parts"]["gain"]["lines"][0]["n_seeds"] == 5 or v["parts"]["gain"]["lines"][0]["design"].startswith("sequential")


def test_plan_reports_seeds_and_time_per_undecided_line(tmp_path, model, capsys):
    from scipy import stats

    from mechsel.cli import main
    from mechsel.experiment.plan import SEQUENTIAL_INFLATION, plan_run

    res = run_experiment(load_config(_config(tmp_path, "fixed")), model=model)
    gain, corr, text = plan_run(res.output_dir)
    undecided = [x for x in res.verdict["parts"]["gain"]["lines"] if x["outcome"] == "inconclusive"]
    assert len(gain) == len(undecided) >= 1
    r = gain.iloc[0]
    # hand computation of the components and the seeds from the per-query predictions
    pred = res.tables["predictions"]
    line = undecided[0]

    def tab(sel):
        part = pred[(pred["budget"] == line["budget"]) & (pred["selector"] == sel)]
        return part.pivot_table(index="seed", columns="query_id", values="correct", aggfunc="first").astype(float)

    d = (tab(line["selector"]) - tab("random")).to_numpy()
    within = d.var(axis=1, ddof=1).mean()
    sd_set = np.sqrt(max(d.mean(axis=1).var(ddof=1) - within / d.shape[1], 0.0))
    assert r["sd_set"] == pytest.approx(sd_set) and r["sd_query"] == pytest.approx(np.sqrt(within))
    sd = np.hypot(sd_set, np.sqrt(within) / np.sqrt(d.shape[1]))
    gap = line["margin"] - line["diff"] if line["diff"] < line["margin"] else line["diff"]
    if sd > 0 and gap > 0:
        expect = np.ceil(SEQUENTIAL_INFLATION * ((stats.norm.isf(0.05) + stats.norm.isf(0.2)) * sd / gap) ** 2)
        assert r["seeds_needed"] == expect
    assert "seeds needed" in text
    assert main(["plan", str(res.output_dir)]) == 0 and "Gain part" in capsys.readouterr().out
    assert main(["plan", str(tmp_path / "nothing")]) == 2 and "mechsel: error:" in capsys.readouterr().err
