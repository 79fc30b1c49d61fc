"""Every notebook in ``notebooks/`` runs top to bottom at small settings (``MECHSEL_NOTEBOOK_SMALL=1``)
on the embedded model, offline, without a cell error."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 900


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_at_small_settings(path, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    monkeypatch.setenv("MECHSEL_NOTEBOOK_SMALL", "1")  # read by each notebook's parameters cell
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("MECHSEL_SAE_PATH", raising=False)  # notebook 03 trains its own tiny SAE
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell and its traceback, on any error
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in executed), "every code cell ran"
    if path.stem.startswith("03"):  # the circuitsvis view of an example's top latents is rendered inline
        html = [o["data"]["text/html"] for c in executed for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
        assert any("ColoredTokensMulti" in "".join(h) for h in html)
