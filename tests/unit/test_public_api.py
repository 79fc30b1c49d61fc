"""The top-level API resolves, and the test-time shape checker really checks mechsel's shapes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_mechsel_collect_is_the_function_in_any_import_order():
    """``mechsel.collect`` is a plain function (the package is ``mechsel.collection``), whatever
    was imported before."""
    import mechsel.collection.plan  # noqa: F401
    from mechsel.collection.run import collect

    assert mechsel.collect is collect
    model = mechsel.tiny_model()
    result = mechsel.collect(model, ["a b c", "d e"], layers=[0], statistics=["mean"], progress=False)
    assert result.to_wide().shape == (2, 1)


def test_the_type_checking_imports_match_the_lazy_exports():
    """The ``if TYPE_CHECKING:`` imports (what tools see) and the lazy table (what runs) agree."""
    tree = ast.parse(Path(mechsel.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == mechsel._EXPORTS
    assert mechsel.__all__ == ["__version__", *mechsel._EXPORTS]


def test_an_sae_selector_resolves_in_a_fresh_interpreter():
    """The SAE selectors register with the others: no import of mechsel.sae or the experiment needed."""
    code = "import mechsel; s = mechsel.get_selector('sae_topk', statistic='sae_l0'); print(type(s).__name__, s.family)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SAETopKSelector", "sae"]
