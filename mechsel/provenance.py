"""Provenance records: what produced a cached array or a result, and refusing to mix mismatches."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mechsel.errors import ProvenanceMismatchError

__all__ = ["Provenance", "library_versions", "hash_texts", "hash_json", "check_compatible"]

_TRACKED_LIBRARIES = ("mechsel", "torch", "transformer_lens", "transformers", "sae_lens", "numpy")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change a number, as installed now."""
    from importlib import metadata

    names = {"transformer_lens": "transformer-lens", "sae_lens": "sae-lens"}
    out = {}
    for lib in _TRACKED_LIBRARIES:
        try:
            out[lib] = metadata.version(names.get(lib, lib))
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def hash_texts(texts: Iterable[str]) -> str:
    """A stable SHA-256 (first 16 hex digits) of a sequence of texts, order-sensitive."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:16]


def hash_json(obj: Any) -> str:
    """A stable SHA-256 (first 16 hex digits) of a JSON-serialisable object (keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Provenance:
    """Everything that determines a cached array's numbers.

    Fields are compared by :func:`check_compatible`; ``versions`` and ``extra`` entries are
    informative unless listed in the ``fields`` argument.
    """

    model_name: str
    """TransformerLens model name (or ``"tiny-random"`` for test models)."""
    weight_hash: str
    """Fingerprint of the model's weights (see :func:`mechsel.models.weight_fingerprint`)."""
    weight_processing: str
    """How weights were processed on load: ``"none"`` or a TransformerLens processing preset."""
    dtype: str
    """Dtype the model ran in, e.g. ``"float32"``."""
    hook: str = ""
    """Hook point summarised, e.g. ``"mlp_out"``."""
    mask: str = ""
    """Attention-mask strategy (``full``, ``isolated``, ``alone``)."""
    positions: str = ""
    """Which of an example's tokens were summarised (``all``, ``input``, ``last``)."""
    bos_policy: str = ""
    """How BOS was handled, e.g. ``"prepend, excluded from statistics"``."""
    padding_side: str = ""
    """Padding side used when batching."""
    data_hash: str = ""
    """Hash of the input texts / prompts."""
    versions: Mapping[str, str] = field(default_factory=library_versions)
    """Library versions at creation time."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything else specific to the producer (SAE id, task, ...)."""

    STRICT_FIELDS = (
        "model_name",
        "weight_hash",
        "weight_processing",
        "dtype",
        "hook",
        "mask",
        "positions",
        "bos_policy",
        "padding_side",
    )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["versions"] = dict(self.versions)
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ProvenanceMismatchError(
                f"Provenance record has unknown fields {sorted(unknown)}; it was written by a "
                f"different mechsel version. Recompute it with this version."
            )
        return cls(**dict(d))

    def replace(self, **changes: Any) -> Provenance:
        return dataclasses.replace(self, **changes)


def check_compatible(a: Provenance, b: Provenance, fields: Iterable[str] = Provenance.STRICT_FIELDS, what: str = "results") -> None:
    """Raise :class:`ProvenanceMismatchError` naming every field in which ``a`` and ``b`` differ."""
    diffs = []
    for name in fields:
        va = getattr(a, name) if hasattr(a, name) else a.extra.get(name)
        vb = getattr(b, name) if hasattr(b, name) else b.extra.get(name)
        if va != vb:
            diffs.append(f"{name}: {va!r} vs {vb!r}")
    if diffs:
        raise ProvenanceMismatchError(
            f"Cannot combine {what} with different provenance ({'; '.join(diffs)}). Recompute one of them with the other's settings."
        )
