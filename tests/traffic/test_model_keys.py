"""The model of configs/traffic/vitbase_3tasks.yaml has the baseline's 565 state-dict keys and shapes, and the
config's optimizer parameter groups give the baseline's LR multipliers; checkpoints load strictly with a key report."""
import json
import os

import paddle
import pytest
from traffic_tools import tiny_model_config

from allinone.modeling.checkpoint import CheckpointError, load_checkpoint
from allinone.config import load_config
from allinone.engine.solver import lr_multipliers, parameter_groups
from oneforall.traffic.model import build_traffic_model

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(TESTS, "fixtures", "spec", "checkpoints", "traffic_baseline_keys.json")
RECIPE = os.path.join(os.path.dirname(TESTS), "configs", "traffic", "vitbase_3tasks.yaml")


@pytest.fixture(scope="module")
def baseline():
    with open(SPEC, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def recipe():
    return load_config(RECIPE)


@pytest.fixture(scope="module")
def lazy_model(recipe):
    with paddle.LazyGuard():  # shapes without allocating 118 M weights
        return build_traffic_model(recipe.Model)


def test_keys_and_shapes_equal_the_baseline(baseline, lazy_model):
    ours = {key: list(value.shape) for key, value in lazy_model.state_dict().items()}
    assert len(ours) == baseline["n_keys"] == 565
    assert sorted(set(ours) - set(baseline["keys"])) == []
    assert sorted(set(baseline["keys"]) - set(ours)) == []
    assert {key: shape for key, shape in ours.items() if shape != baseline["keys"][key]} == {}


def test_unique_parameter_count(baseline, lazy_model):
    assert sum(int(p.size) for _, p in lazy_model.named_parameters()) == baseline["param_count_unique"]


def test_lr_multipliers_equal_the_baseline(baseline, recipe, lazy_model):
    """The trainable parameters' multipliers (BatchNorm's running statistics take no gradient and are left out)."""
    groups = parameter_groups(lazy_model, recipe.Optimizer.param_groups)
    bias_factor = lr_multipliers(lazy_model, recipe.Optimizer.bias_lr_factor)
    ours = {name: bias_factor[name] * groups.get(name, (1.0, None))[0] for name in bias_factor}
    expected = {name: baseline["lr_mult"].get(name, 1.0) for name in ours}
    assert {name: (ours[name], expected[name]) for name in ours if ours[name] != expected[name]} == {}
    assert sum(value == 1.5 for value in ours.values()) == 110
    assert sum(value == 10.0 for value in ours.values()) == 38 - 2 * 5  # minus the statistics of 5 BatchNorms


def test_aux_branches_share_weights(lazy_model):
    head = lazy_model.heads["segmentation"].head
    assert all(layer is head.aux_heads[0] for layer in head.aux_heads)
    assert all(layer is head.aux_head_norms[0] for layer in head.aux_head_norms)


def test_strict_load_round_trip_and_report(tiny_model, tmp_path):
    path = str(tmp_path / "model.pdmodel")
    paddle.save({"model": tiny_model.state_dict(), "iteration": 3}, path)
    paddle.seed(1)
    other = build_traffic_model(tiny_model_config())
    report = load_checkpoint(other, path)
    assert report.ok and len(report.loaded) == len(tiny_model.state_dict())
    for key, value in tiny_model.state_dict().items():
        assert paddle.equal_all(value, other.state_dict()[key]), key
    state = tiny_model.state_dict()
    state.pop("heads.fgvc.fc2.bias")
    state["heads.fgvc.fc1.weight"] = paddle.zeros([3, 3])
    paddle.save(state, path)
    with pytest.raises(CheckpointError, match=r"heads\.fgvc\.fc2\.bias(.|\n)*heads\.fgvc\.fc1\.weight"):
        load_checkpoint(other, path)
