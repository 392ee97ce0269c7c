"""Fixtures of the engine tests: a tiny training config (the miniature data tree is tests/conftest.py's mini_root)."""
import pytest

from engine_tools import ROOT

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
Optimizer: {{lr: {{warmup_fraction: 0.25}}}}
"""


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "tiny_train.yaml"
    path.write_text(TINY_TRAIN_YAML)
    return str(path)
