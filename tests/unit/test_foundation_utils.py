import dataclasses
import os

import pytest

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.masks.segments import PromptBuilder, alone_prompt
from mechsel.models.tiny import CharTokenizer
from mechsel.paths import atomic_dir, atomic_write_text, data_dir
from mechsel.provenance import Provenance, check_compatible, hash_texts
from mechsel.registry import Registry


def test_registry_refuses_duplicates_and_lists_valid_names():
    reg = Registry("widget")
    reg.register("alpha")(1)
    reg.add("beta", 2)
    assert reg.get("alpha") == 1 and reg.names() == ["alpha", "beta"] and "beta" in reg
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("alpha", 3)
    with pytest.raises(ConfigError, match="Did you mean 'alpha'.*Valid widgets: alpha, beta"):
        reg.get("alpah")


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and os.listdir(tmp_path) == []
    with atomic_dir(target) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (target / "done.txt").read_text() == "ok"
    atomic_write_text(tmp_path / "f.txt", "hello")
    assert (tmp_path / "f.txt").read_text() == "hello"
    assert sorted(os.listdir(tmp_path)) == ["f.txt", "out"]


def test_missing_data_dir_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="MECHSEL_DATA_DIR"):
        data_dir(tmp_path / "nope")


def _prov(**kw):
    base = dict(model_name="m", weight_hash="h", weight_processing="none", dtype="float32", mask="full")
    base.update(kw)
    return Provenance(**base)


def test_provenance_mismatch_names_the_field():
    check_compatible(_prov(), _prov())
    with pytest.raises(ProvenanceMismatchError, match="mask: 'full' vs 'isolated'"):
        check_compatible(_prov(), _prov(mask="isolated"))
    p = _prov(extra={"task": "sst2"})
    assert Provenance.from_dict(p.to_dict()) == p
    with pytest.raises(ProvenanceMismatchError, match="unknown fields"):
        Provenance.from_dict({**p.to_dict(), "colour": "red"})
    assert dataclasses.is_dataclass(p)


def test_hash_texts_is_order_and_boundary_sensitive():
    assert hash_texts(["ab", "c"]) != hash_texts(["a", "bc"])
    assert hash_texts(["a", "b"]) != hash_texts(["b", "a"])
    assert hash_texts(["a", "b"]) == hash_texts(("a", "b"))


def test_prompt_builder_segments_line_up_with_tokens():
    tok = CharTokenizer()
    b = PromptBuilder(tok, bos_token_id=tok.bos_token_id)
    b.segment("demo", 7).add("R: ", "template").add("good", "text").add(" -> ", "template").add("pos", "label")
    b.segment("sep").add("\n", "sep")
    b.segment("query", "q").add("R: ", "template").add("bad", "text").add(" -> ", "template")
    p = b.build()
    assert [s.kind for s in p.segments] == ["bos", "demo", "sep", "query"]
    demo = p.segments[1]
    assert tok.decode(p.tokens[demo.start : demo.end]) == "R: good -> pos"
    text_ids = [t for t, r in zip(p.tokens, p.roles) if r == "text"]
    assert tok.decode(text_ids) == "goodbad"
    assert list(p.segment_ids()) == [0] + [1] * 14 + [2] + [3] * 10
    with pytest.raises(DataError, match="empty"):
        alone_prompt(tok, "   ", bos_token_id=1)
    with pytest.raises(DataError, match="Call .segment"):
        PromptBuilder(tok, bos_token_id=None).add("x", "text")
