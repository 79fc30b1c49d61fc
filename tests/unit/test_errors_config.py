"""Bad configs and command lines: one ``mechsel: error: ...`` line, before any model loads.

Each case names the file, line or field, what was expected and the fix. Layer indices are
checked against the model's depth read from its config (never its weights, never the network).
"""

from __future__ import annotations

import contextlib
import json
import logging

import pytest

import mechsel.experiment
import mechsel.models
from mechsel.cli import main
from mechsel.errors import ConfigError
from mechsel.experiment import SelectionSettings, load_config
from mechsel.experiment.loading import model_n_layers, validate_against_model
from mechsel.experiment.rundir import RunDirectory
from mechsel.models.embedded import _FOLDER_NAME, EMBEDDED_MODEL

MINIMAL = {"selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True}], "budgets": [2]}}


def RUNS_AT(layer):
    return {"runs": [{"selector": "random"}, {"selector": "activation", "params": {"statistic": "mean", "layer": layer}}], "budgets": [2]}


@pytest.fixture
def embedded_cache(tmp_path, monkeypatch):
    """A cache holding only the embedded model's converted config (18 layers), as after its first use."""
    folder = tmp_path / "cache" / "models" / _FOLDER_NAME
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "num_hidden_layers": 18}))
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path / "cache"))
    return folder


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the CLI gets as far as running the experiment (which loads the model)."""

    def run_experiment(*args, **kwargs):
        raise AssertionError("run_experiment was called: the error came too late")

    monkeypatch.setattr(mechsel.experiment, "run_experiment", run_experiment)


@contextlib.contextmanager
def fresh_process_logging():
    """Let ``main`` install its console log handler as in a fresh process; pytest's own handlers
    (added to the root logger around each test phase) are set aside meanwhile, then restored."""
    saved, level = logging.root.handlers[:], logging.root.level
    logging.root.handlers.clear()
    try:
        yield
    finally:
        logging.root.handlers[:] = saved
        logging.root.setLevel(level)


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mechsel: error: "), lines
    return lines[0]


# ---------------------------------------------------------------- the config file itself


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"- selection:\n    budgets: [2]\n",
            r"bad\.yaml: the top level must be a mapping of settings .* but it is a list; remove the leading '- ' of its entries",
        ),
        (b"42\n", r"bad\.yaml: the top level must be a mapping .* a single value \(42\); write one 'key: value' per setting"),
        (b"just some words\n", r"the top level must be a mapping .* a single value \('just some words'\)"),
        (b"name: caf\xe9\n", r"bad\.yaml:1 is not UTF-8 \(byte 0xe9\); re-save the config as UTF-8"),
        (b"name: x\nanalysis:\n  n_boot: 10\n# \x93quoted\x94\n", r"bad\.yaml:4 is not UTF-8 \(byte 0x93\)"),
        (
            b"name: x\nselection:\n  seeds: [0, 1\n",
            r"bad\.yaml:4:1 is not valid YAML \(while parsing a flow sequence started at line 3: expected ',' or '\]', "
            r"but got '<stream end>'\); fix that line",
        ),
    ],
)
def test_unreadable_config_files_give_one_line(tmp_path, capsys, no_run, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    assert main(["run", str(path)]) == 2
    assert str(path) in one_error_line(capsys)


def test_a_utf8_config_with_a_byte_order_mark_and_an_empty_one_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({**MINIMAL, "name": "café"}, ensure_ascii=False).encode())
    assert load_config(path).name == "café"
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="no activation-family selector"):  # defaults, then the usual checks
        load_config(tmp_path / "empty.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tasks": "sst2"}, r"tasks must be a list, e.g. tasks: \[\{name: sst2\}\]; got str 'sst2'"),
        ({"selection": {"runs": {"selector": "random"}}}, r"selection.runs must be a list, e.g. selection.runs: \[\{selector: random\}\]"),
        ({"model": "gpt2"}, r"model must be a section of settings \(keys such as name, weight_processing, dtype\), got 'gpt2'"),
        ({"collect": {"layers": 5}}, r"collect.layers must be 'all' or a non-empty list of layer indices, e.g. \[0, 5, -1\]; got 5"),
        ({"collect": {"layers": []}}, r"collect.layers must be 'all' or a non-empty list"),
        ({"collect": {"layers": [1, "2"]}}, r"collect.layers\[1\] must be a layer index"),
        ({"sae": {"saes": {"six": "path"}}}, r"sae.saes keys must be layer indices, got 'six'"),
    ],
)
def test_sections_and_lists_of_the_wrong_shape(data, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**MINIMAL, **data})


# ---------------------------------------------------------------- seeds and budgets


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("selection.seeds=abc", r"selection.seeds must be a list, e.g. selection.seeds: \[0, 1, 2, 3, 4\]; got str 'abc'"),
        ("selection.seeds=3", r"selection.seeds must be a list.*got int 3"),
        ("selection.seeds=[]", r"selection.seeds must be a non-empty list of distinct integers ≥ 0"),
        ("selection.seeds=[-1]", r"selection.seeds\[0\] must be an integer ≥ 0, got -1"),
        ("selection.seeds=[0, 1.5]", r"selection.seeds\[1\] must be an integer ≥ 0, got 1.5"),
        ("selection.seeds=[2.0]", r"selection.seeds\[0\] must be an integer ≥ 0, got 2.0"),
        ("selection.seeds=[true]", r"selection.seeds\[0\] must be an integer ≥ 0, got True"),
        ("selection.seeds=['1']", r"selection.seeds\[0\] must be an integer ≥ 0, got '1'"),
        ("selection.seeds=[2, 0, 2]", r"selection.seeds must not repeat values; \[2, 0, 2\] repeats \[2\]"),
        ("quality.gain_seeds=abc", r"quality.gain_seeds must be a list.*got str 'abc'"),
        ("quality.gain_seeds=[-2]", r"quality.gain_seeds\[0\] must be an integer ≥ 0, got -2"),
        ("quality.gain_seeds=[0.5]", r"quality.gain_seeds\[0\] must be an integer ≥ 0"),
        ("quality.gain_seeds=[1, 1]", r"quality.gain_seeds must not repeat values"),
        ("split_seed=abc", r"split_seed must be an integer ≥ 0, got 'abc'"),
        ("split_seed=-1", r"split_seed must be an integer ≥ 0, got -1"),
        ("split_seed=1.5", r"split_seed must be an integer ≥ 0, got 1.5"),
        ("split_seed=true", r"split_seed must be an integer ≥ 0, got True"),
        ("split_seed=null", r"split_seed must be an integer ≥ 0, got None"),
        ("analysis.seed=-3", r"analysis.seed must be an integer ≥ 0, got -3"),
        ("analysis.seed=x", r"analysis.seed must be an integer ≥ 0, got 'x'"),
        ("selection.budgets=[0]", r"selection.budgets\[0\] must be an integer ≥ 1, got 0"),
        ("selection.budgets=[1.5]", r"selection.budgets\[0\] must be an integer ≥ 1, got 1.5"),
        ("selection.budgets=[2, 2]", r"selection.budgets must not repeat values"),
        ("selection.budgets=abc", r"selection.budgets must be a list, e.g. selection.budgets: \[4, 8\]"),
    ],
)
def test_seeds_and_budgets_are_checked_when_the_config_loads(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(MINIMAL, [override])


def test_split_seed_from_the_command_line_is_one_line(capsys):
    assert main(["config", "--quick", "--set", "split_seed=abc"]) == 2
    assert one_error_line(capsys) == "mechsel: error: split_seed must be an integer ≥ 0, got 'abc'."


def test_valid_seeds_and_budgets_load_as_tuples():
    cfg = load_config(
        MINIMAL, ["selection.seeds=[0, 7]", "quality.gain_seeds=[3]", "split_seed=5", "analysis.seed=0", "selection.budgets=[1, 2]"]
    )
    assert cfg.selection.seeds == (0, 7) and cfg.quality.gain_seeds == (3,) and cfg.selection.budgets == (1, 2)
    assert cfg.split_seed == 5 and cfg.analysis.seed == 0


def test_settings_built_in_python_are_checked_too():
    with pytest.raises(ConfigError, match=r"selection.seeds must be a non-empty list of distinct integers ≥ 0.*got 'abc'"):
        SelectionSettings(seeds="abc")  # type: ignore[arg-type]
    assert SelectionSettings(seeds=[3, 1], budgets=[2]).seeds == (3, 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- statistics and layers


@pytest.mark.parametrize(
    ("statistics", "message"),
    [
        (["mean", "kurtosys"], r"collect.statistics\[1\]: unknown statistic 'kurtosys'. Did you mean 'kurtosis'.*Valid statistics: mean, "),
        (["sae_l0"], r"unknown statistic 'sae_l0'.*SAE statistics are set under sae.saes"),
        (["mean", "mean"], r"collect.statistics lists a statistic twice"),
    ],
)
def test_statistic_names_are_checked_against_the_registry(statistics, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**MINIMAL, "collect": {"statistics": statistics}})
    assert load_config({**MINIMAL, "collect": {"statistics": ["token_kurtosis", "mean"]}}).collect.statistics == ("token_kurtosis", "mean")


def test_model_depth_is_read_without_weights_or_network(tmp_path, embedded_cache):
    assert model_n_layers(EMBEDDED_MODEL) == 18
    (embedded_cache / "config.json").write_text(json.dumps({"num_hidden_layers": 5}))
    assert model_n_layers(EMBEDDED_MODEL) == 5  # the converted folder is what is read
    local = tmp_path / "tiny-gpt2"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 3, "architectures": ["GPT2LMHeadModel"]}))
    assert model_n_layers(str(local)) == 3
    assert model_n_layers("no-such-org/no-such-model-xyz") is None  # unknown offline: the check is skipped


def test_embedded_depth_before_its_first_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    assert model_n_layers(EMBEDDED_MODEL) == 18


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"collect": {"layers": [99]}},
            r"collect.layers\[0\]: layer 99 is out of range for 'google/gemma-3-270m', which has 18 layers: "
            r"use 0..17 \(or -18..-1 counting from the end\), or 'all'",
        ),
        ({"collect": {"layers": [0, 18]}}, r"collect.layers\[1\]: layer 18 is out of range"),
        ({"collect": {"layers": [-19]}}, r"collect.layers\[0\]: layer -19 is out of range"),
        ({"collect": {"layers": [-1, 17]}}, r"collect.layers \[-1, 17\] names the same layer twice once counted from 0 \(\[17, 17\]\)"),
        ({"selection": RUNS_AT(30)}, r"selection.runs\[activation\].params.layer: layer 30 is out of range"),
        ({"selection": RUNS_AT([1, -40])}, r"params.layer: layer -40 is out of range"),
        ({"sae": {"saes": {40: "somewhere"}}}, r"sae.saes: layer 40 is out of range"),
    ],
)
def test_layers_are_checked_against_the_models_depth(embedded_cache, data, message):
    with pytest.raises(ConfigError, match=message):
        validate_against_model(load_config({**MINIMAL, **data}))


def test_negative_layers_are_normalised_once(embedded_cache):
    cfg = validate_against_model(load_config({**MINIMAL, "collect": {"layers": [0, -1]}, "selection": RUNS_AT(17)}))
    assert cfg.collect.layers == (0, 17) and cfg.selection.runs[1].params["layer"] == 17
    cfg = validate_against_model(load_config({**MINIMAL, "collect": {"layers": [17]}, "selection": RUNS_AT([-1])}))
    assert cfg.selection.runs[1].params["layer"] == [17]
    with pytest.raises(ConfigError, match=r"uses layer\(s\) \[5\], not in collect.layers \[17\]"):  # checked once normalised
        validate_against_model(load_config({**MINIMAL, "collect": {"layers": [-1]}, "selection": RUNS_AT(-13)}))
    plain = load_config(MINIMAL)
    assert validate_against_model(plain) is plain


def test_unknown_depth_skips_the_check():
    cfg = load_config({**MINIMAL, "model": {"name": "no-such-org/no-such-model-xyz"}, "collect": {"layers": [99]}})
    assert validate_against_model(cfg) is cfg


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--quick", "--set", "collect.layers=[99]"],
        ["demo", "--quick", "--set", "collect.layers=[-19]"],
        ["demo", "--quick", "--set", "collect.statistics=[kurtosys]"],
        ["run", "CONFIG", "--set", "collect.layers=[0, 99]"],
    ],
)
def test_cli_stops_before_the_model_loads(tmp_path, capsys, no_run, embedded_cache, argv):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(MINIMAL))
    argv = [str(path) if a == "CONFIG" else a for a in argv] + ["--output", str(tmp_path / "out")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert ("is out of range for 'google/gemma-3-270m', which has 18 layers" in line) or ("Did you mean 'kurtosis'" in line)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect", "--statistics", "mean", "kurtosys"], "--statistics: unknown statistic 'kurtosys'. Did you mean 'kurtosis'"),
        (["collect", "--layers", "0", "99"], "--layers: layer 99 is out of range for 'google/gemma-3-270m', which has 18 layers"),
    ],
)
def test_collect_command_checks_before_loading(capsys, monkeypatch, embedded_cache, argv, message):
    monkeypatch.setattr(mechsel.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(argv) == 2
    assert message in one_error_line(capsys)


# ---------------------------------------------------------------- one line, not two


def test_an_error_inside_a_run_is_reported_once(tmp_path, capsys, monkeypatch, embedded_cache):
    """The run directory logs the failure for run.log; the console shows only the CLI's line."""

    def failing_run(config, overwrite=False):
        with RunDirectory(config.output_dir, config.identity(), config={}, overwrite=overwrite):
            raise ConfigError("Task 'sst2' has no folder /nowhere/sst2; point MECHSEL_DATA_DIR at the data.")

    monkeypatch.setattr(mechsel.experiment, "run_experiment", failing_run)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(MINIMAL))
    with fresh_process_logging():
        assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys) == "mechsel: error: Task 'sst2' has no folder /nowhere/sst2; point MECHSEL_DATA_DIR at the data."
    assert "Run failed: ConfigError: Task 'sst2' has no folder" in (tmp_path / "out" / "run.log").read_text()


