"""Fixtures of the NAS tests: a tiny chip supernet config (the competition's search space on a 16-wide ViT)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))  # engine_tools: run the real tools in their own process

# tiny_chip_supernet.yaml shrunk further (4-dim heads would make 48 wide; here 12 heads of 1 and an FFN of 64),
# short schedule, so a run takes seconds on one core
NAS_TRAIN_YAML = f"""
_base_: {ROOT}/configs/oneforall/tiny_chip_supernet.yaml
Model:
  backbone: {{embed_dim: 16, head_dim: 1, choices: {{embed_dim: [16]}}}}
Train: {{max_iter: 4, checkpoint_period: 2, log_period: 2}}
Optimizer: {{lr: {{warmup_fraction: 0.25}}}}
"""


@pytest.fixture(scope="session")
def nas_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("nas_configs") / "tiny_chip.yaml"
    path.write_text(NAS_TRAIN_YAML)
    return str(path)


@pytest.fixture(scope="session")
def supernet(nas_config, mini_root, tmp_path_factory):
    """A tiny chip supernet trained 4 iterations with tools/train.py: (config, final weights, the weights after
    iteration 1 of the same run)."""
    from engine_tools import run_train

    output = tmp_path_factory.mktemp("chip_supernet")
    result = run_train(nas_config, output, mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return nas_config, str(output / "model_final.pdparams"), str(output / "model_0000001.pdparams")
