"""The core (`allinone`) finds the components of packages that extend it (plugins, allinone/plugins.py) without naming
them: no core module imports `oneforall`, a core run does not load it, and a toy plugin's step and runner are found
through a config's `Global.plugins` and through an installed package's entry point (a real `*.dist-info` folder on
the path), with errors that name the key, what is registered and how to declare a plugin."""
import ast
import glob
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "spec", "reference", "tiny_upstream.pdparams")
TINY_DEMO = os.path.join(ROOT, "configs", "allinone", "tiny_demo.yaml")

# a plugin as another package would write it: a step that leaves a mark, and a training program of its own
TOY_PLUGIN = '''
import os

from allinone.engine.steps import SimpleStep
from allinone.registry import STEPS, TRAIN_RUNNERS


@STEPS.register()
class ToyStep(SimpleStep):
    def run_step(self, trainer):
        open(os.path.join(os.environ["TOY_MARKS"], f"step{trainer.iter}"), "w").close()
        super().run_step(trainer)


def toy_program(args, cfg):
    open(os.path.join(os.environ["TOY_MARKS"], "runner"), "w").write(cfg.Global.output_dir)


TRAIN_RUNNERS.register(toy_program, name="toy")
'''


def imported_modules(path):
    """Every module an `import` / `from ... import` in the file names (function-level imports included)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_core_module_imports_the_extension_package():
    offenders = [f"{os.path.relpath(path, ROOT)}: {module}"
                 for path in sorted(glob.glob(os.path.join(ROOT, "allinone", "**", "*.py"), recursive=True))
                 for module in imported_modules(path) if module.split(".")[0] == "oneforall"]
    assert not offenders, offenders


def run_python(code, tmp_path, pythonpath=(), **env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PADDLE_")}
    environment.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, *map(str, pythonpath)]), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(tmp_path), env=environment,
                          capture_output=True, text=True, timeout=300)


def test_the_core_commands_import_and_run_a_core_config_without_loading_oneforall(tmp_path, mini_root):
    code = f"""
        import sys
        import allinone
        from allinone.commands import evaluate, export, train
        assert not [m for m in sys.modules if m.split(".")[0] == "oneforall"], "imported"
        assert evaluate.main(["--config", {os.path.join(ROOT, "configs", "allinone", "tiny_eval.yaml")!r},
                              "--model_path", {WEIGHTS!r}, "--test_datasets", "LFW", "--device", "cpu",
                              "--engine", "dygraph"]) == 0
        assert train.main(["-c", {TINY_DEMO!r}, "-o", "Train.max_iter=1", "-o", "Train.eval_period=0",
                           "-o", "Train.checkpoint_period=0", "-o", "Global.output_dir={tmp_path / 'run'}"]) == 0
        print("oneforall modules:", sorted(m for m in sys.modules if m.split(".")[0] == "oneforall"))
    """
    result = run_python(code, tmp_path, FASTREID_DATASETS=mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneforall modules: []" in result.stdout, result.stdout[-2000:]
    assert (tmp_path / "run" / "model_final.pdparams").exists()


def toy_package(folder, entry_point=False):
    """toy_plugin.py in `folder`; with `entry_point`, also the metadata of an installed distribution `toy-plugin`
    declaring it in the group allinone.plugins (what pip writes for `entry_points={"allinone.plugins": [...]}`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_plugin.py").write_text(TOY_PLUGIN)
    if entry_point:
        info = folder / "toy_plugin-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[allinone.plugins]\ntoy = toy_plugin\n")
    return folder


def toy_config(path, global_keys="", step="ToyStep"):
    path.write_text(f"_base_: {TINY_DEMO}\nGlobal:\n  output_dir: {path.parent / 'run'}\n{global_keys}"
                    f"Train:\n  max_iter: 1\n  eval_period: 0\n  checkpoint_period: 0\n  step: {{name: {step}}}\n")
    return str(path)