def test_a_multi_line_message_is_printed_on_one_line(capsys, monkeypatch):
    monkeypatch.setattr("mechsel.cli.COMMANDS", {"config": lambda args: (_ for _ in ()).throw(ConfigError("first\n  second\n"))})
    assert main(["config", "--quick"]) == 2
    assert one_error_line(capsys) == "mechsel: error: first second"


# ---------------------------------------------------------------- selector params and SAE folders, at load


def test_a_misspelt_selector_parameter_fails_at_load(tmp_path, capsys, no_run, embedded_cache):
    data = {"selection": {"runs": [{"selector": "random"}, {"selector": "activation", "params": {"statistc": "mean"}}], "budgets": [2]}}
    with pytest.raises(ConfigError, match=r"selection.runs\[activation\].params.statistc is not a parameter of selector 'activation'"):
        load_config(data)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(data))
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "params.statistc" in line and "Did you mean 'statistic'" in line and "Valid parameters:" in line


def test_a_missing_sae_folder_fails_before_the_model_loads(tmp_path, capsys, no_run, embedded_cache):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(MINIMAL))
    missing = str(tmp_path / "no" / "such")
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--set", f"sae.saes={{9: {missing}}}"]) == 2
    line = one_error_line(capsys)
    assert f"sae.saes[9]: the SAE folder '{missing}' does not exist" in line
    (tmp_path / "no" / "such").mkdir(parents=True)
    assert validate_against_model(load_config({**MINIMAL, "sae": {"saes": {9: missing}}})).sae.saes == {9: missing}


def test_missing_data_paths_fail_before_the_model_loads(tmp_path, capsys, no_run, embedded_cache):
    from mechsel.errors import DataError

    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(MINIMAL))
    missing = str(tmp_path / "no-data")
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--set", f"tasks.0.data_dir={missing}"]) == 2
    assert f"tasks[sst2].data_dir: the folder '{missing}' does not exist" in one_error_line(capsys)
    folder = tmp_path / "data"
    folder.mkdir()
    define = {"files": {"train": "train.jsonl", "test": "test.jsonl"}, "input_fields": ["text"], "label_names": ["a", "b"]}
    define |= {"verbalizers": ["A", "B"], "template": "{text}", "pool_split": "train", "test_split": "test"}
    task = {"name": "mine", "data_dir": str(folder), "define": define}
    with pytest.raises(DataError, match=r"tasks\[mine\].define.files.train: the file '.*/data/train.jsonl' does not exist"):
        validate_against_model(load_config({**MINIMAL, "tasks": [task]}))
