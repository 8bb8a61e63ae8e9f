"""The demo walkthrough notebook runs top to bottom and finds the drifting artist."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "demo_walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MELODEX_NB_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("MELODEX_NB_TRACKS", "8")
    monkeypatch.setenv("MELODEX_NB_SECONDS", "2")
    monkeypatch.delenv("MELODEX_MODEL", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "flagged as drifting: {'Drift Machine'} | by construction: Drift Machine" in text
    assert "neighbours sharing the query's genre" in text
    work = tmp_path / "work"
    assert (work / "library" / "parts").is_dir() and (work / "evolution" / "evolution.html").is_file()
    assert (work / "evolution" / "artist-drift-machine.png").is_file()
