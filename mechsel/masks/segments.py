"""Segmented prompts: token ids plus, for every token, its role and the segment it belongs to.

A prompt is a sequence of contiguous segments: an optional BOS segment, demonstration
segments, separator segments and a final query segment. Inside a segment every token has a
role: ``template`` (fixed prompt text such as ``"Review: "``), ``text`` (the example's own
words), ``label`` (the answer/verbaliser tokens of a demonstration) or ``sep``. Mask strategies
use the segments; the collector uses the roles to pick which positions to summarise.

Each piece of text is tokenised on its own (``add_special_tokens=False``) and the ids are
concatenated, so segment boundaries are exact token boundaries. This can differ from
tokenising the joined string at a boundary by a merge; it is the standard choice for
segment-level analyses and is applied identically everywhere in mechsel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from mechsel.errors import DataError

__all__ = ["TokenRole", "SegmentKind", "Segment", "SegmentedPrompt", "PromptBuilder", "alone_prompt"]

TokenRole = Literal["bos", "template", "text", "label", "sep"]
SegmentKind = Literal["bos", "demo", "query", "sep"]
TOKEN_ROLES: tuple[str, ...] = get_args(TokenRole)
SEGMENT_KINDS: tuple[str, ...] = get_args(SegmentKind)


@dataclass(frozen=True)
class Segment:
    """A contiguous run of tokens ``[start, end)`` belonging to one part of the prompt."""

    kind: SegmentKind
    """``bos``, ``demo`` (a demonstration), ``query`` or ``sep`` (separator between parts)."""
    start: int
    """Index of the segment's first token in the prompt."""
    end: int
    """One past the index of the segment's last token."""
    example_id: Any = None
    """Identifier of the example the segment encodes (demos and query), else ``None``."""

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentedPrompt:
    """Token ids with per-token roles and a list of segments that tile the prompt."""

    tokens: tuple[int, ...]
    """Token ids, BOS included when the prompt has one."""
    roles: tuple[TokenRole, ...]
    """Per-token role, same length as ``tokens``."""
    segments: tuple[Segment, ...]
    """Segments in order; they cover ``tokens`` exactly, without gaps or overlaps."""
    pieces: tuple[str, ...] = field(default=(), compare=False)
    """The text pieces the prompt was built from (for display only)."""

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.roles):
            raise DataError(f"tokens ({len(self.tokens)}) and roles ({len(self.roles)}) differ in length.")
        pos = 0
        for seg in self.segments:
            if seg.start != pos or seg.end < seg.start:
                raise DataError(f"Segments must tile the prompt contiguously; segment {seg} starts at {seg.start}, expected {pos}.")
            pos = seg.end
        if pos != len(self.tokens):
            raise DataError(f"Segments cover {pos} tokens but the prompt has {len(self.tokens)}.")
        bad = set(self.roles) - set(TOKEN_ROLES)
        if bad:
            raise DataError(f"Unknown token roles {sorted(bad)}; valid roles: {TOKEN_ROLES}.")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def has_bos(self) -> bool:
        return bool(self.segments) and self.segments[0].kind == "bos"

    def segment_ids(self) -> np.ndarray:
        """Per-token index into ``segments`` (int64 array of length ``len(self)``)."""
        out = np.empty(len(self.tokens), dtype=np.int64)
        for i, seg in enumerate(self.segments):
            out[seg.start : seg.end] = i
        return out

    def role_array(self) -> np.ndarray:
        return np.array(self.roles, dtype=object)

    def example_segments(self) -> list[tuple[int, Segment]]:
        """``(segment index, segment)`` for every demo and query segment."""
        return [(i, s) for i, s in enumerate(self.segments) if s.kind in ("demo", "query")]


class PromptBuilder:
    """Builds a :class:`SegmentedPrompt` piece by piece.

    Example::

        b = PromptBuilder(model.tokenizer, bos_token_id=model.tokenizer.bos_token_id)
        b.segment("demo", example_id=3)
        b.add("Review: ", "template"); b.add(text, "text"); b.add("\\nSentiment: ", "template"); b.add("positive", "label")
        b.segment("sep"); b.add("\\n\\n", "sep")
        b.segment("query", example_id="q0"); ...
        prompt = b.build()

    Args:
        tokenizer: a Hugging Face tokenizer (anything with ``encode(text, add_special_tokens=False)``).
        bos_token_id: id prepended as its own ``bos`` segment, or ``None`` for no BOS. Explicit
            on purpose: whether a BOS is present changes every activation.
    """

    def __init__(self, tokenizer: Any, *, bos_token_id: int | None) -> None:
        self.tokenizer = tokenizer
        self._tokens: list[int] = []
        self._roles: list[str] = []
        self._pieces: list[str] = []
        self._segments: list[Segment] = []
        self._open: tuple[str, Any, int] | None = None
        if bos_token_id is not None:
            self._segments.append(Segment("bos", 0, 1))
            self._tokens.append(int(bos_token_id))
            self._roles.append("bos")

    def _close(self) -> None:
        if self._open is not None:
            kind, example_id, start = self._open
            if len(self._tokens) == start:
                raise DataError(f"Segment {kind!r} (example {example_id!r}) is empty: add at least one token to it.")
            self._segments.append(Segment(kind, start, len(self._tokens), example_id))  # type: ignore[arg-type]
            self._open = None

    def segment(self, kind: SegmentKind, example_id: Any = None) -> PromptBuilder:
        """Start a new segment of ``kind``; the previous one is closed."""
        if kind not in SEGMENT_KINDS or kind == "bos":
            raise DataError(f"Segment kind must be one of {[k for k in SEGMENT_KINDS if k != 'bos']}, got {kind!r}.")
        self._close()
        self._open = (kind, example_id, len(self._tokens))
        return self

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def add(self, text: str, role: TokenRole) -> PromptBuilder:
        """Tokenise ``text`` on its own and append it to the open segment with ``role``."""
        if self._open is None:
            raise DataError("Call .segment(kind) before .add(text, role).")
        if role not in TOKEN_ROLES or role == "bos":
            raise DataError(f"Token role must be one of {[r for r in TOKEN_ROLES if r != 'bos']}, got {role!r}.")
        if not isinstance(text, str):
            raise DataError(f"Prompt pieces must be strings, got {type(text).__name__}: {text!r}.")
        ids = self.encode(text) if text else []
        self._tokens.extend(ids)
        self._roles.extend([role] * len(ids))
        self._pieces.append(text)
        return self

    def add_ids(self, ids: Sequence[int], role: TokenRole) -> PromptBuilder:
        """Append pre-tokenised ids to the open segment with ``role``."""
        if self._open is None:
            raise DataError("Call .segment(kind) before .add_ids(ids, role).")
        self._tokens.extend(int(i) for i in ids)
        self._roles.extend([role] * len(ids))
        return self

    def build(self) -> SegmentedPrompt:
        self._close()
        return SegmentedPrompt(tuple(self._tokens), tuple(self._roles), tuple(self._segments), tuple(self._pieces))  # type: ignore[arg-type]


def alone_prompt(tokenizer: Any, text: str, *, bos_token_id: int | None, example_id: Any = None) -> SegmentedPrompt:
    """An example encoded on its own: BOS (if given) followed by the text as one ``demo`` segment."""
    if not isinstance(text, str):
        raise DataError(f"Expected a string, got {type(text).__name__}: {text!r}.")
    if not text.strip():
        raise DataError(f"Example {example_id!r} is empty (or only whitespace); remove it from the inputs.")
    return PromptBuilder(tokenizer, bos_token_id=bos_token_id).segment("demo", example_id).add(text, "text").build()
