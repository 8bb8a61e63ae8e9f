"""The demo walkthrough notebook runs top to bottom on the trained demo CNN and finds the drifting
artist, using only Melodex's public API, and writes only where .gitignore covers."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "demo_walkthrough.ipynb"


def _sources() -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(NOTEBOOK.read_text())["cells"]
            if cell["cell_type"] == "code"]


def test_the_notebook_uses_the_public_api_only():
    for source in _sources():
        internal = re.findall(r"(?:from|import) (melodex\.[\w.]+)", source)
        assert not internal, f"the notebook imports internals: {internal}"


def test_the_notebooks_default_output_folder_is_ignored_by_git():
    for folder in ("melodex_outputs/walkthrough/x.png", "notebooks/melodex_outputs/walkthrough/x.png"):
        done = subprocess.run(["git", "check-ignore", "-q", folder], cwd=ROOT)
        assert done.returncode == 0, f"{folder} is not covered by .gitignore"


def test_walkthrough_notebook_executes_on_the_demo_cnn(small_demo, tmp_path, monkeypatch):
    status, demo_data, demo_outputs = small_demo
    assert status == 0
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MELODEX_NB_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("MELODEX_DEMO_OUTPUTS", str(demo_outputs))  # as after `make demo`
    monkeypatch.setenv("MELODEX_DEMO_DATA", str(demo_data))
    monkeypatch.delenv("MELODEX_MODEL", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    text = "\n".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "flagged as drifting: {'Drift Machine'} | by construction: Drift Machine" in text
    assert "model: " + str((demo_outputs / "training_outputs" / "latest").resolve()) in text
    share = float(re.search(r"neighbours sharing the query's genre: ([0-9.]+)", text).group(1))
    assert share >= 0.6
    work = tmp_path / "work"
    assert (work / "library" / "parts").is_dir() and (work / "evolution" / "evolution.html").is_file()
    assert (work / "evolution" / "artist-drift-machine.png").is_file() and (work / "map.html").is_file()
    assert not (ROOT / "notebooks" / "melodex_outputs").exists()
