"""Training SAEs on a model's block-hook activations with sae-lens, saved with mechsel provenance.

The pipeline (:func:`train_sae`):

1. texts (the shared-data train splits of :attr:`SAETrainConfig.datasets`, or any list) are
   encoded as BOS + text, shuffled with the seed, and whole texts are set aside until they hold
   ``n_eval_tokens`` held-out tokens;
2. activations of ``blocks.{L}.hook_{hook}`` are generated lazily (model stopped after the last
   layer, BOS excluded; :mod:`mechsel.sae.activations`) and shuffled in sae-lens's
   ``mixing_buffer`` shared by all layers;
3. one sae-lens training SAE per layer is trained by sae-lens's ``MultiSAETrainer`` (Adam,
   gradient clipping, warm-up/decay, dead-latent tracking). TopK SAEs use
   :class:`~mechsel.sae.sparse_topk.SparseTopKTrainingSAE` (sae-lens's ``TopKTrainingSAE`` with a
   sparse step and identical gradients; dense TopK steps are ~3× slower on a CPU); standard SAEs
   use sae-lens's ``StandardTrainingSAE`` as is. Activations are scaled to mean norm
   ``sqrt(d_in)`` during training (the factor is estimated on the first batch and folded into
   the weights at the end, as sae-lens's ``expected_average_only_in``), and ``b_dec`` starts at
   that batch's mean;
4. the inference SAEs are saved in sae-lens format (``layer_<L>/cfg.json`` +
   ``sae_weights.safetensors``) with mechsel provenance in ``cfg.metadata.mechsel`` and the
   metrics in ``layer_<L>/mechsel_training.json``, the whole run folder written atomically, then
   loaded back and evaluated on the held-out tokens (FVU, explained variance, L0, dead fraction).

Everything random is seeded by :attr:`SAETrainConfig.seed` inside ``torch.random.fork_rng``, so
the global RNG state is left untouched.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mechsel.errors import ConfigError, DataError
from mechsel.provenance import hash_json, hash_texts, library_versions
from mechsel.sae.activations import encode_texts, load_texts, split_held_out
from mechsel.sae.config import SAETrainConfig
from mechsel.sae.evaluation import evaluate_sae

__all__ = ["train_sae", "SAETrainResult", "default_run_dir", "Exclusion"]

logger = logging.getLogger(__name__)

Exclusion = Callable[[Sequence[str]], tuple[set[str], dict[str, int]]]
"""``exclusion(config.exclude)``: the :func:`~mechsel.sae.demonstrations.text_key` of every example
the SAE must not train on, and the count per task, for the experiment configs named in
:attr:`SAETrainConfig.exclude`. Reading those configs is the experiment's job, so it is passed
in: :func:`mechsel.train_sae` passes :func:`mechsel.experiment.sae_glue.excluded_texts`."""

_PROCESSING_KWARGS = {
    "none": {},
    "default": {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True},
}


@dataclass(frozen=True)
class SAETrainResult:
    """What :func:`train_sae` produced."""

    path: Path
    """The run folder (one ``layer_<L>`` sae-lens folder per layer, and ``run.json``)."""
    saes: dict[int, Any]
    """The saved inference SAEs, loaded back from ``path``, by layer."""
    metrics: dict[int, dict[str, float]]
    """Held-out metrics by layer (see :func:`~mechsel.sae.evaluation.evaluate_sae`)."""
    seconds: dict[str, float]
    """``total``, ``activations`` (model forward passes) and ``training`` (everything else: the
    SAE steps, tokenisation, evaluation and saving)."""


def default_run_dir(model_name: str, config: SAETrainConfig) -> Path:
    """``<cache>/saes/<name>``, the name built from the model, hook, architecture, size, layers and seed."""
    from mechsel.paths import cache_dir

    if config.output_dir is not None:
        return Path(config.output_dir)
    if config.name is not None:
        return cache_dir() / "saes" / config.name
    slug = model_name.split("/")[-1].replace(".", "-")
    size = f"topk{config.d_sae}-k{config.k}" if config.architecture == "topk" else f"standard{config.d_sae}"
    layers = "-".join(str(x) for x in config.layers)
    return cache_dir() / "saes" / f"{slug}_{config.hook}_{size}_L{layers}_seed{config.seed}"


def train_sae(
    model: Any,
    config: SAETrainConfig | None = None,
    *,
    texts: Sequence[str] | None = None,
    exclusion: Exclusion | None = None,
    **overrides: Any,
) -> SAETrainResult:
    """Train one SAE per layer of ``config.layers`` on ``blocks.{L}.hook_{hook}`` (see the module docstring).

    :func:`mechsel.train_sae` (:func:`mechsel.experiment.sae_glue.train_sae`) is this function
    with ``exclusion`` filled in, so that ``config.exclude`` may name experiment configs; call
    this one directly with ``exclude=()`` or with your own ``exclusion``.

    Args:
        model: a TransformerLens ``HookedTransformer`` with a tokenizer (ideally loaded by
            :func:`mechsel.models.load_model`, so its weight processing is recorded).
        config: the run's settings; ``overrides`` replace fields of it (or of the defaults).
        texts: training text; default: the shared-data datasets in ``config.datasets``.
        exclusion: resolves ``config.exclude`` to the texts left out (see :data:`Exclusion`);
            required when ``config.exclude`` names any config.

    Returns:
        An :class:`SAETrainResult` (run folder, SAEs loaded back from it, held-out metrics).

    Raises:
        ConfigError: a layer or hook the model lacks; unknown config fields; ``config.exclude``
            names configs but no ``exclusion`` was given.
        DataError: too little text for the requested training and held-out tokens.
    """
    from mechsel.collection.run import resolve_hook
    from mechsel.models.loading import model_info

    config = _resolve_config(config, overrides)
    if config.exclude and exclusion is None:
        raise ConfigError(
            f"exclude={list(config.exclude)} names experiment configs, which mechsel.sae.training.train_sae does not read: "
            f"call mechsel.train_sae (it resolves them), pass exclusion=mechsel.experiment.sae_glue.excluded_texts, or set exclude=()."
        )
    for layer in config.layers:
        if layer >= model.cfg.n_layers:
            raise ConfigError(f"Layer {layer} does not exist: the model has {model.cfg.n_layers} layers (0..{model.cfg.n_layers - 1}).")
    suffix = resolve_hook(model, config.hook)
    hook_names = {layer: f"blocks.{layer}.{suffix}" for layer in config.layers}
    info = model_info(model)
    device = config.device or str(model.cfg.device)
    start = time.perf_counter()

    data = _training_data(model, config, texts, exclusion)
    collect_cfg = data.collect_config(config, suffix)
    available = data.n_train_tokens
    needed = config.n_steps * config.batch_size + config.buffer_tokens
    if available < needed:
        raise DataError(
            f"The training data hold {available} tokens (BOS excluded) after setting {config.n_eval_tokens} aside; "
            f"training needs {config.n_steps * config.batch_size} ({config.n_steps} steps of {config.batch_size}) plus a {config.buffer_tokens}-token shuffling buffer. Pass more "
            f"texts (more datasets), or lower n_train_tokens / buffer_tokens."
        )
    timer = {"activations": 0.0}
    eval_acts = _concat(_timed(_stream(model, data.held_out, collect_cfg, hook_names, config, progress=False), timer))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        saes = {layer: _make_sae(config, eval_acts[hook_names[layer]].shape[1], device) for layer in config.layers}
        stream = _stream(model, data.train, collect_cfg, hook_names, config, progress=config.progress)
        trained, scales, means, history = _fit(config, saes, hook_names, _timed(stream, timer), device)

    target = default_run_dir(info.name, config)
    result = _save_and_evaluate(
        model, info, config, trained, hook_names, eval_acts, scales, means, history, data, collect_cfg, target, timer, start
    )
    logger.info("train_sae: %s", {layer: {k: round(v, 4) for k, v in m.items()} for layer, m in result.metrics.items()})
    return result


@dataclass
class _TrainingData:
    """The prompts an SAE trains and is evaluated on, and what is recorded about them."""

    train: list[Any]
    held_out: list[Any]
    held_out_lengths: list[int]
    """Selected tokens of each held-out prompt."""
    n_train_tokens: int
    texts: list[str]
    record: dict[str, Any]
    mask: str

    def collect_config(self, config: SAETrainConfig, suffix: str) -> Any:
        """The token selection of the statistics: text and label tokens, BOS and template excluded."""
        from mechsel.collection import CollectConfig

        return CollectConfig(layers=config.layers, hook=suffix.removeprefix("hook_"), mask=self.mask, positions="all", progress=False)  # type: ignore[arg-type]


def _training_data(model: Any, config: SAETrainConfig, texts: Sequence[str] | None, exclusion: Exclusion | None) -> _TrainingData:
    """Prompts (seeded order), whole prompts set aside until they hold ``n_eval_tokens``."""
    from mechsel.collection import CollectConfig
    from mechsel.sae.demonstrations import text_key, training_prompts

    excluded, counts = exclusion(config.exclude) if config.exclude and exclusion is not None else (set(), {})
    if texts is None and config.data_format == "demonstrations":
        selection = CollectConfig(layers=config.layers, hook=config.hook, mask=config.mask, positions="all", progress=False)  # type: ignore[arg-type]
        wanted = config.n_steps * config.batch_size + config.buffer_tokens + config.n_eval_tokens
        prompts, lengths, used, per_task = training_prompts(
            model,
            config.datasets,
            excluded,
            demos_per_prompt=config.demos_per_prompt,
            n_tokens=int(wanted * 1.05) + 1000,  # held-out prompts are whole, so they overshoot
            config=selection,
            seed=config.seed,
            data_dir=config.data_dir,
        )
        mask = config.mask
        described: Any = {"format": "demonstrations", "tasks": list(config.datasets), "selected_tokens_per_task": per_task}
    else:
        given = texts is not None
        raw = list(texts) if texts is not None else load_texts(config.datasets, split="train", data_dir=config.data_dir)
        used = [t for t in raw if text_key(t) not in excluded]
        prompts = [_plain_prompt(ids, i) for i, ids in enumerate(encode_texts(model, used, context_size=config.context_size))]
        lengths = [len(p) - 1 for p in prompts]
        mask = "alone"
        described = {
            "format": "plain",
            "datasets": "given texts" if given else list(config.datasets),
            "n_dropped_as_excluded": len(raw) - len(used),
        }
    overlap = sum(text_key(t) in excluded for t in used)
    if overlap:
        raise DataError(f"{overlap} training texts are examples of the excluded experiments {list(config.exclude)}; remove them.")
    train_idx, eval_idx = split_held_out(lengths, config.n_eval_tokens, config.seed)
    record = {
        **described,
        "data_hash": hash_texts(used),
        "held_out_hash": hash_json([list(prompts[i].tokens) for i in eval_idx]),
        "n_texts": len(used),
        "disjoint_from": {
            "configs": list(config.exclude),
            "examples_per_task": counts,
            "overlap_found": overlap,
            "compared_by": "case-folded text with whitespace collapsed",
        },
    }
    return _TrainingData(
        train=[prompts[i] for i in train_idx],
        held_out=[prompts[i] for i in eval_idx],
        held_out_lengths=[lengths[i] for i in eval_idx],
        n_train_tokens=int(sum(lengths[i] for i in train_idx)),
        texts=used,
        record=record,
        mask=mask,
    )


def _plain_prompt(ids: list[int], index: int) -> Any:
    """BOS + a text's tokens as a one-segment prompt (every token but BOS is summarised)."""
    from mechsel.masks.segments import Segment, SegmentedPrompt

    n = len(ids)
    return SegmentedPrompt(tuple(ids), ("bos",) + ("text",) * (n - 1), (Segment("bos", 0, 1), Segment("demo", 1, n, index)))


