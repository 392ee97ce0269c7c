import os

import pytest

from allinone import build_model, load_config

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "spec")
TINY_CONFIG = "configs/allinone/tiny_parity.yaml"


@pytest.fixture(scope="session")
def spec_file():
    """`spec_file("reference", name)`: a file of the read-only spec folder beside the repo (skips if absent)."""
    def find(*parts):
        path = os.path.join(SPEC, *parts)
        if not os.path.isfile(path):
            pytest.skip(f"spec file not found: {path}")
        return path

    return find


@pytest.fixture
def tiny_cfg():
    return load_config(TINY_CONFIG)


@pytest.fixture
def tiny_model(tiny_cfg):
    """The parity architecture (ViT 32x32, dim 64, depth 2, four heads) with random weights, in eval mode."""
    model = build_model(tiny_cfg)
    model.eval()
    return model
