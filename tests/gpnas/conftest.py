"""A small generated benchmark (real files, written by tools/make_gpnas_benchmark.py) shared by the GP-NAS tests."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "make_gpnas_benchmark.py")


def load_tool():
    """The benchmark tool as a module (in-process: a subprocess per call costs seconds of imports)."""
    spec = importlib.util.spec_from_file_location("make_gpnas_benchmark", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_benchmark(out_dir, num_train, num_test, seed=0, family="mixed"):
    """Run the tool's main; returns the paths of the files it wrote, by name."""
    assert load_tool().main([str(out_dir), "--train", str(num_train), "--test", str(num_test), "--seed", str(seed),
                             "--family", family, "--truth"]) == 0
    return {name: os.path.join(out_dir, f"CCF_UFO_{name}.json") for name in ("train", "test", "test_truth")}


@pytest.fixture(scope="session")
def benchmark_tool():
    return load_tool()


@pytest.fixture(scope="session")
def make_benchmark():
    return write_benchmark


@pytest.fixture(scope="session")
def benchmark(tmp_path_factory):
    """Paths 'train' (160 ranked), 'test' (300, ranks 0) and 'test_truth' (the test ranks)."""
    return write_benchmark(tmp_path_factory.mktemp("gpnas_benchmark"), num_train=160, num_test=300)
