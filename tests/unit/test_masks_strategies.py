"""Mask strategies as data: allowed matrices, positions, alone re-encoding, the registry."""

import numpy as np
import pytest

from mechsel.errors import ConfigError
from mechsel.masks import MASK_NAMES, MASKS, PromptBuilder, allowed_matrix, alone_segments, batch_allowed, get_mask, position_ids
from mechsel.models import CharTokenizer


def _prompt(bos=True):
    b = PromptBuilder(CharTokenizer(), bos_token_id=1 if bos else None)
    b.segment("demo", "a").add("R: ", "template").add("good", "text").add(" S: ", "template").add("p", "label")
    b.segment("sep").add("\n", "sep")
    b.segment("demo", "b").add("R: ", "template").add("bad", "text").add(" S: ", "template").add("n", "label")
    b.segment("sep").add("\n", "sep")
    b.segment("query", "q").add("R: ", "template").add("ok", "text")
    return b.build()


def _reference_allowed(prompt, isolated):
    """Straightforward double loop, independent of the vectorised implementation."""
    n = len(prompt)
    seg = prompt.segment_ids()
    out = np.zeros((n, n), dtype=bool)
    for q in range(n):
        for k in range(q + 1):
            if not isolated:
                out[q, k] = True
            else:
                out[q, k] = seg[q] == seg[k] or prompt.segments[seg[k]].kind == "bos"
    return out


@pytest.mark.parametrize("name", ["full", "isolated_inplace", "isolated", "alone"])
@pytest.mark.parametrize("bos", [True, False])
def test_allowed_matrix_matches_reference(name, bos):
    p = _prompt(bos)
    isolated = name in ("isolated_inplace", "isolated")
    np.testing.assert_array_equal(allowed_matrix(p, name), _reference_allowed(p, isolated))


def test_isolated_rows_see_only_own_segment_and_bos():
    p = _prompt()
    a = allowed_matrix(p, "isolated_inplace")
    q0 = p.segments[3].start  # first token of the second demo
    assert a[q0, 0] and a[q0, q0] and not a[q0, q0 - 1] and not a[q0, 1]
    sep = p.segments[2]
    assert a[sep.start, sep.start] and a[sep.start, 0] and not a[sep.start, sep.start - 1]


def test_position_ids():
    p = _prompt()
    np.testing.assert_array_equal(position_ids(p, "isolated_inplace"), np.arange(len(p)))
    pos = position_ids(p, "isolated")
    assert pos[0] == 0
    for seg in p.segments[1:]:
        np.testing.assert_array_equal(pos[seg.start : seg.end], np.arange(1, len(seg) + 1))
    nobos = _prompt(bos=False)
    assert position_ids(nobos, "isolated")[nobos.segments[1].start] == 0


def test_batch_allowed_pads_never_visible_to_real_tokens():
    p, short = _prompt(), _prompt(bos=True)
    short = alone_segments(short)[0][1]
    m = batch_allowed([p, short], "isolated_inplace", length=len(p))
    n = len(short)
    assert not m[1, :n, n:].any()
    assert m[1, n:].any(dim=-1).all()  # padding rows still attend to something
    np.testing.assert_array_equal(m[0].numpy(), allowed_matrix(p, "isolated_inplace"))


def test_alone_segments_reencode_each_example_with_bos():
    p = _prompt()
    parts = alone_segments(p)
    assert [i for i, _ in parts] == [1, 3, 5]
    for index, alone in parts:
        seg = p.segments[index]
        assert alone.tokens == (1,) + p.tokens[seg.start : seg.end]
        assert alone.roles[1:] == p.roles[seg.start : seg.end]
        assert alone.segments[-1].example_id == seg.example_id and alone.segments[-1].kind == seg.kind
    assert alone_segments(_prompt(bos=False))[0][1].tokens[0] != 1


def test_registry_and_unknown_mask():
    assert set(MASK_NAMES) == set(MASKS.names())
    assert get_mask("isolated").restart_positions and not get_mask("isolated_inplace").restart_positions
    assert get_mask("alone").reencode and not get_mask("full").needs_hooks
    with pytest.raises(ConfigError, match="isolated_inplace"):
        get_mask("isolate")
