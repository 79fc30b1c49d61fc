"""Shared fixtures. Offline mode is forced before any Hugging Face import."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fixed_seeds():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def spy_evaluate(monkeypatch):
    """``spy_evaluate(interrupt_on=None)`` replaces ``mechsel.icl.evaluate`` (what the runner's
    evaluate stage calls) by a wrapper that counts its calls in the returned dict's ``"n"`` and
    raises ``KeyboardInterrupt`` (a Ctrl-C) on call number ``interrupt_on``; each call re-installs."""
    import mechsel.icl

    real = mechsel.icl.evaluate

    def install(interrupt_on: int | None = None) -> dict[str, int]:
        calls = {"n": 0}

        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == interrupt_on:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(mechsel.icl, "evaluate", wrapper)
        return calls

    return install


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets (../shared/data or $MECHSEL_DATA_DIR)."""
    from mechsel.paths import data_dir

    return data_dir()


@pytest.fixture(scope="session")
def sst2_sentences(shared_data_dir) -> list[str]:
    """The first 64 real SST-2 validation sentences."""
    rows = []
    with open(shared_data_dir / "sst2" / "validation.jsonl") as fh:
        for line in fh:
            rows.append(json.loads(line)["sentence"])
            if len(rows) == 64:
                break
    return rows


@pytest.fixture(scope="session")
def embedded_model():
    """The real embedded Gemma 3 270M, loaded offline once per session (float32, no processing)."""
    from mechsel.models import load_model

    return load_model(device="cpu")


@pytest.fixture
def tiny():
    """A tiny random rotary/RMS HookedTransformer with a character tokenizer."""
    from mechsel.models import tiny_model

    return tiny_model()
