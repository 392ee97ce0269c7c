"""Fixtures of the OneForAll tests (helpers in oneforall_tools.py)."""
import numpy as np
import paddle
import pytest
from oneforall_tools import (build_elastic, build_moe, load_reference_config, original_rank_states,
                             reference_path)

from oneforall.moe_checkpoint import convert_original_ranks, load_moe_state


@pytest.fixture(scope="session")
def reference_config():
    return load_reference_config()


@pytest.fixture
def elastic_a(reference_config):
    """The elastic supernet of set A with its weights, in eval mode."""
    model = build_elastic(reference_config)
    model.set_state_dict(paddle.load(reference_path("A_supernet.pdparams")))
    return model.eval()


@pytest.fixture
def moe_b(reference_config):
    """The task-MoE supernet of set B with all three ranks' weights, in eval mode."""
    model = build_moe(reference_config)
    load_moe_state(model, convert_original_ranks(original_rank_states(reference_config), model.tasks))
    return model.eval()


@pytest.fixture(scope="session")
def b_inputs():
    return dict(np.load(reference_path("B_inputs.npz")))
