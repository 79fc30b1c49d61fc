"""The built-in tasks, registered in :data:`mechsel.tasks.TASKS` in this one place.

Verbalisers were chosen to be single tokens for Gemma 3's tokenizer (checked in the integration
tests), so each label costs one read at the answer position: SST-2 ``" negative"``/``" positive"``,
AG News ``" World"``/``" Sports"``/``" Business"``/``" Technology"`` (``" Sci/Tech"`` would be
three tokens), RTE ``" True"``/``" False"`` (``" entailment"`` would be two).

Where each subset comes from (``TaskConfig.subset_splits``; subsets sharing a split never overlap):

=========  ===========  =====================  ==========================================
task       candidates   dev queries            test queries
=========  ===========  =====================  ==========================================
sst2       train        validation             test (local) · validation (hub), see below
ag_news    train        train                  test
rte        train        train                  validation
e2e_nlg    validation   validation             test
=========  ===========  =====================  ==========================================

SST-2's train split is mostly short phrases (median 7 space-separated tokens, 28% of at most
three), its validation and test splits full sentences (medians 19 and 18). Candidates stay train phrases
(the pool the selectors choose from), but the dev queries that measure each candidate's quality
come from *validation* and the test queries from the labelled SST *test* split in the local data
folder, so quality is measured on text like the test's. The hub's SST-2 test split is unlabelled
(label -1), so with ``source="hub"`` the test subset comes from validation too
(``hub_test_split``), drawn disjointly from the dev queries. For the former layout (dev queries
from train, test from validation) use ``dataclasses.replace(SST2, dev_split=None,
test_split="validation")`` or, in an experiment config, ``tasks[].dev_split: train``.
The other tasks' pool and test splits come from one distribution, so their dev queries come
from the pool split.
"""

from __future__ import annotations

from mechsel.tasks.base import TaskConfig, register_task

__all__ = ["SST2", "AG_NEWS", "RTE", "E2E_NLG"]

SST2 = register_task(
    TaskConfig(
        name="sst2",
        template="Review: {sentence}\nSentiment:",
        input_fields=("sentence",),
        label_field="label",
        label_names=("negative", "positive"),
        id_field="idx",
        hub_id="stanfordnlp/sst2",
        pool_split="train",
        dev_split="validation",
        test_split="test",
        hub_test_split="validation",
        description=(
            "GLUE SST-2 binary sentiment: candidates are train phrases, dev queries validation sentences, test queries "
            "the labelled SST test (local; on the hub, a part of validation disjoint from dev)."
        ),
    )
)

AG_NEWS = register_task(
    TaskConfig(
        name="ag_news",
        template="Article: {text}\nTopic:",
        input_fields=("text",),
        label_field="label",
        label_names=("World", "Sports", "Business", "Sci/Tech"),
        verbalizers=(" World", " Sports", " Business", " Technology"),
        hub_id="fancyzhx/ag_news",
        pool_split="train",
        test_split="test",
        description="AG News 4-way topic of news descriptions (the hub's text also carries the title).",
    )
)

RTE = register_task(
    TaskConfig(
        name="rte",
        template="{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:",
        input_fields=("sentence1", "sentence2"),
        label_field="label",
        label_names=("entailment", "not_entailment"),
        verbalizers=(" True", " False"),
        id_field="idx",
        hub_id="nyu-mll/glue",
        hub_config="rte",
        pool_split="train",
        test_split="validation",
        description="GLUE RTE textual entailment of sentence pairs.",
    )
)

E2E_NLG = register_task(
    TaskConfig(
        name="e2e_nlg",
        kind="generation",
        template="Attributes: {meaning_representation}\nDescription:",
        input_fields=("meaning_representation",),
        label_field=None,
        reference_field="human_reference",
        answer_prefix=" ",
        stop=("\n",),
        max_new_tokens=64,
        hub_id="tuetschek/e2e_nlg_cleaned",
        pool_split="validation",
        test_split="test",
        description="E2E NLG (cleaned): restaurant meaning representation → description; rows sharing an MR are one example.",
    )
)
