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
