"""The built-in tasks, registered in :data:`mechsel.tasks.TASKS` in this one place.

Verbalisers were chosen to be single tokens for Gemma 3's tokenizer (checked in the integration
tests), so each label costs one read at the answer position: SST-2 ``" negative"``/``" positive"``,
AG News ``" World"``/``" Sports"``/``" Business"``/``" Technology"`` (``" Sci/Tech"`` would be
three tokens), RTE ``" True"``/``" False"`` (``" entailment"`` would be two).

SST-2's test subset is drawn from GLUE *validation* by default, because the hub's test split is
unlabelled; the labelled SST test set in the local data folder is available as split ``"test"``
(``dataclasses.replace(get_task("sst2"), test_split="test")``, local source only).
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
        test_split="validation",
        description="GLUE SST-2 binary sentiment of movie-review sentences.",
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
