"""A small generated benchmark (real files, written by tools/make_gpnas_benchmark.py) shared by the GP-NAS tests."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "make_gpnas_benchmark.py")


def write_benchmark(out_dir, num_train, num_test, seed=0):
    """Run the tool; returns the paths of the files it wrote, by name."""
    subprocess.run([sys.executable, TOOL, "--out-dir", str(out_dir), "--train", str(num_train), "--test",
                    str(num_test), "--seed", str(seed), "--truth"], check=True, capture_output=True, cwd=REPO)
    return {name: os.path.join(out_dir, f"CCF_UFO_{name}.json") for name in ("train", "test", "test_truth")}


@pytest.fixture
def make_benchmark():
    return write_benchmark


@pytest.fixture(scope="session")
def benchmark(tmp_path_factory):
    """Paths 'train' (160 ranked), 'test' (300, ranks 0) and 'test_truth' (the test ranks)."""
    return write_benchmark(tmp_path_factory.mktemp("gpnas_benchmark"), num_train=160, num_test=300)
