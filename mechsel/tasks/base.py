"""Task definitions: one :class:`TaskConfig` describes a dataset, its fields, labels and template.

A task is pure configuration; :mod:`mechsel.tasks.loading` turns it into :class:`Example` rows
(from the local data directory or the Hugging Face hub) and :mod:`mechsel.tasks.prompts` turns
examples into prompts. The built-in tasks (``sst2``, ``ag_news``, ``rte``, ``e2e_nlg``) are
:class:`TaskConfig` instances registered in :data:`TASKS`; a new classification dataset needs
only a new config, no code::

    cfg = TaskConfig(name="my_reviews", files={"train": "reviews/train.jsonl", "test": "reviews/test.jsonl"},
                     input_fields=("review",), label_field="stars", label_names=("bad", "good"),
                     template="Review: {review}\\nVerdict:")
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from mechsel.errors import ConfigError, did_you_mean
from mechsel.registry import Registry

__all__ = ["TaskKind", "Example", "TaskConfig", "TASKS", "register_task", "get_task", "task_names"]

TaskKind = Literal["classification", "generation"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)


@dataclass(frozen=True)
class Example:
    """One task example: its input fields and either a label (classification) or references."""

    id: Any
    """Stable identifier within its split (the dataset's id field, else the row number; for
    grouped generation examples, the index of the group in order of first appearance)."""
    inputs: Mapping[str, str]
    """Input field name → text, for every field in :attr:`TaskConfig.input_fields`."""
    label: int | None = None
    """Index into :attr:`TaskConfig.label_names` (classification), else ``None``."""
    references: tuple[str, ...] = ()
    """Reference outputs (generation), in file order; empty for classification."""
    split: str = ""
    """The source split the example was read from."""

    def text(self, joiner: str = "\n") -> str:
        """The input fields joined (for embeddings, BM25 and selector pools)."""
        return joiner.join(self.inputs.values())


def template_fields(template: str) -> list[str]:
    """Names of the ``{field}`` placeholders in ``template``, in order."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(
            f"Template {template!r} is not a valid format string ({err}). Escape literal braces as '{{{{' and '}}}}'."
        ) from None
    return [name for _, name, _, _ in parsed if name is not None]


