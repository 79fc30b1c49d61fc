"""The notebooks are committed clean (no outputs) and read their size from a parameters cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_four_walkthroughs_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_reproduce_paper.ipynb",
        "03_sae_followup.ipynb",
        "04_mechanisms.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stripped_and_parameterised(path):
    book = json.loads(path.read_text())
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), "strip outputs before committing"
    first = code[0]
    assert "parameters" in first["metadata"].get("tags", [])
    assert 'os.environ.get("MECHSEL_NOTEBOOK_SMALL"' in "".join(first["source"])
    for cell in code:
        compile("".join(cell["source"]), f"{path.name}:{cell.get('id')}", "exec")  # no syntax errors
