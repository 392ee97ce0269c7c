import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def spec_reference(spec_dir):
    """The parity reference data folder (tests/fixtures/spec/reference)."""
    return os.path.join(spec_dir, "reference")


@pytest.fixture(scope="session")
def eval_reference(spec_reference):
    """The original evaluators' inputs (npz) and their results (json), made by running the original code."""
    with open(os.path.join(spec_reference, "eval_reference.json"), encoding="utf-8") as f:
        return dict(np.load(os.path.join(spec_reference, "eval_reference.npz"))), json.load(f)