@dataclass(frozen=True)
class TaskConfig:
    """Everything needed to load a task's rows and build its prompts.

    The prompt of one example is ``template`` with its input fields filled in, followed (for a
    demonstration) by the answer: the verbaliser of its label, or ``answer_prefix`` + its first
    reference. Demonstrations are separated by ``separator``.
    """

    name: str
    """Registry name, e.g. ``"sst2"``."""
    template: str
    """Format string with one ``{field}`` per input field, ending with the answer cue, e.g.
    ``"Review: {sentence}\\nSentiment:"``. The answer is appended after it."""
    input_fields: tuple[str, ...]
    """Row fields holding the inputs, e.g. ``("sentence1", "sentence2")``."""
    kind: TaskKind = "classification"
    """``classification`` (score label words) or ``generation`` (decode and compare to references)."""
    label_field: str | None = "label"
    """Row field holding the label: an integer index into ``label_names`` or one of the names."""
    label_names: tuple[str, ...] = ()
    """Dataset label names in index order, e.g. ``("negative", "positive")``."""
    verbalizers: tuple[str, ...] | None = None
    """Words the model should produce for each label, with their leading space (``" positive"``);
    multi-token words are allowed and scored as the sum of their token log-probabilities.
    ``None``: ``" " + name`` for every label name."""
    reference_field: str | None = None
    """Generation: row field holding a reference output."""
    answer_prefix: str = " "
    """Generation: text put between the answer cue and a demonstration's reference."""
    separator: str = "\n\n"
    """Text between consecutive examples in a prompt."""
    stop: tuple[str, ...] = ("\n",)
    """Generation: decoding stops at the first of these strings (not included in the output)."""
    max_new_tokens: int = 64
    """Generation: length limit of a continuation, in tokens."""
    id_field: str | None = None
    """Row field with a stable example id; ``None`` uses the row number within the split."""
    hub_id: str | None = None
    """Hugging Face dataset id, for loading with ``source="hub"`` (needs network)."""
    hub_config: str | None = None
    """Hugging Face dataset configuration name (e.g. ``"rte"`` for ``nyu-mll/glue``)."""
    local_folder: str | None = None
    """Sub-folder of the data directory holding ``<split>.jsonl`` files; ``None`` means ``name``."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Explicit split → JSON-lines path (absolute, or relative to the data directory). When given,
    these are the task's only local splits and ``local_folder`` is not used."""
    pool_split: str = "train"
    """Split the candidate pool is drawn from."""
    dev_split: str | None = None
    """Split the dev queries (which estimate each candidate's quality) are drawn from; ``None``:
    ``pool_split``. Point it at a split from the test's distribution when the pool split's text
    differs (SST-2: short train phrases, full validation/test sentences)."""
    test_split: str = "test"
    """Split the test subset is drawn from. Any two of the three splits may be equal: subsets
    sharing a split are drawn from it without overlap (see :mod:`mechsel.tasks.splits`)."""
    hub_test_split: str | None = None
    """Split the test subset is drawn from when loading with ``source="hub"``; ``None``:
    ``test_split``. For datasets whose hub test split is unlabelled (GLUE's, with label -1)."""
    description: str = ""
    """One line for listings."""

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("input_fields", "label_names", "stop"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"TaskConfig.{name} must be a sequence of strings, not the single string {value!r}; write ({value!r},).")
            set_(name, tuple(value))
        if self.verbalizers is not None:
            if isinstance(self.verbalizers, str):
                raise ConfigError(f"TaskConfig.verbalizers must be a sequence of strings, got the string {self.verbalizers!r}.")
            set_("verbalizers", tuple(self.verbalizers))
        set_("files", dict(self.files))
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"TaskConfig.name must be a non-empty string, got {self.name!r}.")
        for name in ("pool_split", "dev_split", "test_split", "hub_test_split"):
            value = getattr(self, name)
            optional = name in ("dev_split", "hub_test_split")
            if not (isinstance(value, str) and value) and not (optional and value is None):
                raise ConfigError(
                    f"Task {self.name!r}: {name} must be a split name such as 'train', 'validation' or 'test'"
                    f"{' (or None for the default)' if optional else ''}, got {value!r}."
                )
        if self.kind not in TASK_KINDS:
            raise ConfigError(f"TaskConfig.kind must be one of {TASK_KINDS}, got {self.kind!r}.")
        if not self.input_fields:
            raise ConfigError(f"Task {self.name!r}: input_fields is empty; name the row field(s) holding the input text.")
        placeholders = template_fields(self.template)
        unknown = [f for f in placeholders if f not in self.input_fields]
        if unknown:
            raise ConfigError(
                f"Task {self.name!r}: template placeholder {{{unknown[0]}}} is not an input field."
                f"{did_you_mean(unknown[0], self.input_fields)} Input fields: {list(self.input_fields)}."
            )
        unused = [f for f in self.input_fields if f not in placeholders]
        if unused:
            raise ConfigError(
                f"Task {self.name!r}: input field {unused[0]!r} does not appear in the template {self.template!r}; "
                f"add a {{{unused[0]}}} placeholder or drop it from input_fields."
            )
        if self.kind == "classification":
            if not self.label_field:
                raise ConfigError(f"Classification task {self.name!r} needs label_field (the row field holding the label).")
            if len(self.label_names) < 2:
                raise ConfigError(f"Classification task {self.name!r} needs at least two label_names, got {list(self.label_names)}.")
            if len(set(self.label_names)) != len(self.label_names):
                raise ConfigError(f"Task {self.name!r}: label_names must be distinct, got {list(self.label_names)}.")
            verbs = self.label_words
            if len(verbs) != len(self.label_names):
                raise ConfigError(
                    f"Task {self.name!r}: {len(verbs)} verbalizers for {len(self.label_names)} labels; give one word per label name."
                )
            if len(set(verbs)) != len(verbs) or any(not v.strip() for v in verbs):
                raise ConfigError(f"Task {self.name!r}: verbalizers must be distinct, non-blank strings, got {list(verbs)}.")
        else:
            if not self.reference_field:
                raise ConfigError(f"Generation task {self.name!r} needs reference_field (the row field holding a reference output).")
            if self.max_new_tokens < 1:
                raise ConfigError(f"Task {self.name!r}: max_new_tokens must be ≥ 1, got {self.max_new_tokens}.")
            if any(not isinstance(s, str) or not s for s in self.stop):
                raise ConfigError(f"Task {self.name!r}: stop sequences must be non-empty strings, got {list(self.stop)}.")

    @property
    def label_words(self) -> tuple[str, ...]:
        """The verbaliser of every label (``" " + name`` unless ``verbalizers`` is set)."""
        if self.verbalizers is not None:
            return self.verbalizers
        return tuple(" " + n for n in self.label_names)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def subset_splits(self, source: str = "local") -> dict[str, str]:
        """The split each subset is drawn from, in draw order: ``{"dev": ..., "pool": ..., "test": ...}``.

        ``source`` is ``"local"`` or ``"hub"`` (the hub may read the test subset from
        :attr:`hub_test_split`)."""
        test = self.hub_test_split if source == "hub" and self.hub_test_split is not None else self.test_split
        return {"dev": self.dev_split or self.pool_split, "pool": self.pool_split, "test": test}

    @property
    def folder(self) -> str:
        """Sub-folder of the data directory with this task's files."""
        return self.local_folder or self.name

    def describe(self) -> dict[str, Any]:
        """The fields that determine prompts and rows, as a JSON-friendly dict (for provenance)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "template": self.template,
            "input_fields": list(self.input_fields),
            "label_names": list(self.label_names),
            "label_words": list(self.label_words) if self.kind == "classification" else [],
            "answer_prefix": self.answer_prefix if self.kind == "generation" else "",
            "separator": self.separator,
        }


TASKS: Registry[TaskConfig] = Registry("task")
"""All registered tasks, by name. The built-ins are registered in :mod:`mechsel.tasks.builtin`."""


def register_task(config: TaskConfig) -> TaskConfig:
    """Register ``config`` under ``config.name`` (duplicates raise) and return it."""
    if not isinstance(config, TaskConfig):
        raise ConfigError(f"register_task expects a TaskConfig, got {type(config).__name__}.")
    TASKS.add(config.name, config)
    return config


def get_task(task: str | TaskConfig) -> TaskConfig:
    """Return the registered task named ``task`` (or ``task`` itself if it is already a config)."""
    if isinstance(task, TaskConfig):
        return task
    return TASKS.get(task)


def task_names() -> list[str]:
    """Names of all registered tasks."""
    return TASKS.names()
