"""No import cycle between mechsel's packages.

The graph is built from the source alone (nothing is imported): every module under ``mechsel/``
is parsed with :mod:`ast`, and every import that can run is an edge — module-level and inside
functions or methods alike, ``import x`` and ``from x import y``, relative imports resolved
against the importing module, and ``importlib.import_module("...")`` with a literal name. Imports
under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) are left out, since they never run; an
``else:`` branch of such a test does run and counts.

Nodes are mechsel's packages: a module belongs to the node named by its first two dotted parts,
so ``mechsel.experiment.stages.collect`` is in ``mechsel.experiment`` and
``mechsel.sae.demonstrations`` in ``mechsel.sae``; a top-level single module
(``mechsel.errors``, ``mechsel.registry``, ...) is its own node, and ``mechsel/__init__.py`` is the
node ``mechsel``. Imports between modules of one node are not edges (a package may arrange its own
modules as it likes; a cycle there is a module cycle, not a package cycle). The top-level package
imports nothing at run time (its public names are lazy), so importing it adds no edges; a
``from mechsel import name`` of one of its lazy names is counted as an import of the module that
defines the name, since that is what runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import mechsel

PACKAGE_ROOT = Path(mechsel.__file__).parent


@dataclass(frozen=True)
class Edge:
    """One import from the node ``source`` to the node ``target``, at ``file:line``."""

    source: str
    target: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.file}:{self.line})"


def module_files(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package at ``root``."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def node_of(module: str) -> str:
    """The graph node of a dotted module name (its first two parts; see the module docstring)."""
    return ".".join(module.split(".")[:2])


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those under an ``if TYPE_CHECKING:`` body."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _base_of(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def imported_modules(module: str, source: str, modules: set[str], lazy: Mapping[str, str]) -> Iterator[tuple[str, int]]:
    """``(dotted module, line)`` of each run-time import in ``source`` (the module ``module``).

    ``modules``: every dotted module name of the package (``from a import b`` imports the module
    ``a.b`` when there is one, and relative imports resolve against packages);
    ``lazy``: the top-level package's lazy names and the module each comes from."""
    top = module.split(".")[0]
    is_package = any(other.startswith(module + ".") for other in modules)
    for node in _run_time_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(module, is_package, node)
            for alias in node.names:
                if base == top and alias.name in lazy:
                    yield lazy[alias.name], node.lineno
                else:
                    yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def lazy_exports(init_source: str) -> dict[str, str]:
    """The top-level package's lazy names: ``{name: module}`` from its ``if TYPE_CHECKING:`` block."""
    out: dict[str, str] = {}
    for node in ast.parse(init_source).body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module:
                    out.update({alias.asname or alias.name: imp.module for alias in imp.names})
    return out


def package_edges(sources: Mapping[str, str], files: Mapping[str, str] | None = None) -> list[Edge]:
    """The import edges between the nodes of the modules ``sources`` (``{dotted name: source}``).

    Only imports of modules in ``sources`` count (the standard library and third parties are not
    nodes). ``files`` names each module's file in the messages (default: the dotted name)."""
    names = set(sources)
    top = min(names, key=len)
    lazy = lazy_exports(sources[top])
    edges: dict[Edge, None] = {}  # ordered and without repeats (``from a import b, c`` is one edge)
    for module, source in sources.items():
        for target, line in imported_modules(module, source, names, lazy):
            if target not in names and target.split(".")[0] == top:
                # ``from pkg.mod import name`` resolves to ``pkg.mod``; a dotted name that is not a
                # module (an attribute path) is cut back to the longest module prefix.
                while target not in names and "." in target:
                    target = target.rsplit(".", 1)[0]
            if target not in names:
                continue
            source_node, target_node = node_of(module), node_of(target)
            if source_node != target_node and target_node != top:
                edges[Edge(source_node, target_node, (files or {}).get(module, module), line)] = None
    return list(edges)


