"""The README's "Using it from Python" snippet runs as printed, on the embedded model, offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.integration
@pytest.mark.slow
def test_readme_python_snippet_runs(capsys):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    namespace: dict = {"__name__": "readme"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - the README is ours
    score, ci = namespace["result"].score, namespace["result"].ci
    assert 0.0 <= ci[0] <= score <= ci[1] <= 1.0
    assert len(namespace["chosen"].indices) == 4
    assert len(namespace["quality"]) == len(namespace["splits"].pool)
