"""Helpers of the OneForAll tests: paths of the parity data made with the original code
(tests/fixtures/spec/reference/oneforall, see its README) and models built from its constructor arguments."""
import json
import os

import numpy as np
import paddle

from oneforall.elastic import ElasticVisionTransformer
from oneforall.original import original_backbone_kwargs
from oneforall.task_moe import TaskMoEVisionTransformer

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "spec",
                             "reference", "oneforall")


def reference_path(name):
    return os.path.join(REFERENCE_DIR, name)


def load_reference_config():
    with open(reference_path("reference_config.json"), encoding="utf-8") as f:
        return json.load(f)


def assert_close_relative(actual, expected, tol=1e-5):
    """Max abs difference within `tol` of the reference's largest magnitude."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_less(np.abs(actual - expected).max(), tol * np.abs(expected).max())


def build_elastic(reference_config, **extra):
    kwargs = original_backbone_kwargs(reference_config["A"]["kwargs"])
    return ElasticVisionTransformer(**{**kwargs, **extra})


def original_rank_states(reference_config):
    """{task: full per-rank state dict} of set B (the face rank's file with each task's own keys replaced)."""
    tasks = reference_config["B"]["kwargs_common"]["task_names"]
    base = paddle.load(reference_path(f"B_moe_rank0_{tasks[0]}.pdparams"))
    states = {tasks[0]: base}
    for index, task in enumerate(tasks[1:], start=1):
        states[task] = {**base, **paddle.load(reference_path(f"B_moe_rank{index}_{task}_specific.pdparams"))}
    return states


def build_moe(reference_config, **extra):
    kwargs = original_backbone_kwargs(reference_config["B"]["kwargs_common"])
    return TaskMoEVisionTransformer(**{**kwargs, **extra})
