"""SAE training text: loading texts and encoding them as BOS + text, and the held-out split.

Activations are generated from these (and from demonstration prompts,
:mod:`mechsel.sae.demonstrations`) through the collector's own token selection
(:func:`mechsel.collection.selected.iter_selected`): BOS positions, which carry massive
activations (norms ~10× a text token's in Gemma 3) that would dominate an SAE's reconstruction
loss, are never selected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mechsel.errors import ConfigError, DataError

__all__ = ["load_texts", "encode_texts", "split_held_out"]

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


def split_held_out(lengths: Sequence[int], n_eval_tokens: int, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle (seeded) the indices of sequences holding ``lengths`` summarised tokens and split off
    whole sequences holding at least ``n_eval_tokens`` of them.

    Returns ``(train indices, held-out indices)``, each in the shuffled order.
    """
    order = np.random.default_rng(seed).permutation(len(lengths))
    counts = np.cumsum([lengths[i] for i in order])
    if not len(counts):
        raise DataError("No training sequences; pass more texts or examples.")
    cut = int(np.searchsorted(counts, n_eval_tokens)) + 1
    if cut >= len(order):
        raise DataError(f"The data hold only {int(counts[-1])} tokens; not enough for {n_eval_tokens} held-out tokens plus training.")
    return [int(i) for i in order[cut:]], [int(i) for i in order[:cut]]
