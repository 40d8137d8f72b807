"""notebooks/quickstart.ipynb runs top to bottom at the tiny size."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_PRESET", "tiny")
    monkeypatch.setenv("QUICKSTART_DIR", str(tmp_path))
    nb = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "MAE" in outputs and "internal" in outputs
    assert (tmp_path / "sheet.png").exists()
