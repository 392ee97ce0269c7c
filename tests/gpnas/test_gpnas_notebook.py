"""examples/gpnas_baseline.ipynb runs top to bottom (nbclient, this interpreter as kernel) on a small benchmark,
writes its submissions to a folder of its own (never the user's output/), and is stored with its outputs."""
import json
import os
import sys

import nbformat
from nbclient import NotebookClient

from oneforall.gpnas import read_ranking_json

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(REPO, "examples", "gpnas_baseline.ipynb")
KERNEL_NAME = "ufo-test-python"


def register_this_interpreter_as_kernel(jupyter_dir):
    """A kernelspec that runs ipykernel with sys.executable, so the notebook sees this venv whatever is installed
    in the user's Jupyter paths."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "UFO tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def cell_text(cell):
    return "".join(output.get("text", "") for output in cell.outputs if output.get("output_type") == "stream")


def snapshot(directory):
    """Every file under `directory` with its modification time (empty if it does not exist)."""
    return {os.path.join(root, name): os.stat(os.path.join(root, name)).st_mtime_ns
            for root, _, names in os.walk(directory) for name in names}


def test_notebook_runs_and_writes_submissions_to_its_own_folder(benchmark, tmp_path, monkeypatch):
    register_this_interpreter_as_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GPNAS_DATA", os.path.dirname(benchmark["train"]))
    monkeypatch.delenv("GPNAS_OUTPUT", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    user_files = snapshot(os.path.join(REPO, "output"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=300,
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    assert snapshot(os.path.join(REPO, "output")) == user_files
    printed = "".join(cell_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    out_dir = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("submissions: "))
    assert out_dir.startswith(str(tmp_path))
    test = read_ranking_json(benchmark["test"])
    for name in ("CCF_UFO_submit_baseline_fast.json", "CCF_UFO_submit_A.json"):
        submission = read_ranking_json(os.path.join(out_dir, name))
        assert submission.ids == test.ids
        assert sorted(submission.ranks[:, 0]) == list(range(len(test)))
    assert "what ours chose per task" in printed


def test_notebook_is_stored_with_the_outputs_of_every_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs and cell.execution_count for cell in code_cells)
    assert not any(output.get("output_type") == "error" for cell in code_cells for output in cell.outputs)
    assert any("image/png" in output.get("data", {}) for cell in code_cells for output in cell.outputs)
