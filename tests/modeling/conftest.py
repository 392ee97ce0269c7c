import os

import pytest

from allinone import build_model, load_config

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "spec")
REFERENCE = os.path.join(SPEC, "reference")
CHECKPOINT_KEYS = os.path.join(SPEC, "checkpoints")
TINY_CONFIG = "configs/allinone/tiny_parity.yaml"


def spec_file(*parts):
    """A file of the read-only spec folder (skips the test when the spec is not checked out beside the repo)."""
    path = os.path.join(SPEC, *parts)
    if not os.path.isfile(path):
        pytest.skip(f"spec file not found: {path}")
    return path


@pytest.fixture
def tiny_cfg():
    return load_config(TINY_CONFIG)


@pytest.fixture
def tiny_model(tiny_cfg):
    """The parity architecture (ViT 32x32, dim 64, depth 2, four heads) with random weights, in eval mode."""
    model = build_model(tiny_cfg)
    model.eval()
    return model
