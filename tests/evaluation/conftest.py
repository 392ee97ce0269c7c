import json
import os

import numpy as np
import pytest

SPEC_REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "spec", "reference")


@pytest.fixture(scope="session")
def spec_reference():
    """Path to the spec's reference data folder (skips when the spec is not next to the checkout)."""
    if not os.path.isdir(SPEC_REFERENCE):
        pytest.skip(f"spec reference data not found at {SPEC_REFERENCE}")
    return os.path.abspath(SPEC_REFERENCE)


@pytest.fixture(scope="session")
def eval_reference(spec_reference):
    """The original evaluators' inputs (npz) and results (json), spec sec. 3.3."""
    with open(os.path.join(spec_reference, "eval_reference.json"), encoding="utf-8") as f:
        return dict(np.load(os.path.join(spec_reference, "eval_reference.npz"))), json.load(f)
