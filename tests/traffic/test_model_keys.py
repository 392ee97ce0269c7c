"""The traffic model's state dict equals the baseline's 565 keys and shapes; its LR multipliers equal the baseline's;
checkpoints load strictly with a key report."""
import json
import os

import paddle
import pytest
from traffic_tools import tiny_model_config

from allinone.modeling.checkpoint import CheckpointError, load_checkpoint
from oneforall.traffic.model import baseline_model_config, build_traffic_model, lr_multiplier

SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "spec",
                    "checkpoints", "traffic_baseline_keys.json")


@pytest.fixture(scope="module")
def baseline():
    with open(SPEC, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def lazy_model():
    with paddle.LazyGuard():  # shapes without allocating 118 M weights
        return build_traffic_model(baseline_model_config())


def test_keys_and_shapes_equal_the_baseline(baseline, lazy_model):
    ours = {key: list(value.shape) for key, value in lazy_model.state_dict().items()}
    assert len(ours) == baseline["n_keys"] == 565
    assert sorted(set(ours) - set(baseline["keys"])) == []
    assert sorted(set(baseline["keys"]) - set(ours)) == []
    assert {key: shape for key, shape in ours.items() if shape != baseline["keys"][key]} == {}


def test_unique_parameter_count(baseline, lazy_model):
    assert sum(int(p.size) for _, p in lazy_model.named_parameters()) == baseline["param_count_unique"]


def test_lr_multipliers_equal_the_baseline(baseline, lazy_model):
    names = [name for name, _ in lazy_model.named_parameters()]
    wrong = {name: (lr_multiplier(name), baseline["lr_mult"].get(name, 1.0)) for name in names
             if lr_multiplier(name) != baseline["lr_mult"].get(name, 1.0)}
    assert wrong == {}
    assert sum(lr_multiplier(name) == 1.5 for name in names) == 110


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
