"""Shared fixtures of the engine tests: the miniature data tree, a tiny training config, running the real tools."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable

# tiny_demo.yaml shrunk further: a 1-block, 32-d ViT, so one run takes seconds on one core.
TINY_TRAIN_YAML = f"""
_base_: {ROOT}/configs/allinone/tiny_demo.yaml
Model:
  backbone: {{embed_dim: 32, depth: 1, num_heads: 2}}
  heads:
    task1: {{feat_dim: 32}}
    task2: {{feat_dim: 32}}
    task3: {{feat_dim: 32}}
    task4: {{feat_dim: 32}}
Train: {{max_iter: 8, checkpoint_period: 4, log_period: 4}}
Optimizer: {{lr: {{warmup_iters: 2}}}}
"""


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    from allinone.data.mini import make_mini_datasets

    return make_mini_datasets(str(tmp_path_factory.mktemp("mini_datasets")))


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "tiny_train.yaml"
    path.write_text(TINY_TRAIN_YAML)
    return str(path)


def tool_env(mini_root, threads=1):
    env = dict(os.environ, FASTREID_DATASETS=mini_root, OMP_NUM_THREADS=str(threads), PYTHON=PYTHON,
               PYTHONPATH=ROOT)
    for var in [name for name in env if name.startswith("PADDLE_")]:
        del env[var]  # a test run inside a launched job must not join it
    return env


def run_train(config, output_dir, mini_root, *args, timeout=300):
    """tools/train.py in its own process; returns the CompletedProcess (stdout and stderr captured)."""
    cmd = [PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", config, "-o", f"Global.output_dir={output_dir}",
           *args]
    return subprocess.run(cmd, cwd=ROOT, env=tool_env(mini_root), capture_output=True, text=True, timeout=timeout)


def model_state(path):
    """{key: numpy array} of the model part of a training checkpoint."""
    return {key: np.asarray(value) for key, value in paddle.load(str(path), return_numpy=True)["model"].items()}
