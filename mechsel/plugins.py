"""Plug-ins: user modules imported before a config is read, so what they register (a selector,
a statistic, a task) can be named in that config.

A plug-in is a dotted module name on ``sys.path`` (``my_lab.selectors``) or the path of one
``.py`` file (relative paths are taken from the config file's folder). Each is imported once per
process; importing it again is a no-op, so registrations are never repeated.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from mechsel.errors import ConfigError

__all__ = ["load_plugins", "resolve_plugin"]


def resolve_plugin(spec: str, base_dir: Path) -> str:
    """``spec`` as stored in a config: a ``.py`` path made absolute (from ``base_dir``), else unchanged."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"plugins entries must be module names or .py file paths, got {spec!r}.")
    if spec.endswith(".py"):
        return str((base_dir / spec).resolve())
    return spec


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"mechsel_plugin_{path.stem}_{digest}"


def _import_file(path: Path, where: str) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"{where}: plug-in file {path} does not exist; give the path of a .py file (relative to the config file).")
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: cannot load {path} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        del sys.modules[name]
        raise
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"{where}: importing {path} failed: {type(err).__name__}: {err}") from err
    return module


def load_plugins(specs: Sequence[str], base_dir: str | Path = ".") -> list[ModuleType]:
    """Import every plug-in of ``specs`` (see the module docstring) and return the modules."""
    if isinstance(specs, str):
        raise ConfigError(f"plugins must be a list of module names or .py paths, got the string {specs!r}; write plugins: [{specs}].")
    out = []
    for i, spec in enumerate(specs):
        where = f"plugins[{i}]"
        resolved = resolve_plugin(spec, Path(base_dir))
        if resolved.endswith(".py"):
            out.append(_import_file(Path(resolved), where))
            continue
        try:
            out.append(importlib.import_module(resolved))
        except ImportError as err:
            raise ConfigError(f"{where}: cannot import module {resolved!r} ({err}); install it or give the path of a .py file.") from None
    return out