def _stream(
    model: Any, prompts: list[Any], collect_cfg: Any, hook_names: dict[int, str], config: SAETrainConfig, *, progress: bool
) -> Iterator[dict[str, torch.Tensor]]:
    """``{hook name: [tokens, d]}`` per model batch, chunk by chunk of prompts in the seeded order.

    The collector sorts a chunk's prompts by length (which, with one task per prompt, also groups
    them by task), so a chunk holds at most a quarter of the shuffling buffer's tokens: the
    buffer then mixes several chunks and the optimiser never sees a run of one length or task."""
    import dataclasses as dc

    from mechsel.collection.selected import iter_selected

    budget = max(1, config.buffer_tokens // 4)
    bar = tqdm(total=len(prompts), desc="activations", unit="prompt", disable=not progress)
    try:
        start = 0
        while start < len(prompts):
            end, tokens = start, 0
            while end < len(prompts) and (end == start or tokens + len(prompts[end]) <= budget):
                tokens += len(prompts[end])
                end += 1
            part = prompts[start:end]
            per_batch = max(1, config.model_batch_tokens // max(len(p) for p in part))
            for block in iter_selected(model, part, dc.replace(collect_cfg, batch_size=per_batch)):
                yield {hook_names[layer]: acts for layer, acts in block.items()}
            bar.update(len(part))
            start = end
    finally:
        bar.close()


def _resolve_config(config: SAETrainConfig | None, overrides: dict[str, Any]) -> SAETrainConfig:
    config = config or SAETrainConfig()
    valid = {f.name for f in dataclasses.fields(SAETrainConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        from mechsel.errors import did_you_mean

        raise ConfigError(
            f"Unknown SAE training option(s) {unknown}.{did_you_mean(unknown[0], sorted(valid))} Valid: {', '.join(sorted(valid))}."
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def _timed(stream: Iterator[dict[str, torch.Tensor]], timer: dict[str, float]) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(stream)
        except StopIteration:
            return
        finally:
            timer["activations"] += time.perf_counter() - t0
        yield item


def _concat(stream: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    for item in stream:
        for name, acts in item.items():
            parts.setdefault(name, []).append(acts)
    return {name: torch.cat(p) for name, p in parts.items()}


def _make_sae(config: SAETrainConfig, d_in: int, device: str) -> Any:
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAEConfig

    from mechsel.sae.sparse_topk import SparseTopKTrainingSAE

    common = {
        "d_in": d_in,
        "d_sae": config.d_sae,
        "device": device,
        "dtype": "float32",
        "normalize_activations": "expected_average_only_in",
    }
    if config.architecture == "topk":
        return SparseTopKTrainingSAE(TopKTrainingSAEConfig(k=config.k, aux_loss_coefficient=config.aux_loss_coefficient, **common))
    warm = max(1, config.n_steps // 20)
    return StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=config.l1_coefficient, l1_warm_up_steps=warm, **common))


def _fit(
    config: SAETrainConfig, saes: dict[int, Any], hook_names: dict[int, str], stream: Iterator[dict[str, torch.Tensor]], device: str
) -> tuple[dict[int, Any], dict[int, float], dict[int, torch.Tensor], dict[int, list[dict[str, float]]]]:
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.mixing_buffer import multi_hook_concat_split_iter
    from sae_lens.training.multi_sae_trainer import MultiSAETrainer

    names = {layer: f"layer_{layer}" for layer in saes}
    batches = multi_hook_concat_split_iter(config.buffer_tokens, config.batch_size, stream, [hook_names[x] for x in saes])
    try:
        first = next(batches)
    except StopIteration:
        raise DataError("No activations were generated; the training texts are empty.") from None
    scales, means = {}, {}
    for layer, sae in saes.items():
        acts = first[hook_names[layer]].to(torch.float64)
        scales[layer] = math.sqrt(sae.cfg.d_in) / acts.norm(dim=-1).mean().item()
        means[layer] = acts.mean(0).to(torch.float32)
        with torch.no_grad():
            sae.b_dec.copy_((means[layer] * scales[layer]).to(sae.b_dec.device))
    n_steps = config.n_steps
    trainer_cfg = SAETrainerConfig(
        total_training_samples=n_steps * config.batch_size,
        train_batch_size_samples=config.batch_size,
        lr=config.lr,
        lr_end=config.lr,
        lr_warm_up_steps=min(config.lr_warm_up_steps, n_steps // 2),
        lr_decay_steps=int(n_steps * config.lr_decay_fraction),
        device=device,
        dead_feature_window=config.dead_feature_window,
        feature_sampling_window=10 * n_steps + 1,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = MultiSAETrainer(
        trainer_cfg,
        saes={names[x]: sae for x, sae in saes.items()},
        hook_names={names[x]: hook_names[x] for x in saes},
        data_provider=itertools.chain([first], batches),
    )
    history: dict[int, list[dict[str, float]]] = {x: [] for x in saes}
    for layer in saes:
        sub = trainer.trainers[names[layer]]
        sub.activation_scaler.scaling_factor = scales[layer]
        sub.step = _recording_step(sub, history[layer], every=max(1, n_steps // 50))
    trainer.fit()
    for layer in saes:
        sub = trainer.trainers[names[layer]]
        history[layer].append({"step": float(sub.n_training_steps), "dead_fraction_train_window": sub.dead_neurons.float().mean().item()})
    return saes, scales, means, history


def _recording_step(sub: Any, log: list[dict[str, float]], every: int) -> Any:
    original = sub.step

    def step(batch: torch.Tensor) -> Any:
        out = original(batch)
        n = sub.n_training_steps
        if n % every == 0:
            with torch.no_grad():
                x = out.sae_in.to(torch.float64)
                err = (out.sae_out.to(torch.float64) - x).pow(2).sum()
                var = (x - x.mean(0)).pow(2).sum()
                l0 = out.feature_acts.bool().float().sum().item() / x.shape[0]
            log.append(
                {"step": float(n), "mse_loss": out.losses["mse_loss"].item(), "explained_variance": 1 - (err / var).item(), "l0": l0}
            )
            logger.info("SAE step %d: %s", n, log[-1])
        return out

    return step


def _save_and_evaluate(
    model: Any,
    info: Any,
    config: SAETrainConfig,
    saes: dict[int, Any],
    hook_names: dict[int, str],
    eval_acts: dict[str, torch.Tensor],
    scales: dict[int, float],
    means: dict[int, torch.Tensor],
    history: dict[int, list[dict[str, float]]],
    data: _TrainingData,
    collect_cfg: Any,
    target: Path,
    timer: dict[str, float],
    start: float,
) -> SAETrainResult:
    from sae_lens import SAE

    from mechsel.paths import atomic_dir
    from mechsel.sae.demonstrations import save_training_hashes
    from mechsel.sae.reference import ActivationReference
    from mechsel.sae.splice import spliced_loss

    metrics: dict[int, dict[str, float]] = {}
    loaded: dict[int, Any] = {}
    versions = library_versions()
    loss_prompts = _loss_prompts(data, config.n_loss_tokens)
    source = f"held-out {data.record['format']} tokens of {', '.join(config.datasets)} (train-sae, seed {config.seed})"
    loss_seconds = 0.0
    with atomic_dir(target) as tmp:
        for layer, sae in saes.items():
            reference = ActivationReference.from_acts(eval_acts[hook_names[layer]], source)
            meta = sae.cfg.metadata
            meta.model_name = info.name
            meta.hook_name = hook_names[layer]
            meta.context_size = config.context_size
            meta.prepend_bos = True
            meta.model_from_pretrained_kwargs = _PROCESSING_KWARGS.get(info.weight_processing, {})
            meta.mechsel = {
                "model_name": info.name,
                "weight_hash": info.weight_hash,
                "weight_processing": info.weight_processing,
                "model_dtype": info.dtype,
                "model_source": info.source,
                "layer": layer,
                "hook": hook_names[layer].split(".", 2)[2],
                "bos_policy": "BOS prepended to every prompt; BOS (and template) positions excluded from training and evaluation",
                "token_selection": {"mask": collect_cfg.mask, "positions": collect_cfg.positions, "include_template": False},
                "seed": config.seed,
                "n_train_tokens": config.n_steps * config.batch_size,
                "scaling_factor_folded": scales[layer],
                **data.record,
                "reference": reference.to_dict(),
                "versions": versions,
            }
            folder = tmp / f"layer_{layer}"
            sae.save_inference_model(folder)
            save_training_hashes(folder, data.texts)
            loaded[layer] = SAE.load_from_disk(str(folder), device=str(sae.device)).eval()
            metrics[layer] = evaluate_sae(loaded[layer], eval_acts[hook_names[layer]], baseline_mean=means[layer])
            if loss_prompts:
                t0 = time.perf_counter()
                try:
                    loss = spliced_loss(model, loaded[layer], loss_prompts, collect_cfg, layer=layer, mean=reference.mean_tensor())
                    metrics[layer].update(loss.to_dict())
                except (RuntimeError, MemoryError) as err:  # keep the trained SAE; say what is missing
                    logger.warning("Layer %d: the spliced-in loss failed (%s); the SAE is saved without it.", layer, err)
                    metrics[layer]["spliced_loss_error"] = float("nan")
                loss_seconds += time.perf_counter() - t0
            report = {"config": config.to_dict(), "metrics": metrics[layer], "history": history[layer], "provenance": meta.mechsel}
            (folder / "mechsel_training.json").write_text(json.dumps(report, indent=2, default=str))
        total = time.perf_counter() - start
        seconds = {
            "total": total,
            "activations": timer["activations"],
            "spliced_loss": loss_seconds,
            "training": total - timer["activations"] - loss_seconds,
        }
        run = {"config": config.to_dict(), "metrics": {str(k): v for k, v in metrics.items()}, "seconds": seconds, "data": data.record}
        (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str))
    return SAETrainResult(path=target, saes=loaded, metrics=metrics, seconds=seconds)


def _loss_prompts(data: _TrainingData, n_tokens: int) -> list[Any]:
    """The first held-out prompts holding at least ``n_tokens`` selected tokens (none for 0)."""
    if n_tokens <= 0:
        return []
    total = 0
    for i, n in enumerate(data.held_out_lengths):
        total += n
        if total >= n_tokens:
            return data.held_out[: i + 1]
    return data.held_out
