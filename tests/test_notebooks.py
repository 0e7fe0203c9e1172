"""Notebooks are executed top to bottom; their own check cells must pass."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

# notebook -> (the line its check cell prints, the charts it must show)
CHECK_LINES = {
    "01_explore_rfmw.ipynb": ("segment checks passed", 2),
    "02_retrain_and_compare.ipynb": ("retrain checks passed", 2),
    "03_read_explanations.ipynb": ("auditor checks passed", 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECK_LINES))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    line, charts = CHECK_LINES[name]
    assert line in outputs
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert images >= charts
