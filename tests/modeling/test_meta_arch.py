"""MultiTaskModel and build_model: one backbone pass for all tasks, routing by config, train/eval outputs."""
import numpy as np
import paddle
import pytest

from allinone import ConfigError, build_model


def images(batch, seed):
    return paddle.to_tensor(np.random.RandomState(seed).uniform(-1, 1, (batch, 3, 32, 32)).astype("float32"))


def count_backbone_passes(model):
    passes = []
    model.backbone.register_forward_post_hook(lambda layer, inputs, output: passes.append(inputs[0].shape[0]))
    return passes


def test_all_tasks_go_through_one_backbone_pass_and_are_split_back(tiny_model):
    passes = count_backbone_passes(tiny_model)
    inputs = {"task1": images(2, 0), "task3": images(3, 1), "task4": images(1, 2)}
    with paddle.no_grad():
        outputs = tiny_model(inputs)
    assert passes == [6]
    assert {task: out.shape for task, out in outputs.items()} == {"task1": [2, 64], "task3": [3, 64], "task4": [1, 64]}


def test_per_task_backbone_passes_give_the_same_features(tiny_model):
    inputs = {"task1": images(2, 0), "task3": images(3, 1)}
    with paddle.no_grad():
        fused = tiny_model(inputs)
        tiny_model.fuse_tasks = False
        passes = count_backbone_passes(tiny_model)
        separate = tiny_model(inputs)
    assert passes == [2, 3]
    for task in inputs:
        np.testing.assert_allclose(separate[task].numpy(), fused[task].numpy(), rtol=1e-5, atol=1e-6)


def test_eval_output_is_the_routed_heads_feature_of_the_backbone_output(tiny_cfg):
    tiny_cfg.Model.task_to_head = {"market1501": "task3", "lfw": "task1"}
    model = build_model(tiny_cfg)
    model.heads["task3"].bottleneck[0].bias.set_value(paddle.full([64], 0.5))  # tell the heads apart
    model.eval()
    x = images(2, 3)
    with paddle.no_grad():
        outputs = model({"market1501": {"images": x}, "lfw": x})
        expected = model.heads["task3"](model.backbone(x)).numpy()
    np.testing.assert_allclose(outputs["market1501"].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["lfw"].numpy(), expected - 0.5, rtol=1e-5, atol=1e-6)
    assert list(outputs) == ["market1501", "lfw"]


def test_eval_ignores_targets_and_camids_in_the_batch(tiny_model):
    x = images(2, 4)
    with paddle.no_grad():
        bare = tiny_model({"task1": x})["task1"]
        full = tiny_model({"task1": {"images": x, "targets": paddle.to_tensor([1, 2]),
                                     "camids": paddle.to_tensor([0, 0])}})["task1"]
    np.testing.assert_array_equal(full.numpy(), bare.numpy())


def test_training_gives_each_head_its_targets_and_returns_head_dicts(tiny_cfg):
    tiny_cfg.Model.heads.task1.num_classes = 7
    model = build_model(tiny_cfg)
    model.train()
    outputs = model({"task1": {"images": images(2, 5), "targets": paddle.to_tensor([6, 0])},
                     "task3": {"images": images(3, 6), "targets": paddle.to_tensor([1, 1, 2])}})
    assert outputs["task1"]["logits"].shape == [2, 7]
    assert sorted(outputs["task3"]) == ["features", "neck_features"]
    assert outputs["task3"]["features"].shape == [3, 64]


def test_a_task_without_a_head_is_an_error_naming_the_heads(tiny_model):
    with pytest.raises(KeyError, match=r"task 'person'.*\['task1', 'task2', 'task3', 'task4'\]"):
        tiny_model({"person": images(1, 0)})


def test_task_to_head_naming_a_missing_head_fails_at_build(tiny_cfg):
    tiny_cfg.Model.task_to_head = {"person": "task9"}
    with pytest.raises(ValueError, match="task9"):
        build_model(tiny_cfg)


def test_head_feat_dim_must_equal_the_backbone_embed_dim(tiny_cfg):
    tiny_cfg.Model.heads.task2.feat_dim = 128
    with pytest.raises(ConfigError, match=r"Model.heads.task2.feat_dim is 128 .*embed_dim 64"):
        build_model(tiny_cfg)


def test_head_feat_dim_defaults_to_the_backbone_embed_dim(tiny_cfg):
    del tiny_cfg.Model.heads.task2["feat_dim"]
    assert build_model(tiny_cfg).heads["task2"].bottleneck[0].weight.shape == [64]


def test_unknown_model_keys_are_rejected(tiny_cfg):
    tiny_cfg.Model.pixel_mean = [127.5] * 3
    with pytest.raises(ConfigError, match="pixel_mean"):
        build_model(tiny_cfg)
