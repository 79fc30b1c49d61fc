"""The top-level API resolves, and the test-time shape checker really checks mechsel's shapes."""

from __future__ import annotations

import ast
import importlib
import json
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


def _type_checking_block() -> ast.If:
    tree = ast.parse(Path(mechsel.__file__).read_text())
    return next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")


def test_the_public_names_are_spelled_once_in_the_type_checking_block():
    """The ``if TYPE_CHECKING:`` block is the one list of public names: ``_EXPORTS`` and
    ``__all__`` are read from it at run time, each name once, each as ``name as name`` (the form
    type checkers take as a re-export)."""
    block = _type_checking_block()
    imports = [(alias, node) for node in block.body for alias in getattr(node, "names", [])]
    assert all(isinstance(node, ast.ImportFrom) and node.level == 0 for node in block.body)
    assert all(alias.asname == alias.name for alias, _ in imports), "write `from mechsel.x import name as name`"
    names = [alias.name for alias, _ in imports]
    assert len(names) == len(set(names)) == 47
    assert mechsel._EXPORTS == {alias.name: node.module for alias, node in imports}
    assert mechsel.__all__ == ["__version__", *names]
    assert mechsel.__version__ == "0.1.0" and sorted(dir(mechsel)) == sorted(mechsel.__all__)
    # ... and nowhere else: the module-level assignments list no public name
    assigned = [n for n in ast.parse(Path(mechsel.__file__).read_text()).body if isinstance(n, ast.Assign | ast.AnnAssign)]
    spelled = {c.value for n in assigned for c in ast.walk(n) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    assert spelled == {"0.1.0", "__version__"}, spelled


def test_each_public_name_is_the_object_of_the_module_the_block_names():
    for name, module in mechsel._EXPORTS.items():
        assert getattr(mechsel, name) is getattr(importlib.import_module(module), name), name


def test_import_mechsel_imports_none_of_its_parts():
    """``import mechsel`` stays light: no sub-package (and neither torch nor numpy) until a
    public name is used."""
    code = (
        "import sys, mechsel; assert len(mechsel.__all__) == 48; "
        "print(sorted(m for m in sys.modules if m.startswith('mechsel.') or m in ('torch', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pyright_sees_every_public_name(tmp_path):
    """A type checker reading ``mechsel`` knows each public name's real type (an unknown name
    falls through to the module ``__getattr__`` and is ``Any``)."""
    pyright = Path(sys.executable).parent / "pyright"
    if not pyright.exists():
        pytest.skip("pyright is not installed in this environment (pip install -e '.[dev]')")
    names = [*mechsel.__all__, "not_a_public_name"]
    (tmp_path / "client.py").write_text("import mechsel\n\n" + "".join(f"reveal_type(mechsel.{n})\n" for n in names))
    config = {"extraPaths": [str(Path(mechsel.__file__).parent.parent)], "pythonVersion": "3.10", "typeCheckingMode": "basic"}
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    run = subprocess.run(
        [str(pyright), "--pythonpath", sys.executable, "--outputjson", "client.py"], cwd=tmp_path, capture_output=True, text=True
    )
    report = json.loads(run.stdout)
    assert report["summary"]["errorCount"] == 0, report["generalDiagnostics"]
    revealed = {d["range"]["start"]["line"] - 2: d["message"] for d in report["generalDiagnostics"] if d["severity"] == "information"}
    types = {names[i]: message.rsplit(" is ", 1)[1].strip('"') for i, message in revealed.items()}
    assert types.pop("not_a_public_name") == "Any"
    assert types["__version__"] == "str" and types["Pool"] == "type[Pool]"
    assert sorted(types) == sorted(mechsel.__all__)
    assert not {n: t for n, t in types.items() if t in ("Any", "Unknown")}


def test_an_sae_selector_resolves_in_a_fresh_interpreter():
    """The SAE selectors register with the others: no import of mechsel.sae or the experiment needed."""
    code = "import mechsel; s = mechsel.get_selector('sae_topk', statistic='sae_l0'); print(type(s).__name__, s.family)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SAETopKSelector", "sae"]
