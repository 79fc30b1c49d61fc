"""In-context prompts: demonstrations + query → a :class:`~mechsel.masks.segments.SegmentedPrompt`.

Layout (BOS only when ``bos_token_id`` is given)::

    [bos] [demo 1] [sep] [demo 2] [sep] ... [demo k] [sep] [query]

A demo segment is the task template with the example's fields filled in (roles: literal
template text → ``template``, field values → ``text``) followed by its answer (role ``label``:
the label's verbaliser, or ``answer_prefix`` + first reference for generation). The query
segment is the filled template without an answer; the model's answer starts right after it.
Every piece is tokenised on its own, as :class:`~mechsel.masks.segments.PromptBuilder` does.

Over-long prompts (``max_tokens``): ``overflow="drop_front"`` drops demonstrations from the
front of the ordered list, i.e. those farthest from the query (with ``order="ascending"`` by
similarity, the least similar first), until the prompt fits; ``overflow="raise"`` raises. The
query is never cut: a query that does not fit alone, or a prompt that cannot keep even one of
its demonstrations, raises :class:`~mechsel.errors.DataError`.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import PromptBuilder, SegmentedPrompt, TokenRole
from mechsel.tasks.base import Example, TaskConfig, get_task

__all__ = ["OrderPolicy", "Overflow", "PromptEncoder", "order_demonstrations", "sample_demonstrations", "content_free_example"]

logger = logging.getLogger(__name__)

OrderPolicy = Literal["given", "reverse", "random", "ascending", "descending"]
"""Order of demonstrations in the prompt: as given, reversed, seeded shuffle, or sorted by a score
(``ascending``: the highest-scoring demonstration sits last, next to the query)."""
ORDER_POLICIES: tuple[str, ...] = get_args(OrderPolicy)
Overflow = Literal["drop_front", "raise"]
"""What to do when a prompt is longer than ``max_tokens`` (see the module docstring)."""
OVERFLOWS: tuple[str, ...] = get_args(Overflow)

Piece = tuple[tuple[int, ...], TokenRole]


class PromptEncoder:
    """Tokenises a task's examples into prompt pieces (each once) and assembles prompts.

    Args:
        task: a task name or config.
        tokenizer: anything with ``encode(text, add_special_tokens=False)`` (and ``decode``).
        bos_token_id: id of the BOS segment, or ``None`` for prompts without BOS. Explicit on
            purpose: BOS changes every activation and score.
    """

    def __init__(self, task: str | TaskConfig, tokenizer: Any, *, bos_token_id: int | None) -> None:
        self.task = get_task(task)
        self.tokenizer = tokenizer
        self.bos_token_id = None if bos_token_id is None else int(bos_token_id)
        self._parts = [(lit, name) for lit, name, _, _ in string.Formatter().parse(self.task.template)]
        self._ids: dict[str, tuple[int, ...]] = {}
        self._pieces: dict[tuple, tuple[Piece, ...]] = {}
        self.separator_ids = self.encode(self.task.separator)
        if not self.separator_ids:
            raise ConfigError(
                f"Task {self.task.name!r}: the separator {self.task.separator!r} encodes to no tokens; use a visible separator such as '\\n\\n'."
            )

    def encode(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text`` on its own (memoised)."""
        ids = self._ids.get(text)
        if ids is None:
            ids = tuple(int(i) for i in self.tokenizer.encode(text, add_special_tokens=False)) if text else ()
            self._ids[text] = ids
        return ids

    @property
    def label_token_ids(self) -> tuple[tuple[int, ...], ...]:
        """Token ids of every label's verbaliser (classification tasks)."""
        if self.task.kind != "classification":
            raise ConfigError(f"Task {self.task.name!r} is a {self.task.kind} task; it has no label words.")
        out = tuple(self.encode(w) for w in self.task.label_words)
        if any(not ids for ids in out):
            raise ConfigError(f"Task {self.task.name!r}: a verbaliser encodes to no tokens: {list(self.task.label_words)}.")
        if len(set(out)) != len(out):
            raise ConfigError(f"Task {self.task.name!r}: two verbalisers encode to the same tokens; choose distinct words.")
        return out

    def label_word_problems(self) -> list[str]:
        """What may bias a classification task's label scores, one sentence per verbaliser at fault
        (empty for generation tasks): no leading space where the template puts the answer right
        after text (``"Answer:"`` + ``"yes"`` reads ``Answer:yes``, a token sequence the model rarely
        saw), or several tokens for this tokenizer (scored as the sum of their log-probabilities,
        which favours labels of fewer tokens). :class:`~mechsel.icl.ICLRunner` logs them."""
        if self.task.kind != "classification":
            return []
        literal, field_name = self._parts[-1]
        tail = "{" + field_name + "}" if field_name is not None else literal[-12:]
        glued = field_name is not None or not literal[-1:].isspace()
        problems = []
        for name, word in zip(self.task.label_names, self.task.label_words):
            if glued and not word[:1].isspace():
                problems.append(
                    f"Task {self.task.name!r}: the verbaliser of label {name!r}, {word!r}, has no leading space, but the template "
                    f"ends with {tail!r}, so prompts read {tail + word!r}; most tokenizers expect {' ' + word!r} "
                    f"(set verbalizers with a leading space, or end the template with one)."
                )
            ids = self.encode(word)
            if len(ids) > 1:
                decode = getattr(self.tokenizer, "decode", None)
                pieces = [decode([i]) for i in ids] if callable(decode) else list(ids)
                problems.append(
                    f"Task {self.task.name!r}: the verbaliser of label {name!r}, {word!r}, is {len(ids)} tokens for this "
                    f"tokenizer ({' + '.join(repr(x) for x in pieces)}, ids {list(ids)}); it is scored as the sum of their "
                    f"log-probabilities, which favours labels of fewer tokens. A one-token word is safer."
                )
        return problems

    def pieces(self, example: Example, *, answer: bool) -> tuple[Piece, ...]:
        """The token pieces of ``example``: filled template, plus its answer if ``answer``."""
        key = (example.id, example.split, tuple(example.inputs.items()), example.label, example.references[:1], answer)
        cached = self._pieces.get(key)
        if cached is not None:
            return cached
        out: list[Piece] = []
        for literal, name in self._parts:
            if literal:
                out.append((self.encode(literal), "template"))
            if name is not None:
                if name not in example.inputs:
                    raise DataError(f"Example {example.id!r} has no input field {name!r} (it has {sorted(example.inputs)}).")
                out.append((self.encode(example.inputs[name]), "text"))
        if answer:
            out.append((self.encode(self.answer_text(example)), "label"))
        pieces = tuple(p for p in out if p[0])
        self._pieces[key] = pieces
        return pieces

    def answer_text(self, example: Example) -> str:
        """The answer a demonstration shows: its label's verbaliser or ``answer_prefix`` + first reference."""
        if self.task.kind == "classification":
            if example.label is None:
                raise DataError(f"Demonstration {example.id!r} has no label; demonstrations need gold labels.")
            return self.task.label_words[example.label]
        if not example.references:
            raise DataError(f"Demonstration {example.id!r} has no reference output; demonstrations need one.")
        return self.task.answer_prefix + example.references[0]

    def length(self, example: Example, *, answer: bool) -> int:
        """Number of tokens of ``example``'s segment."""
        return sum(len(ids) for ids, _ in self.pieces(example, answer=answer))

    def fit(
        self, demos: Sequence[Example], query: Example, *, max_tokens: int | None, overflow: Overflow = "drop_front", reserve: int = 0
    ) -> list[Example]:
        """The demonstrations that fit with ``query`` in ``max_tokens`` (see the module docstring)."""
        if overflow not in OVERFLOWS:
            raise ConfigError(f"overflow must be one of {OVERFLOWS}, got {overflow!r}.")
        demos = list(demos)
        if max_tokens is None:
            return demos
        base = (self.bos_token_id is not None) + self.length(query, answer=False) + reserve
        if base > max_tokens:
            raise DataError(
                f"Query {query.id!r} needs {base} tokens (BOS, query and {reserve} reserved for the answer) but "
                f"max_tokens is {max_tokens}; queries are never cut. Raise max_tokens or drop this query."
            )
        lengths = [self.length(d, answer=True) + len(self.separator_ids) for d in demos]
        total = base + sum(lengths)
        if total <= max_tokens:
            return demos
        if overflow == "raise":
            raise DataError(
                f"The prompt for query {query.id!r} needs {total} tokens, over max_tokens={max_tokens}. Use fewer or "
                f"shorter demonstrations, raise max_tokens, or pass overflow='drop_front'."
            )
        start = 0
        while start < len(demos) and total > max_tokens:
            total -= lengths[start]
            start += 1
        if start == len(demos):
            raise DataError(
                f"Not even one demonstration fits with query {query.id!r} in max_tokens={max_tokens} "
                f"(the shortest needs {min(lengths)} tokens, {max_tokens - base} are free). Raise max_tokens."
            )
        logger.info(
            "Dropped %d of %d demonstrations (from the front) to fit query %r in %d tokens.", start, len(demos), query.id, max_tokens
        )
        return demos[start:]

    def build(
        self,
        demos: Sequence[Example],
        query: Example,
        *,
        max_tokens: int | None = None,
        overflow: Overflow = "drop_front",
        reserve: int = 0,
    ) -> SegmentedPrompt:
        """The prompt for ``query`` after ``demos`` (in the order given).

        Args:
            demos: demonstrations, already ordered (see :func:`order_demonstrations`).
            query: the example to answer; its label is never shown.
            max_tokens: token budget of the whole prompt plus ``reserve``; ``None`` for no limit.
            overflow: ``"drop_front"`` or ``"raise"`` (module docstring).
            reserve: tokens kept free after the prompt (answer tokens scored or generated).
        """
        kept = self.fit(demos, query, max_tokens=max_tokens, overflow=overflow, reserve=reserve)
        builder = PromptBuilder(self.tokenizer, bos_token_id=self.bos_token_id)
        for demo in kept:
            self._add_demo(builder, demo)
            builder.segment("sep")
            builder.add_ids(self.separator_ids, "sep")
        builder.segment("query", query.id)
        for ids, role in self.pieces(query, answer=False):
            builder.add_ids(ids, role)
        return builder.build()

    def demonstrations(self, demos: Sequence[Example]) -> SegmentedPrompt:
        """BOS and the demonstrations with their answers, separated as in :meth:`build`, with no
        query: the prompts whose demonstration segments the activation statistics summarise."""
        builder = PromptBuilder(self.tokenizer, bos_token_id=self.bos_token_id)
        for i, demo in enumerate(demos):
            if i:
                builder.segment("sep").add_ids(self.separator_ids, "sep")
            self._add_demo(builder, demo)
        return builder.build()

    def _add_demo(self, builder: PromptBuilder, demo: Example) -> None:
        builder.segment("demo", demo.id)
        for ids, role in self.pieces(demo, answer=True):
            builder.add_ids(ids, role)


