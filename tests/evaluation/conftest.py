import json
import os

import numpy as np
import pytest

SPEC_REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "spec", "reference")


@pytest.fixture(scope="session")
def eval_reference():
    """The original evaluators' inputs (npz) and results (json), spec sec. 3.3."""
    npz = os.path.join(SPEC_REFERENCE, "eval_reference.npz")
    if not os.path.isfile(npz):
        pytest.skip(f"spec reference data not found at {npz}")
    with open(os.path.join(SPEC_REFERENCE, "eval_reference.json"), encoding="utf-8") as f:
        return dict(np.load(npz)), json.load(f)
