#!/usr/bin/env bash
# Static checks, before the tests: ruff (lint + format) over the tree, pyright over the package
# (settings in pyproject.toml: [tool.ruff], [tool.pyright]).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pyright
