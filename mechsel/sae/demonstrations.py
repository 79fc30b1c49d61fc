"""SAE training data in the format the statistics see, kept apart from every experiment example.

The statistics summarise candidates as *demonstration segments* (template, text and label word,
packed ``context_size`` to a prompt after one BOS; BOS and template tokens excluded). An SAE
trained on plain ``BOS + sentence`` text would meet a shifted distribution there, and one trained
on the candidates themselves would turn "how well does the dictionary explain this example" into
a memorisation question. :func:`training_prompts` therefore builds packed demonstration prompts
from the tasks' ``train`` split, leaving out every example (compared by normalised text, see
:func:`text_key`) in the set it is given. That set (the candidate, dev and test examples of the
experiment configs named in :attr:`~mechsel.sae.config.SAETrainConfig.exclude`) is the
experiment's to build: :func:`mechsel.experiment.sae_glue.excluded_texts` reads the configs, and
:func:`mechsel.train_sae` passes it to :func:`~mechsel.sae.training.train_sae` (this package
never reads experiment configs itself).

The experiment checks the other direction too: :func:`training_overlap` counts how many of a
run's examples an SAE's training set holds, from the hashes ``mechsel train-sae`` saves next to
each SAE (:data:`TRAINING_TEXTS_FILE`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mechsel.errors import ConfigError, DataError

__all__ = [
    "TRAINING_TEXTS_FILE",
    "text_key",
    "text_hashes",
    "training_prompts",
    "training_overlap",
    "save_training_hashes",
]

TRAINING_TEXTS_FILE = "mechsel_training_texts.npy"
"""Sorted uint64 hashes (:func:`text_hashes`) of the example texts an SAE was trained on, saved
in each SAE folder."""


def text_key(text: str) -> str:
    """The form in which texts are compared: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """Sorted unique uint64 hashes (first 8 bytes of BLAKE2b) of the :func:`text_key` of each text."""
    values = {int.from_bytes(hashlib.blake2b(text_key(t).encode(), digest_size=8).digest(), "little") for t in texts}
    return np.array(sorted(values), dtype=np.uint64)


def training_prompts(
    model: Any,
    tasks: Sequence[str],
    exclude: set[str],
    *,
    demos_per_prompt: int,
    n_tokens: int,
    config: Any,
    seed: int,
    data_dir: str | None = None,
) -> tuple[list[Any], list[int], list[str], dict[str, int]]:
    """Packed demonstration prompts from the tasks' ``train`` splits, no example in ``exclude``.

    Examples are taken in a seeded order; each prompt holds ``demos_per_prompt`` demonstrations of
    one task, and the next prompt comes from the task with the fewest selected tokens so far, so
    the tasks contribute about equally many tokens. Prompts are added until they hold
    ``n_tokens`` selected tokens (as ``config``, a :class:`~mechsel.collection.CollectConfig`,
    selects them) or the examples run out.

    Returns:
        ``(prompts, selected tokens per prompt, texts used, selected tokens per task)``.
    """
    from mechsel.collection.selected import selected_token_counts
    from mechsel.tasks import PromptEncoder, get_task, load_examples

    bos = getattr(model.tokenizer, "bos_token_id", None)
    if bos is None:
        raise ConfigError("The tokenizer has no BOS token; demonstration prompts start with BOS, as the experiment's do.")
    rng = np.random.default_rng([seed, 0x5AE])
    queues: dict[str, list[Any]] = {}
    encoders: dict[str, Any] = {}
    for name in tasks:
        task = get_task(name)
        examples = [e for e in load_examples(task, "train", data_dir=data_dir) if text_key(e.text()) not in exclude]
        if not examples:
            raise DataError(f"Task {name!r}: no train example is left after excluding the experiments' examples.")
        order = rng.permutation(len(examples))
        queues[name] = [examples[i] for i in order]
        encoders[name] = PromptEncoder(task, model.tokenizer, bos_token_id=int(bos))
    prompts: list[Any] = []
    counts: list[int] = []
    used: list[str] = []
    tokens = dict.fromkeys(queues, 0)
    cursor = dict.fromkeys(queues, 0)
    while sum(tokens.values()) < n_tokens:
        live = [t for t in queues if cursor[t] < len(queues[t])]
        if not live:
            break
        name = min(live, key=lambda t: tokens[t])
        demos = queues[name][cursor[name] : cursor[name] + demos_per_prompt]
        cursor[name] += demos_per_prompt
        prompt = encoders[name].demonstrations(demos)
        if len(prompt) > model.cfg.n_ctx:
            continue
        counts.append(selected_token_counts(model, [prompt], config)[0])
        tokens[name] += counts[-1]
        prompts.append(prompt)
        used.extend(e.text() for e in demos)
    return prompts, counts, used, tokens


def save_training_hashes(folder: str | os.PathLike[str], texts: Iterable[str]) -> None:
    """Write :data:`TRAINING_TEXTS_FILE` (the hashes of ``texts``) into an SAE folder."""
    np.save(Path(folder) / TRAINING_TEXTS_FILE, text_hashes(texts))


def training_overlap(sae_folder: str | os.PathLike[str], texts: Iterable[str]) -> int | None:
    """How many of ``texts`` the SAE in ``sae_folder`` was trained on (``None``: not recorded)."""
    path = Path(sae_folder) / TRAINING_TEXTS_FILE
    if not path.is_file():
        return None
    trained = np.load(path)
    return int(np.isin(text_hashes(texts), trained).sum())
