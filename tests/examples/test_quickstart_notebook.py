"""examples/allinone_quickstart.ipynb runs top to bottom (nbclient, this interpreter as kernel) on the tiny parity
model and the miniature data tree, shows its figures, and the committed file keeps its rendered outputs.

After editing the notebook, save it with fresh outputs: `python tests/examples/test_quickstart_notebook.py`."""
import json
import os
import sys

import nbformat
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(REPO, "examples", "allinone_quickstart.ipynb")
KERNEL_NAME = "ufo-test-python"


def register_this_interpreter_as_kernel(jupyter_dir):
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "UFO tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def pictures(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})]


def text_of(notebook):
    return "".join(output.get("text", "") + "".join(output.get("data", {}).get("text/plain", ""))
                   for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def test_the_committed_notebook_keeps_its_outputs_and_names_the_official_file():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert len(pictures(notebook)) >= 4  # the rank list, ROC, thresholds, a worst query
    assert "allinone_vitlarge.pdmodel" in "".join(cell.source for cell in notebook.cells)
    assert "Traceback" not in text_of(notebook)


def test_notebook_runs_on_the_tiny_model_and_writes_only_to_its_output_folder(mini_root, tmp_path, monkeypatch):
    register_this_interpreter_as_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("FASTREID_DATASETS", mini_root)
    monkeypatch.setenv("UFO_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("PYTHONPATH", REPO)
    before = sorted(os.listdir(os.path.dirname(NOTEBOOK)))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        cell.outputs = [] if cell.cell_type == "code" else None
        if cell.cell_type != "code":
            del cell["outputs"]
    NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=300,
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    assert len(pictures(notebook)) >= 4
    text = text_of(notebook)
    assert "query features (" in text and "LFW" in text and "Market1501" in text
    assert os.path.isfile(tmp_path / "out" / "vis" / "LFW_roc.png")
    assert sorted(os.listdir(os.path.dirname(NOTEBOOK))) == before  # nothing written beside the notebook


def refresh(jupyter_dir):
    """Execute the notebook as a user would (no data given: the miniature tree in a temporary folder) and save it
    with its outputs."""
    import pathlib

    register_this_interpreter_as_kernel(pathlib.Path(jupyter_dir))
    os.environ["JUPYTER_PATH"] = str(jupyter_dir)
    os.environ.pop("FASTREID_DATASETS", None)
    os.environ.setdefault("PYTHONPATH", REPO)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=600,
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(notebook, NOTEBOOK)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        refresh(folder)
    print(f"saved {NOTEBOOK} with its outputs")
