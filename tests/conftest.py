import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_DIR = os.path.join(ROOT, "tests", "fixtures", "spec")
sys.path.insert(0, os.path.join(ROOT, "tools"))  # tools/mini_datasets.py, the miniature-data generator
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))  # engine_tools.py, the helpers shared by the tests
# One MKL kernel choice for the test process and every process it launches: the entry points force MKL's AVX2
# kernels on AMD CPUs (allinone.utils.env.configure_mkl_kernels) only in processes that set threads before importing
# paddle, so a launched run and an in-process reference could otherwise differ in the last bits. An empty value
# counts as the user's choice and leaves MKL's own.
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "")


@pytest.fixture(scope="session")
def spec_dir():
    """The parity reference data made with the original code (tests/fixtures/spec, see its README)."""
    return SPEC_DIR


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    """The miniature tree of every layout (tools/mini_datasets.py, seed 0), generated once per test session;
    read-only for tests (copy what a test breaks)."""
    from mini_datasets import make_mini_datasets

    return make_mini_datasets(str(tmp_path_factory.mktemp("mini_datasets")))


@pytest.fixture
def train_loader():
    """build_train_loader(...) whose loaders are closed after the test (their worker processes stopped)."""
    from allinone.data import build_train_loader

    opened = []

    def build(*args, **kwargs):
        opened.append(build_train_loader(*args, **kwargs))
        return opened[-1]

    yield build
    for loader in opened:
        loader.close()


@pytest.fixture
def launch(tmp_path):
    """`launch(script, *args, pythonpath=())`: run `script` under Paddle's launcher as 2 CPU processes (gloo), one
    thread each, outside any launched job the tests themselves run in; fails the test with the workers' logs when
    the launch fails. Returns the CompletedProcess."""
    from engine_tools import launch_script  # (imports paddle: only when a test asks for this fixture)

    def run(script, *args, pythonpath=()):
        env = {key: value for key, value in os.environ.items() if not key.startswith("PADDLE_")}
        env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, *map(str, pythonpath)]))
        return launch_script(script, args, env, tmp_path, tmp_path / "launch_log")

    return run
