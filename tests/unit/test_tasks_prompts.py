"""Prompts: segments line up with the tokens they claim, roles, overflow rule, ordering."""

from __future__ import annotations

import re

import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.models import CharTokenizer
from mechsel.tasks import Example, PromptEncoder, get_task, order_demonstrations


class WordTokenizer:
    """A stand-in tokenizer: one token per word with its leading whitespace; ids assigned on first sight."""

    bos_token_id = 1

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.inverse: dict[int, str] = {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out = []
        for piece in re.findall(r"\s*\S+|\s+", text):
            if piece not in self.vocab:
                self.vocab[piece] = len(self.vocab) + 2
                self.inverse[self.vocab[piece]] = piece
            out.append(self.vocab[piece])
        return out

    def decode(self, ids) -> str:
        return "".join(self.inverse.get(int(i), "") for i in ids)


def sst(i: int, text: str, label: int) -> Example:
    return Example(id=i, inputs={"sentence": text}, label=label, split="train")


DEMOS = [sst(0, "a gripping film", 1), sst(1, "dull and long", 0), sst(2, "fine acting", 1)]
QUERY = sst(9, "what a mess", 0)


@pytest.mark.parametrize("tokenizer", [CharTokenizer(), WordTokenizer()], ids=["char", "word"])
def test_segments_line_up_with_the_text_they_claim(tokenizer):
    enc = PromptEncoder("sst2", tokenizer, bos_token_id=1)
    prompt = enc.build(DEMOS, QUERY)
    kinds = [s.kind for s in prompt.segments]
    assert kinds == ["bos", "demo", "sep", "demo", "sep", "demo", "sep", "query"]
    decode = lambda seg: tokenizer.decode(prompt.tokens[seg.start : seg.end])  # noqa: E731
    demos = [s for s in prompt.segments if s.kind == "demo"]
    for seg, ex in zip(demos, DEMOS):
        word = [" negative", " positive"][ex.label]
        assert decode(seg) == f"Review: {ex.inputs['sentence']}\nSentiment:{word}"
        assert seg.example_id == ex.id
        label_pos = [i for i in range(seg.start, seg.end) if prompt.roles[i] == "label"]
        assert tokenizer.decode([prompt.tokens[i] for i in label_pos]) == word
        text_pos = [i for i in range(seg.start, seg.end) if prompt.roles[i] == "text"]
        assert tokenizer.decode([prompt.tokens[i] for i in text_pos]) == ex.inputs["sentence"]
    for seg in prompt.segments:
        if seg.kind == "sep":
            assert decode(seg) == "\n\n" and set(prompt.roles[seg.start : seg.end]) == {"sep"}
    query = prompt.segments[-1]
    assert decode(query) == "Review: what a mess\nSentiment:" and query.example_id == 9
    assert "label" not in prompt.roles[query.start : query.end]
    assert prompt.tokens[0] == 1 and prompt.roles[0] == "bos"


def test_two_input_fields_and_no_bos():
    tok = CharTokenizer()
    enc = PromptEncoder("rte", tok, bos_token_id=None)
    q = Example(id=0, inputs={"sentence1": "It rains.", "sentence2": "It is wet."}, label=0)
    prompt = enc.build([q], q)
    assert not prompt.has_bos
    assert (
        tok.decode(prompt.tokens)
        == "It rains.\nQuestion: It is wet. True or False?\nAnswer: True\n\nIt rains.\nQuestion: It is wet. True or False?\nAnswer:"
    )
    roles = prompt.roles[prompt.segments[-1].start : prompt.segments[-1].end]
    assert roles.count("text") == len("It rains.") + len("It is wet.")


def test_generation_demo_shows_the_first_reference():
    tok = CharTokenizer()
    enc = PromptEncoder("e2e_nlg", tok, bos_token_id=1)
    demo = Example(id=0, inputs={"meaning_representation": "name[X]"}, references=("X is nice.", "Try X."))
    p = enc.build([demo], demo)
    assert tok.decode(p.tokens[p.segments[1].start : p.segments[1].end]) == "Attributes: name[X]\nDescription: X is nice."


def test_overflow_drops_from_the_front_and_never_cuts_the_query():
    tok = CharTokenizer()
    enc = PromptEncoder("sst2", tok, bos_token_id=1)
    full = enc.build(DEMOS, QUERY)
    lengths = [enc.length(d, answer=True) + 2 for d in DEMOS]
    budget = len(full) - lengths[0]  # room for the last two demonstrations only
    kept = enc.build(DEMOS, QUERY, max_tokens=budget)
    assert [s.example_id for s in kept.segments if s.kind == "demo"] == [1, 2] and len(kept) == budget
    assert tok.decode(kept.tokens[kept.segments[-1].start :]) == "Review: what a mess\nSentiment:"
    assert [s.example_id for s in enc.build(DEMOS, QUERY, max_tokens=budget - 1).segments if s.kind == "demo"] == [2]
    with pytest.raises(DataError, match="overflow='drop_front'"):
        enc.build(DEMOS, QUERY, max_tokens=budget, overflow="raise")
    query_only = 1 + enc.length(QUERY, answer=False)
    with pytest.raises(DataError, match="Not even one demonstration fits.*Raise max_tokens"):
        enc.build(DEMOS, QUERY, max_tokens=query_only + 3)
    with pytest.raises(DataError, match="queries are never cut"):
        enc.build([], QUERY, max_tokens=query_only - 1)
    assert len(enc.build([], QUERY, max_tokens=query_only)) == query_only
    with pytest.raises(DataError, match="reserved for the answer"):
        enc.build([], QUERY, max_tokens=query_only, reserve=1)


def test_demonstration_without_label_and_bad_separator():
    enc = PromptEncoder("sst2", CharTokenizer(), bos_token_id=1)
    with pytest.raises(DataError, match="no label"):
        enc.build([Example(id=5, inputs={"sentence": "x"})], QUERY)
    import dataclasses

    with pytest.raises(ConfigError, match="separator"):
        PromptEncoder(dataclasses.replace(get_task("sst2"), separator=""), CharTokenizer(), bos_token_id=1)


def test_ordering_policies():
    ids = lambda exs: [e.id for e in exs]  # noqa: E731
    assert ids(order_demonstrations(DEMOS, "given")) == [0, 1, 2]
    assert ids(order_demonstrations(DEMOS, "reverse")) == [2, 1, 0]
    assert ids(order_demonstrations(DEMOS, "ascending", scores=[0.9, 0.1, 0.5])) == [1, 2, 0]
    assert ids(order_demonstrations(DEMOS, "descending", scores=[0.9, 0.1, 0.5])) == [0, 2, 1]
    shuffled = [ids(order_demonstrations(DEMOS, "random", seed=s)) for s in range(10)]
    assert all(sorted(s) == [0, 1, 2] for s in shuffled) and len({tuple(s) for s in shuffled}) > 1
    assert shuffled[3] == ids(order_demonstrations(DEMOS, "random", seed=3))
    with pytest.raises(ConfigError, match="needs one score per demonstration"):
        order_demonstrations(DEMOS, "ascending")
    with pytest.raises(ConfigError, match="Unknown order policy"):
        order_demonstrations(DEMOS, "shuffle")  # type: ignore[arg-type]


def test_label_token_ids_multi_token_with_char_tokenizer():
    enc = PromptEncoder("sst2", CharTokenizer(), bos_token_id=1)
    assert [len(ids) for ids in enc.label_token_ids] == [len(" negative"), len(" positive")]
    with pytest.raises(ConfigError, match="generation task"):
        PromptEncoder("e2e_nlg", CharTokenizer(), bos_token_id=1).label_token_ids


def test_label_word_problems_name_the_label_and_how_it_tokenises():
    import dataclasses

    sst2 = get_task("sst2")
    assert PromptEncoder(sst2, WordTokenizer(), bos_token_id=1).label_word_problems() == []  # " negative": one word, spaced
    glued = dataclasses.replace(sst2, verbalizers=("negative", " positive"))
    problems = PromptEncoder(glued, WordTokenizer(), bos_token_id=1).label_word_problems()
    assert len(problems) == 1 and "label 'negative', 'negative', has no leading space" in problems[0]
    assert "Sentiment:negative'" in problems[0] and "expect ' negative'" in problems[0]
    spaced_cue = dataclasses.replace(glued, template="Review: {sentence}\nSentiment: ")
    assert PromptEncoder(spaced_cue, WordTokenizer(), bos_token_id=1).label_word_problems() == []  # the cue ends with the space
    words = PromptEncoder(dataclasses.replace(sst2, verbalizers=(" not good", " good")), WordTokenizer(), bos_token_id=1)
    (multi,) = words.label_word_problems()
    assert "label 'negative', ' not good', is 2 tokens for this tokenizer (' not' + ' good', ids [" in multi
    assert PromptEncoder(get_task("e2e_nlg"), WordTokenizer(), bos_token_id=1).label_word_problems() == []


def test_building_a_runner_logs_each_verbaliser_problem_once(caplog):
    from mechsel.icl import ICLRunner
    from mechsel.models import tiny_model

    with caplog.at_level("WARNING", logger="mechsel.icl.runner"):
        ICLRunner(tiny_model(), "sst2")  # one token per character: ' negative' is 9 tokens
    messages = [r.getMessage() for r in caplog.records if r.name == "mechsel.icl.runner"]
    assert len(messages) == 2 and all("tokens for this tokenizer" in m for m in messages)
    assert "label 'positive', ' positive', is 9 tokens" in messages[1] and "' ' + 'p' + 'o'" in messages[1]
