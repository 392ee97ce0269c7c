import os

import pytest

from allinone import build_model, load_config

TINY_CONFIG = "configs/allinone/tiny_parity.yaml"


@pytest.fixture(scope="session")
def spec_file(spec_dir):
    """`spec_file("reference", name)`: a file of the parity reference data (tests/fixtures/spec)."""
    def find(*parts):
        path = os.path.join(spec_dir, *parts)
        assert os.path.isfile(path), f"parity reference file missing: {path}"
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
