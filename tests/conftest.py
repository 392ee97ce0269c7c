import os

import pytest

SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "spec")


@pytest.fixture(scope="session")
def spec_dir():
    """The parity reference data made with the original code (tests/fixtures/spec, see its README)."""
    return SPEC_DIR
