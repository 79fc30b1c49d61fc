"""``mechsel train-sae``: train SAEs on a model's block hook from the command line.

Mount :func:`train_sae_main` as the ``train-sae`` sub-command; every option is a field of
:class:`~mechsel.sae.config.SAETrainConfig` (same names with dashes), plus the model to load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import typing
from collections.abc import Sequence
from typing import Any

from mechsel.sae.config import SAETrainConfig

__all__ = ["train_sae_main", "build_parser"]

_HELP = {
    "layers": "layers to train an SAE for, e.g. --layers 5 9",
    "hook": "block hook read: blocks.<L>.hook_<hook>",
    "architecture": "topk (default) or standard",
    "d_sae": "number of latents",
    "k": "active latents per token (topk)",
    "l1_coefficient": "L1 penalty (standard)",
    "n_train_tokens": "training tokens (BOS excluded)",
    "n_eval_tokens": "held-out tokens for the reported metrics",
    "batch_size": "tokens per optimiser step",
    "buffer_tokens": "shuffling buffer size in tokens",
    "lr": "Adam learning rate",
    "lr_warm_up_steps": "linear warm-up steps",
    "lr_decay_fraction": "fraction of steps of final linear decay to 0",
    "dead_feature_window": "steps without firing after which a latent is dead",
    "aux_loss_coefficient": "TopK auxiliary loss weight",
    "model_batch_tokens": "token positions per model forward pass",
    "context_size": "tokens per text, BOS included",
    "datasets": "shared-data datasets supplying text",
    "data_dir": "data folder override",
    "seed": "random seed",
    "name": "run folder name under <cache>/saes/",
    "output_dir": "run folder path (instead of the cache)",
    "device": "SAE device (default: the model's)",
    "progress": "show progress bars",
}


def build_parser(prog: str = "mechsel train-sae") -> argparse.ArgumentParser:
    """The argument parser of ``train-sae`` (one option per :class:`SAETrainConfig` field)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Train SAEs on a model's block-hook activations (sae-lens format, saved with provenance)."
    )
    parser.add_argument("--model", default=None, help="TransformerLens model name (default: the embedded Gemma 3 270M)")
    parser.add_argument("--weight-processing", default="none", choices=["none", "default"], help="how to load the model's weights")
    parser.add_argument("--model-device", default=None, help="device for the model (default: CUDA if available, else CPU)")
    hints = typing.get_type_hints(SAETrainConfig)
    for field in dataclasses.fields(SAETrainConfig):
        flag = "--" + field.name.replace("_", "-")
        hint, default = hints[field.name], field.default
        if field.name == "progress":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=_HELP[field.name])
        elif field.name in ("layers", "datasets"):
            parser.add_argument(flag, nargs="+", type=int if field.name == "layers" else str, default=list(default), help=_HELP[field.name])
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=list(typing.get_args(hint)), default=default, help=_HELP[field.name])
        else:
            kind = float if isinstance(default, float) else int if isinstance(default, int) else str
            parser.add_argument(flag, type=kind, default=default, help=_HELP[field.name])
    return parser


def train_sae_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mechsel train-sae``; prints the run folder and held-out metrics as JSON."""
    from mechsel.models import load_model
    from mechsel.sae.training import train_sae

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    fields: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(SAETrainConfig)}
    fields["layers"], fields["datasets"] = tuple(fields["layers"]), tuple(fields["datasets"])
    config = SAETrainConfig(**fields)
    model_kwargs: dict[str, Any] = {"weight_processing": args.weight_processing, "device": args.model_device}
    model = load_model(args.model, **model_kwargs) if args.model else load_model(**model_kwargs)
    result = train_sae(model, config)
    summary = {"path": str(result.path), "metrics": {str(k): v for k, v in result.metrics.items()}, "seconds": result.seconds}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0
