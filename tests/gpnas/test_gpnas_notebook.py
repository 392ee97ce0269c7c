"""examples/gpnas_baseline.ipynb runs top to bottom (nbclient, this interpreter as kernel) on a small benchmark."""
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


def test_notebook_runs_and_writes_schema_valid_submissions(benchmark, tmp_path, monkeypatch):
    register_this_interpreter_as_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GPNAS_DATA", os.path.dirname(benchmark["train"]))
    monkeypatch.setenv("GPNAS_OUTPUT", str(tmp_path / "out"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=300,
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    test = read_ranking_json(benchmark["test"])
    for name in ("CCF_UFO_submit_baseline_fast.json", "CCF_UFO_submit_A.json"):
        submission = read_ranking_json(str(tmp_path / "out" / name))
        assert submission.ids == test.ids
        assert sorted(submission.ranks[:, 0]) == list(range(len(test)))
