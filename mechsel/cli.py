"""The ``mechsel`` command line.

::

    mechsel demo [--quick] [--output DIR] [--overwrite] [--set KEY=VALUE ...]
    mechsel run CONFIG.yaml [--output DIR] [--overwrite] [--set KEY=VALUE ...]
    mechsel figures RUN_DIR [--output DIR] [--families ...] [--formats png svg]
    mechsel config [CONFIG.yaml | --demo | --quick] [--check] [--set KEY=VALUE ...]
    mechsel collect [--n 8] [--mask alone] [--layers 0 5 17] [--statistics mean kurtosis]
    mechsel train-sae [--set KEY=VALUE ...]
    mechsel data [TASK ...] | mechsel data export TASK DIR

``run`` and ``demo`` print the summary table (random vs every activation selector, with bounded 95%
CIs over seeds, the minimum detectable effect and the cell each selector read), each task's 0-shot
and majority-class baselines (flagging a task no selector does better than the majority share), the
best run of each selector family vs random, and a three-way verdict (HOLDS, DOES NOT HOLD or
INCONCLUSIVE) on the paper's finding, decided from intervals. ``config --check`` reads each task's
data as the run would, without loading a model.
An interrupted run resumes where it stopped when the same command is run again.
``--set execution.engine=ray`` runs the same study's independent work on Ray workers (one
machine's cores or a cluster: README, "Scaling out") without changing a number.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mechsel.errors import MechselError

if TYPE_CHECKING:
    from mechsel.experiment.config import ExperimentConfig

__all__ = ["main", "build_parser"]

logger = logging.getLogger("mechsel.cli")
NOISY_LOGGERS = ("choreographer", "kaleido", "httpx", "urllib3", "filelock")
"""Libraries whose INFO records the CLI leaves out (warnings and errors still show)."""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", help="output directory (default: the config's output_dir)")
    p.add_argument("--overwrite", action="store_true", help="replace a run of other provenance in the output directory")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set selection.seeds=[0,1,2] or --set execution.engine=ray (repeatable)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mechsel``."""
    from mechsel.collection.config import POSITIONS
    from mechsel.stats.moments import DEFAULT_MOMENTS

    parser = argparse.ArgumentParser(
        prog="mechsel", description="Do a model's internals know which in-context demonstrations will help it?"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the study on the embedded model (SST-2 + AG News), end to end")
    p.add_argument("--quick", action="store_true", help="toy sizes (a few minutes)")
    p.add_argument(
        "--sae",
        action="append",
        default=[],
        metavar="PATH",
        help="an SAE folder in sae-lens format (e.g. from `mechsel train-sae`): adds SAE statistics and selectors (repeatable)",
    )
    _add_run_options(p)

    p = sub.add_parser("run", help="run (or resume) an experiment config")
    p.add_argument("config", help="YAML config (see configs/)")
    _add_run_options(p)

    p = sub.add_parser("figures", help="regenerate every figure of a finished run, and its report.html, from its saved results")
    p.add_argument("run_dir", help="output directory of a run")
    p.add_argument("--output", "-o", help="figure folder, the report beside them (default: RUN_DIR/figures, RUN_DIR/report.html)")
    p.add_argument("--families", nargs="+", help="figure families (default: all)")
    p.add_argument("--formats", nargs="*", default=["png", "svg"], help="static formats when Chromium is available")

    p = sub.add_parser("plan", help="seeds, test queries and candidates a finished run would need to decide each part, and the time")
    p.add_argument("run_dir", help="output directory of a finished run (or a pilot)")

    p = sub.add_parser("config", help="print a resolved config (every field, defaults included)")
    p.add_argument("config", nargs="?", help="YAML config")
    p.add_argument("--demo", action="store_true", help="the demo config")
    p.add_argument("--quick", action="store_true", help="the quick demo config")
    p.add_argument(
        "--check",
        action="store_true",
        help="also read every task's data as the run would draw it (no model is loaded) and print a summary instead of the config",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("collect", help="print activation statistics of a few SST-2 sentences (embedded model)")
    p.add_argument("--n", type=int, default=8, help="number of SST-2 validation sentences")
    p.add_argument("--model", default=None, help="TransformerLens model name (default: the embedded Gemma 3 270M)")
    p.add_argument("--mask", default="alone", help="mask strategy for plain texts (alone)")
    p.add_argument("--positions", default="all", choices=list(POSITIONS))
    p.add_argument("--layers", type=int, nargs="+", help="layers (default: all)")
    p.add_argument("--statistics", nargs="+", default=list(DEFAULT_MOMENTS))

    p = sub.add_parser("data", help="where each task's data is found (data directories, the packaged subset, the hub), or export a task")
    p.add_argument("args", nargs="*", metavar="TASK | export TASK DIR", help="tasks to list (default: all), or `export TASK DIR`")
    p.add_argument("--data-dir", default=None, help="data directory for `export` (default: the resolution order)")

    p = sub.add_parser("train-sae", help="train SAEs on a model's hook_mlp_out (default: the embedded model; see mechsel.sae)")
    p.add_argument("--model", default=None, help="TransformerLens model name (default: the embedded Gemma 3 270M)")
    p.add_argument("--weight-processing", default="none", choices=["none", "default"], help="how the model's weights are loaded")
    p.add_argument("--model-device", default=None, help="device of the model (default: CUDA when available, else CPU)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an SAETrainConfig field, e.g. --set layers=[5] --set n_train_tokens=100000",
    )
    return parser


def _not_the_run_outcome(record: logging.LogRecord) -> bool:
    """Keep a record on the console unless it is the run directory's failure line for run.log:
    the CLI reports that error itself (``mechsel: error: ...``), once."""
    return not (record.name == "mechsel.experiment.rundir" and record.levelno >= logging.ERROR)


def _logging(quiet: bool) -> None:
    # The level sits on the handler too: a run directory lowers the ``mechsel`` logger to INFO for
    # its run.log, and those records reach this handler by propagation whatever the root's level.
    level = logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(_not_the_run_outcome)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for name in NOISY_LOGGERS:  # their INFO lines (temp folders, requests) say nothing about the run
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _run(args: argparse.Namespace, config: ExperimentConfig) -> int:
    from mechsel.experiment import run_experiment
    from mechsel.experiment.loading import validate_against_model

    config = validate_against_model(config)  # layer indices against the model's depth, before it loads
    result = run_experiment(config, overwrite=args.overwrite)
    print(result.report())
    print(f"\nResults: {result.output_dir / 'results'}   Figures: {result.output_dir / 'figures'}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mechsel.experiment import demo_config, load_config
    from mechsel.experiment.demo import sae_changes
    from mechsel.serialize import to_dict

    changes = {"progress": not args.quiet, **({"output_dir": args.output} if args.output else {})}
    config = load_config(to_dict(demo_config(quick=args.quick)), args.overrides, **changes)
    if args.sae:  # after --set, so that the SAE runs fit the final pool sizes
        config = load_config(to_dict(config), **sae_changes(config, args.sae))
    status = _run(args, config)
    if args.quick:
        print("(--quick runs toy sizes, so its verdict is an illustration, not evidence: `mechsel demo` gives the real answer.)")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from mechsel.experiment import load_config

    changes = {**({"progress": False} if args.quiet else {}), **({"output_dir": args.output} if args.output else {})}
    return _run(args, load_config(args.config, args.overrides, **changes))


def _cmd_figures(args: argparse.Namespace) -> int:
    from mechsel.experiment import regenerate_figures

    written = regenerate_figures(args.run_dir, args.output, families=args.families, formats=args.formats)
    print(f"Wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from mechsel.experiment.plan import plan_run

    print(plan_run(args.run_dir)[2])
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from mechsel.experiment import demo_config, dump_config, load_config
    from mechsel.serialize import to_dict

    if sum([bool(args.config), args.demo, args.quick]) != 1:
        raise MechselError("Pass exactly one of CONFIG.yaml, --demo or --quick.")
    source = args.config or to_dict(demo_config(quick=args.quick))
    config = load_config(source, args.overrides)
    if not args.check:
        print(dump_config(config), end="")
        return 0
    from mechsel.experiment.datacheck import check_data
    from mechsel.experiment.loading import validate_against_model

    origin = args.config or ("the quick demo config" if args.quick else "the demo config")
    config = validate_against_model(config)  # layer indices against the model's config (no weights)
    reports = check_data(config, origin)
    print(f"{origin}: settings valid; each task's data, drawn as the run would draw it (split_seed {config.split_seed}):")
    for report in reports:
        print(f"  {report.line()}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from mechsel.collection import collect
    from mechsel.models import load_model
    from mechsel.paths import data_dir

    if args.n < 1:
        raise MechselError(f"--n must be at least 1, got {args.n}.")
    _check_collect_args(args)
    sentences = []
    with open(data_dir() / "sst2" / "validation.jsonl", encoding="utf-8") as fh:
        for line in fh:
            sentences.append(json.loads(line)["sentence"])
            if len(sentences) == args.n:
                break
    model = load_model(args.model) if args.model else load_model()
    result = collect(model, sentences, layers=args.layers or "all", mask=args.mask, positions=args.positions, statistics=args.statistics)
    wide = result.to_frame().pivot_table(index=["example_id", "layer"], columns="statistic", values="value")
    with pd.option_context("display.max_rows", 400, "display.width", 160, "display.float_format", "{:.4g}".format):
        for i, text in enumerate(sentences):
            print(f"\n[{i}] {text}")
            print(wide.loc[i].to_string())
    prov = result.provenance
    print(
        f"\nmodel {prov.model_name} (weights {prov.weight_hash}, processing {prov.weight_processing}, {prov.dtype}); "
        f"hook {prov.hook}; mask {prov.mask}; positions {prov.positions}; {prov.bos_policy}"
    )
    return 0


def _check_collect_args(args: argparse.Namespace) -> None:
    """``--statistics`` and ``--layers`` of ``mechsel collect``, checked before the model loads."""
    from mechsel.errors import did_you_mean
    from mechsel.experiment.checks import moment_statistic_names
    from mechsel.experiment.loading import model_n_layers
    from mechsel.models.embedded import EMBEDDED_MODEL

    valid = moment_statistic_names()
    for name in args.statistics:
        if name not in valid:
            raise MechselError(
                f"--statistics: unknown statistic {name!r}.{did_you_mean(name, valid)} Valid statistics: {', '.join(valid)}."
            )
    model = args.model or EMBEDDED_MODEL
    n = model_n_layers(model) if args.layers else None
    bad = [layer for layer in args.layers or () if n is not None and not -n <= layer < n]
    if bad:
        assert n is not None  # bad is empty when the depth is unknown
        raise MechselError(f"--layers: layer {bad[0]} is out of range for {model!r}, which has {n} layers: use 0..{n - 1} (or -{n}..-1).")


def _cmd_train_sae(args: argparse.Namespace) -> int:
    from mechsel.experiment.sae_glue import train_sae
    from mechsel.models import load_model
    from mechsel.sae.config import SAETrainConfig
    from mechsel.serialize import apply_overrides, from_dict, to_dict

    config = from_dict(SAETrainConfig, apply_overrides(to_dict(SAETrainConfig()), args.overrides), "train-sae")
    model_kwargs = {"weight_processing": args.weight_processing, "device": args.model_device}
    model = load_model(args.model, **model_kwargs) if args.model else load_model(**model_kwargs)
    result = train_sae(model, config)
    print(f"SAEs saved to {result.path}")
    for layer, metrics in sorted(result.metrics.items()):
        print(f"  layer {layer}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from mechsel.tasks import get_task, locate_task, task_names
    from mechsel.tasks.inventory import export_task, task_sources

    if args.args[:1] == ["export"]:
        if len(args.args) != 3:
            raise MechselError(f"usage: mechsel data export TASK DIR (got {' '.join(args.args[1:]) or 'nothing'} after export).")
        task, folder = args.args[1:]
        for s in export_task(task, folder, data_dir=args.data_dir):
            part = f" of the split's {s.split_rows} (partial: its index file is beside it)" if s.split_rows else ""
            print(f"{s.path}: {s.rows} rows{part}")
        print(f"read them with MECHSEL_DATA_DIR={folder}")
        return 0
    for name in args.args or task_names():
        cfg = get_task(name)
        try:
            used = locate_task(cfg).describe()
        except MechselError as err:
            used = f"nowhere ({err})"
        print(f"{cfg.name}: read from {used}")
        for source in task_sources(cfg):
            mark = "+" if source.has else "-"
            print(f"  {mark} {source.place}" + (f": {source.note}" if source.note else ""))
            for split in source.splits:
                rows = f"{split.rows:,} rows" + (f" of {split.split_rows:,}" if split.split_rows else "")
                size = f", {split.bytes / 1e6:.2f} MB" if split.bytes is not None else ""
                print(f"      {split.name}: {rows}{size}")
    return 0


COMMANDS = {
    "demo": _cmd_demo,
    "run": _cmd_run,
    "figures": _cmd_figures,
    "plan": _cmd_plan,
    "config": _cmd_config,
    "collect": _cmd_collect,
    "train-sae": _cmd_train_sae,
    "data": _cmd_data,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mechsel`` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _logging(getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command](args)
    except MechselError as err:
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"mechsel: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mechsel: interrupted. Run the same command again to resume where it stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
