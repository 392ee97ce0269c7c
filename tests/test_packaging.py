"""`pip install .` gives a package that works outside the checkout: the wheel (built from a copy of the sources)
installs into a fresh venv that reuses this environment's dependencies, `ufo-eval --help` works, and a tiny
evaluation runs from another folder with the packaged config named `allinone/tiny_eval` (its `_base_` files resolve
inside the package)."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "spec", "reference", "tiny_upstream.pdparams")
SCRIPTS = ("ufo-eval", "ufo-train", "ufo-export", "ufo-gpnas")


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("PADDLE_")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def run(cmd, cwd, timeout=300, **env):
    result = subprocess.run(cmd, cwd=str(cwd), env=clean_env(**env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(tmp_path):
    """The wheel of a copy of the sources (building in the checkout would leave build/ and *.egg-info there)."""
    source = tmp_path / "source"
    for folder in ("allinone", "oneforall", "configs"):
        shutil.copytree(os.path.join(ROOT, folder), source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for file in ("setup.py", "README.md", "requirements.txt"):
        shutil.copy(os.path.join(ROOT, file), source / file)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "dist"), str(source)], tmp_path)
    wheels = list((tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(tmp_path):
    """A venv without pip whose extra path is this environment's site-packages (paddle, faiss, ...), so nothing is
    downloaded; the path is appended (no .pth of it runs), so this checkout's editable install does not leak in."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  tmp_path).stdout.strip()
    with open(os.path.join(purelib, "shared_dependencies.pth"), "w", encoding="utf-8") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_installed_wheel_evaluates_from_another_folder_with_a_packaged_config(tmp_path, mini_root):
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path)
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
         str(wheel)], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(venv / "bin" / "python"), "-c", "import allinone; print(allinone.__file__)"], elsewhere)
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the wheel's copy, not the checkout
    for script in SCRIPTS:
        assert "usage:" in run([str(venv / "bin" / script), "--help"], elsewhere).stdout
    # oneforall is found as allinone's plugin through the installed entry point (no Global.plugins, no import)
    plugin = run([str(venv / "bin" / "python"), "-c", "import sys; from allinone.registry import STEPS; "
                  "print(STEPS.get('TaskMoEStep').__module__, 'oneforall.plugin' in sys.modules)"], elsewhere)
    assert plugin.stdout.split() == ["oneforall.moe_training", "True"], plugin.stdout

    result = run([str(venv / "bin" / "ufo-eval"), "--config", "allinone/tiny_eval", "--model_path", WEIGHTS,
                  "--test_datasets", "LFW,Market1501", "--output", "metrics.json"], elsewhere,
                 FASTREID_DATASETS=mini_root)
    assert "Market1501      task3  mAP" in result.stdout
    metrics = json.loads((elsewhere / "metrics.json").read_text())
    assert set(metrics) >= {"task1.lfw.Accuracy", "task3.market1501.mAP"}
    # the same numbers as the checkout's script
    reference = run([sys.executable, os.path.join(ROOT, "evaluation_script.py"), "--config",
                     "configs/allinone/tiny_eval.yaml", "--model_path", WEIGHTS, "--test_datasets", "LFW,Market1501",
                     "--output", str(tmp_path / "reference.json")], ROOT, FASTREID_DATASETS=mini_root,
                    PYTHONPATH=ROOT)
    assert "mAP" in reference.stdout
    assert json.loads((tmp_path / "reference.json").read_text()) == metrics
