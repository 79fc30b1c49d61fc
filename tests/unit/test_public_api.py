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


def test_mechsel_collect_is_callable_even_after_the_package_is_imported():
    """``import mechsel.collect.plan`` binds ``mechsel.collect`` to the package; calling it must
    still run the collector (the README calls ``mechsel.collect(model, texts, ...)``)."""
    import mechsel.collect.plan  # noqa: F401
    from mechsel.collect.run import collect

    model = mechsel.tiny_model()
    texts = ["a b c", "d e"]
    via_package = mechsel.collect(model, texts, layers=[0], statistics=["mean"], progress=False)
    direct = collect(model, texts, layers=[0], statistics=["mean"], progress=False)
    np.testing.assert_array_equal(via_package.to_wide().to_numpy(), direct.to_wide().to_numpy())
    assert mechsel.collect.plan.build_plan is not None  # the package's submodules stay reachable