def train_tool(config, tmp_path, pythonpath, mini_root):
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PADDLE_")}
    environment.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, str(pythonpath)]),
                       FASTREID_DATASETS=mini_root, TOY_MARKS=str(marks))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", config], cwd=str(tmp_path),
                            env=environment, capture_output=True, text=True, timeout=300)
    return result, sorted(os.listdir(marks))


def test_a_step_of_a_plugin_listed_in_global_plugins_trains(tmp_path, mini_root):
    plugin = toy_package(tmp_path / "site")
    config = toy_config(tmp_path / "toy.yaml", "  plugins: [toy_plugin]\n")
    result, marks = train_tool(config, tmp_path, plugin, mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marks == ["step0"]
    assert (tmp_path / "run" / "model_final.pdparams").exists()


def test_a_runner_of_a_plugin_takes_the_config_that_names_it(tmp_path, mini_root):
    plugin = toy_package(tmp_path / "site")
    config = toy_config(tmp_path / "toy.yaml", "  plugins: [toy_plugin]\n  runner: toy\n")
    result, marks = train_tool(config, tmp_path, plugin, mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marks == ["runner"] and (tmp_path / "marks" / "runner").read_text() == str(tmp_path / "run")


def test_an_installed_plugin_is_found_through_its_entry_point_without_global_plugins(tmp_path, mini_root):
    site = toy_package(tmp_path / "site", entry_point=True)
    result, marks = train_tool(toy_config(tmp_path / "toy.yaml"), tmp_path, site, mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marks == ["step0"]
    code = """
        from allinone import plugins
        from allinone.registry import STEPS
        try:
            STEPS.get("NoSuchStep")
        except KeyError as err:
            print(err.args[0])
    """
    listed = run_python(code, tmp_path, [site])
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "STEPS registry has no 'NoSuchStep'" in listed.stdout and "'ToyStep'" in listed.stdout
    assert "toy_plugin (entry point 'toy' of toy-plugin)" in listed.stdout, listed.stdout


def test_an_unknown_step_names_the_key_the_registered_steps_and_how_to_declare_a_plugin(tmp_path, mini_root):
    """toy_plugin is importable but declared nowhere: its step is unknown, and the error says how to declare it."""
    plugin = toy_package(tmp_path / "site")
    result, _ = train_tool(toy_config(tmp_path / "toy.yaml"), tmp_path, plugin, mini_root)
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: Train.step.name in ") and "STEPS registry has no 'ToyStep'" in error, error
    assert "'SandwichStep', 'SimpleStep'" in error and "Global.plugins" in error, error
    installed = run_python("from allinone.plugins import installed_plugins; print(installed_plugins())", tmp_path)
    if installed.stdout.strip() == "[]":  # a checkout that is not installed: the error says so
        assert "no installed package declares the entry-point group 'allinone.plugins'" in error, error
    else:  # the installed plugins were loaded and their steps listed
        assert "plugins loaded: " in error, error


def test_a_plugin_module_that_cannot_be_imported_is_a_config_error_naming_its_entry(tmp_path, mini_root):
    config = toy_config(tmp_path / "toy.yaml", "  plugins: [toy_plugin, no_such_plugin_module]\n")
    result, _ = train_tool(config, tmp_path, toy_package(tmp_path / "site"), mini_root)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: Global.plugins[1] in " in result.stderr and "'no_such_plugin_module'" in result.stderr, \
        result.stderr[-2000:]


def test_an_unknown_runner_names_global_runner_and_the_registered_programs(tmp_path, mini_root):
    config = toy_config(tmp_path / "toy.yaml", "  plugins: [toy_plugin]\n  runner: tarffic\n")
    result, marks = train_tool(config, tmp_path, toy_package(tmp_path / "site"), mini_root)
    assert result.returncode == 2 and not marks, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: Global.runner in ") and "TRAIN_RUNNERS registry has no 'tarffic'" in error, error
    assert "'allinone'" in error and "'toy'" in error, error
