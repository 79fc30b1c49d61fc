"""Tasks: datasets, their fields and labels, seeded splits and in-context prompts.

==========  ==============  ==========================================  =====================
name        kind            template (answer follows)                   answers
==========  ==============  ==========================================  =====================
sst2        classification  ``Review: {sentence}\\nSentiment:``          negative / positive
ag_news     classification  ``Article: {text}\\nTopic:``                 World / Sports / Business / Technology
rte         classification  ``{sentence1}\\nQuestion: {sentence2} ...``  True / False
e2e_nlg     generation      ``Attributes: {meaning_representation}...`` the references
==========  ==============  ==========================================  =====================
"""

from mechsel.tasks import builtin  # noqa: F401  (imported for registration)
from mechsel.tasks.base import TASKS, Example, TaskConfig, TaskKind, get_task, register_task, task_names
from mechsel.tasks.loading import TaskLocation, load_examples, load_rows, local_split_files, locate_task, rows_to_examples
from mechsel.tasks.prompts import (
    OrderPolicy,
    Overflow,
    PromptEncoder,
    content_free_example,
    order_demonstrations,
    sample_demonstrations,
)
from mechsel.tasks.splits import SplitConfig, TaskSplits, examples_hash, make_splits

__all__ = [
    "TASKS",
    "Example",
    "TaskConfig",
    "TaskKind",
    "get_task",
    "register_task",
    "task_names",
    "TaskLocation",
    "locate_task",
    "load_examples",
    "load_rows",
    "local_split_files",
    "rows_to_examples",
    "OrderPolicy",
    "Overflow",
    "PromptEncoder",
    "content_free_example",
    "order_demonstrations",
    "sample_demonstrations",
    "SplitConfig",
    "TaskSplits",
    "examples_hash",
    "make_splits",
]