def order_demonstrations(
    demos: Sequence[Example], policy: OrderPolicy = "given", *, seed: int = 0, scores: Sequence[float] | None = None
) -> list[Example]:
    """Order demonstrations by ``policy``; ``ascending``/``descending`` sort by ``scores`` (stable)."""
    if policy not in ORDER_POLICIES:
        raise ConfigError(f"Unknown order policy {policy!r}; choose one of {ORDER_POLICIES}.")
    demos = list(demos)
    if policy == "given":
        return demos
    if policy == "reverse":
        return demos[::-1]
    if policy == "random":
        return [demos[i] for i in np.random.default_rng(seed).permutation(len(demos))]
    if scores is None or len(scores) != len(demos):
        raise ConfigError(
            f"Order policy {policy!r} needs one score per demonstration (got {None if scores is None else len(scores)} for {len(demos)})."
        )
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    return [demos[i] for i in (order if policy == "ascending" else order[::-1])]


def sample_demonstrations(pool: Sequence[Example], k: int, *, seed: int, exclude: Any = None) -> list[Example]:
    """``k`` distinct examples drawn uniformly from ``pool`` (seeded), skipping id ``exclude``."""
    candidates = [e for e in pool if exclude is None or e.id != exclude]
    if not candidates:
        raise DataError(
            "The candidate pool is empty: there is nothing to draw demonstrations from. Pass a non-empty pool "
            "(make_splits(...).pool; check SplitConfig.pool_size), or use k=0 for zero-shot prompts."
        )
    if k < 0:
        raise ConfigError(f"k must be ≥ 0, got {k}.")
    if k > len(candidates):
        raise DataError(f"Asked for k={k} demonstrations but the pool has only {len(candidates)} candidates; lower k or enlarge the pool.")
    idx = np.random.default_rng(seed).choice(len(candidates), size=k, replace=False)
    return [candidates[i] for i in idx]


def content_free_example(task: str | TaskConfig, text: str) -> Example:
    """A query whose every input field is ``text`` (``"N/A"``, ``""``, ``"[MASK]"``; Zhao et al. 2021)."""
    cfg = get_task(task)
    return Example(id=f"content-free:{text}", inputs={f: text for f in cfg.input_fields}, split="content-free")
