"""The named token groups an attribution is reported over: BOS, each demonstration, separators, query.

A prompt built by :class:`~mechsel.tasks.PromptEncoder` tiles into segments (``bos``, ``demo``,
``sep``, ``query``; see :mod:`mechsel.masks.segments`). Attribution reports one group per
demonstration (``"demo 1"`` … ``"demo k"``, numbered in prompt order, 1 nearest BOS), one for BOS,
one for all separator segments together (``"sep"``) and one for the query (``"query"``). A
demonstration's group holds all of its tokens: its template text, its input words and its answer
(label) tokens; :attr:`PromptGroups.roles` keeps each token's role so results can be split further.
The answer position is the last token of the query, where the model predicts the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mechsel.errors import ConfigError
from mechsel.masks.segments import SegmentedPrompt

__all__ = ["PromptGroups", "group_prompt"]

BOS, SEP, QUERY = "bos", "sep", "query"


def demo_name(index: int) -> str:
    """The group name of the ``index``-th demonstration (0-based index → ``"demo 1"``)."""
    return f"demo {index + 1}"


@dataclass(frozen=True)
class PromptGroups:
    """Every token of one prompt assigned to a named group."""

    names: tuple[str, ...]
    """Group names in prompt order: ``"bos"`` (when present), ``"demo 1"`` … ``"demo k"``, ``"sep"``
    (when the prompt has separators), ``"query"``."""
    token_group: np.ndarray
    """``[pos]`` int64: each token's index into :attr:`names`."""
    roles: tuple[str, ...]
    """Each token's role (``bos``, ``template``, ``text``, ``label``, ``sep``)."""
    demo_ids: tuple[Any, ...]
    """The example id of each demonstration, in prompt order."""
    demo_spans: tuple[tuple[int, int], ...]
    """``[start, end)`` token span of each demonstration, in prompt order."""
    answer_position: int
    """Index of the query's last token, whose next-token prediction is the answer."""

    @property
    def n_demos(self) -> int:
        return len(self.demo_ids)


def group_prompt(prompt: SegmentedPrompt) -> PromptGroups:
    """Group the tokens of an ICL prompt (``[bos] demo sep demo sep ... query``).

    Raises:
        ConfigError: the prompt has no demonstration, or does not end with its query segment.
    """
    if not prompt.segments or prompt.segments[-1].kind != "query":
        kinds = [s.kind for s in prompt.segments]
        raise ConfigError(
            f"Attribution needs a prompt that ends with its query segment (the answer is predicted after it); got segments {kinds}. "
            "Build it with PromptEncoder.build(demos, query) or ICLRunner.prompts([demos], [query])."
        )
    demos = [s for s in prompt.segments if s.kind == "demo"]
    if not demos:
        raise ConfigError(
            "The prompt has no demonstration segment, so there is nothing to attribute to. Pass at least one demonstration "
            "(k ≥ 1): per-demonstration attribution of a 0-shot prompt is empty."
        )
    has_sep = any(s.kind == "sep" for s in prompt.segments)
    names = ([BOS] if prompt.has_bos else []) + [demo_name(i) for i in range(len(demos))] + ([SEP] if has_sep else []) + [QUERY]
    index = {name: i for i, name in enumerate(names)}
    token_group = np.empty(len(prompt), dtype=np.int64)
    demo_i = 0
    for seg in prompt.segments:
        if seg.kind == "demo":
            name = demo_name(demo_i)
            demo_i += 1
        else:
            name = {"bos": BOS, "sep": SEP, "query": QUERY}[seg.kind]
        token_group[seg.start : seg.end] = index[name]
    return PromptGroups(
        names=tuple(names),
        token_group=token_group,
        roles=tuple(prompt.roles),
        demo_ids=tuple(s.example_id for s in demos),
        demo_spans=tuple((s.start, s.end) for s in demos),
        answer_position=len(prompt) - 1,
    )
