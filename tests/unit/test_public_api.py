"""The top-level API resolves, and the test-time shape checker really checks mechsel's shapes."""

from __future__ import annotations

import numpy as np
import pytest

import mechsel


def test_every_public_name_resolves():
    for name in mechsel.__all__:
        assert getattr(mechsel, name) is not None, name
    assert mechsel.load_model is __import__("mechsel.models", fromlist=["load_model"]).load_model


def test_unknown_attribute_says_where_to_look():
    with pytest.raises(AttributeError, match="__all__"):
        mechsel.not_a_thing  # noqa: B018


def test_shape_checker_rejects_a_wrong_shape():
    """``unit_rows`` is annotated ``Float[np.ndarray, "n d"]``: a 1-D array must be refused by the
    jaxtyping hook installed for the tests (if this passes silently, shapes are not checked)."""
    from mechsel.selectors.graphs import unit_rows

    assert unit_rows(np.ones((3, 2), dtype=np.float32), center=False).shape == (3, 2)
    with pytest.raises(Exception, match="(?i)type-check|shape|violat"):
        unit_rows(np.ones(5, dtype=np.float32), center=False)
