"""Generating SAE training activations: texts → token batches → selected hook activations.

Each text is encoded as BOS + text (cut to ``context_size``), texts are grouped by length into
batches, and each batch runs through :func:`~mechsel.collection.stream.stream_batch`
(``torch.inference_mode()``, ``stop_at_layer = max(layers) + 1``), whose hooks hand over the
activations of real, non-BOS tokens, copied to the CPU at once. BOS positions carry massive
activations (norms ~10× a text token's in Gemma 3) that would dominate an SAE's
reconstruction loss; they are never selected, so never yielded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mechsel.collection.stream import pad_right, pad_token_id, stream_batch
from mechsel.errors import ConfigError, DataError

__all__ = ["load_texts", "encode_texts", "iter_activations", "split_held_out"]

logger = logging.getLogger(__name__)


def load_texts(datasets: Sequence[str], *, split: str = "train", data_dir: str | None = None) -> list[str]:
    """Texts of the given datasets, in file order, empty ones dropped.

    Each entry is a shared-data dataset name (its ``split`` split; see
    :data:`~mechsel.sae.config.TEXT_DATASETS`) or a local file: ``*.txt`` (one text per line),
    ``*.jsonl`` (the ``text`` field of each line) or ``*.jsonl:<field>``.
    """
    from mechsel.paths import data_dir as resolve_data_dir
    from mechsel.sae.config import TEXT_DATASETS

    root = resolve_data_dir(data_dir)
    texts: list[str] = []
    for name in datasets:
        if name in TEXT_DATASETS:
            path, field = Path(root) / name / f"{split}.jsonl", TEXT_DATASETS[name]
            if not path.is_file():
                have = sorted(p.stem for p in (Path(root) / name).glob("*.jsonl"))
                raise DataError(f"{path} does not exist; {name} has splits {have}. Pick one of them with split=...")
        elif name.endswith(".txt") or ".jsonl" in name:
            file, _, field = name.partition(".jsonl:") if ".jsonl:" in name else (name, "", "")
            path = Path(file + ".jsonl" if field else file)
            field = field or ("text" if name.endswith(".jsonl") else "")
            if not path.is_file():
                raise DataError(f"No text file at {path} (from datasets entry {name!r}); give an existing .txt or .jsonl file.")
        else:
            raise ConfigError(f"Unknown text dataset {name!r}; choose from {sorted(TEXT_DATASETS)} or give a .txt / .jsonl[:field] file.")
        texts.extend(_read_texts(path, field))
    if not texts:
        raise DataError(f"No texts found in {list(datasets)} ({split} split) under {root}.")
    return texts


def _read_texts(path: Path, field: str) -> list[str]:
    """Non-empty texts of a file: lines of a ``.txt`` (``field`` empty) or ``field`` of each JSON line."""
    out: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if not field:
                out.append(line.rstrip("\n"))
                continue
            row = json.loads(line)
            if field not in row:
                raise DataError(f"{path} line {number} has no field {field!r} (it has {sorted(row)}); name the field as '{path}:<field>'.")
            if isinstance(text := row[field], str) and text.strip():
                out.append(text)
    return out


def encode_texts(model: Any, texts: Sequence[str], *, context_size: int) -> list[list[int]]:
    """BOS + tokens of each text, cut to ``context_size`` tokens."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError("The model has no tokenizer; attach one (model.set_tokenizer) to generate activations from text.")
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ConfigError("The tokenizer has no BOS token; SAE training prepends BOS to every text (and then excludes it).")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"Text {i} is empty or not a string ({text!r}); remove it.")
        ids = [int(bos), *tokenizer.encode(text, add_special_tokens=False)][:context_size]
        if len(ids) > 1:
            out.append(ids)
    return out


def split_held_out(encoded: list[list[int]], n_eval_tokens: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Shuffle (seeded) and split off whole texts holding at least ``n_eval_tokens`` non-BOS tokens.

    Returns ``(train, held_out)``.
    """
    order = np.random.default_rng(seed).permutation(len(encoded))
    shuffled = [encoded[i] for i in order]
    counts = np.cumsum([len(s) - 1 for s in shuffled])
    cut = int(np.searchsorted(counts, n_eval_tokens)) + 1
    if cut >= len(shuffled):
        raise DataError(f"The texts hold only {int(counts[-1])} tokens; not enough for {n_eval_tokens} held-out tokens plus training.")
    return shuffled[cut:], shuffled[:cut]


def iter_activations(
    model: Any,
    encoded: Sequence[list[int]],
    hook_names: Sequence[str],
    *,
    batch_tokens: int = 4096,
    chunk: int = 2048,
    progress: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{hook name: [tokens, d] float32 CPU}`` per model batch, BOS and padding excluded.

    Sequences are taken in the given order in chunks of ``chunk``; inside a chunk they are sorted
    by length and packed into right-padded batches of at most ``batch_tokens`` positions (at
    least one sequence each), so batches carry little padding and amortise the per-call cost.
    The order of tokens is shuffled later by the training buffer.
    """
    pad = pad_token_id(model)
    bar = tqdm(total=sum(len(s) - 1 for s in encoded), desc="activations", unit="tok", disable=not progress)
    try:
        for start in range(0, len(encoded), chunk):
            part = sorted(encoded[start : start + chunk], key=len, reverse=True)
            first = 0
            while first < len(part):
                n = max(1, batch_tokens // len(part[first]))
                batch = part[first : first + n]
                first += n
                yield _run_batch(model, batch, hook_names, pad)
                bar.update(sum(len(s) - 1 for s in batch))
    finally:
        bar.close()


def _run_batch(model: Any, batch: list[list[int]], hook_names: Sequence[str], pad: int) -> dict[str, torch.Tensor]:
    # every position but the first: encode_texts puts BOS there
    padded = pad_right(batch, pad, [np.arange(1, len(seq)) for seq in batch])
    out: dict[str, torch.Tensor] = {}

    def grab(name: str, acts: torch.Tensor) -> None:
        out[name] = acts.to("cpu", torch.float32)

    stream_batch(model, padded, hook_names, grab)
    return out
