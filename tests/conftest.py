import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_DIR = os.path.join(ROOT, "tests", "fixtures", "spec")
sys.path.insert(0, os.path.join(ROOT, "tools"))  # tools/mini_datasets.py, the miniature-data generator
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
    import subprocess

    def run(script, *args, pythonpath=()):
        env = {key: value for key, value in os.environ.items() if not key.startswith("PADDLE_")}
        env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, *map(str, pythonpath)]))
        log_dir = tmp_path / "launch_log"
        result = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                                 "--log_dir", str(log_dir), str(script), *map(str, args)],
                                cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
        logs = "".join(p.read_text() for p in log_dir.glob("*") if p.is_file()) if log_dir.is_dir() else ""
        assert result.returncode == 0, (result.stdout + result.stderr + logs)[-4000:]
        return result

    return run