def find_cycle(edges: list[Edge]) -> list[Edge] | None:
    """One cycle of the graph ``edges`` as the edges along it (the first import of each pair), or
    ``None``."""
    first: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        first.setdefault((edge.source, edge.target), edge)
    succ: dict[str, list[str]] = {}
    for source, target in first:
        succ.setdefault(source, []).append(target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(succ.get(node, [])):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(succ):
        if node not in state and (cycle := visit(node)) is not None:
            return [first[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False)]
    return None


def cycle_message(edges: list[Edge]) -> str:
    """Empty when ``edges`` has no cycle; else the cycle's edges and every import along them."""
    cycle = find_cycle(edges)
    if cycle is None:
        return ""
    lines = ["mechsel has an import cycle between packages (one import per edge shown):"]
    lines += [f"  {edge}" for edge in cycle]
    pairs = {(e.source, e.target) for e in cycle}
    lines.append("all imports along these edges:")
    lines += [f"  {edge}" for edge in edges if (edge.source, edge.target) in pairs]
    return "\n".join(lines)


def _mechsel_edges() -> list[Edge]:
    files = module_files()
    sources = {name: path.read_text() for name, path in files.items()}
    return package_edges(sources, {name: str(path.relative_to(PACKAGE_ROOT.parent)) for name, path in files.items()})


def test_mechsel_has_no_import_cycle_between_packages():
    edges = _mechsel_edges()
    assert edges, "no import edge found at all: the graph is not being built"
    message = cycle_message(edges)
    assert not message, message


_PLANTED = {
    "pkg": '"""Lazy top level."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.low import thing as thing\n',
    "pkg.errors": "class Oops(Exception): ...\n",
    "pkg.low": "from pkg.errors import Oops\n",
    "pkg.low.base": "from . import helpers\nfrom ..errors import Oops\n",
    "pkg.low.helpers": "import os\n",
    "pkg.high": "",
    "pkg.high.run": "from typing import TYPE_CHECKING\nfrom pkg.low.base import Oops\nif TYPE_CHECKING:\n    from pkg.other import X\n",
    "pkg.other": "",
}


def test_the_planted_graph_without_a_cycle_passes():
    edges = package_edges(_PLANTED)
    assert {(e.source, e.target) for e in edges} == {("pkg.low", "pkg.errors"), ("pkg.high", "pkg.low")}
    assert find_cycle(edges) is None


def test_a_planted_function_level_cycle_is_found_with_file_and_line():
    sources = {**_PLANTED, "pkg.low.helpers": "import os\n\n\ndef late():\n    from ..high.run import Oops\n    return Oops\n"}
    cycle = find_cycle(package_edges(sources))
    assert cycle is not None
    assert {(e.source, e.target) for e in cycle} == {("pkg.low", "pkg.high"), ("pkg.high", "pkg.low")}
    assert any(str(e) == "pkg.low -> pkg.high  (pkg.low.helpers:5)" for e in cycle)
    assert "pkg.low.helpers:5" in cycle_message(package_edges(sources))


def test_a_cycle_through_a_lazy_top_level_name_and_import_module_is_found():
    sources = {
        **_PLANTED,
        "pkg.errors": "from pkg import thing\n",
        "pkg.low.helpers": "import importlib\nimportlib.import_module('pkg.errors')\n",
    }
    cycle = find_cycle(package_edges(sources))
    assert cycle is not None
    assert {(e.source, e.target) for e in cycle} == {("pkg.errors", "pkg.low"), ("pkg.low", "pkg.errors")}


def test_type_checking_imports_are_not_edges_but_their_else_branch_is():
    sources = {**_PLANTED, "pkg.other": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.high.run\n"}
    assert find_cycle(package_edges(sources)) is None
    sources["pkg.low"] = "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    import pkg.high\n"
    cycle = find_cycle(package_edges(sources))
    assert cycle is not None and {e.source for e in cycle} == {"pkg.low", "pkg.high"}
