"""MultiTaskModel and build_model: one backbone pass per image size, task segments, routing by config, embed,
train/eval outputs."""
import logging

import numpy as np
import paddle
import pytest

from allinone import ConfigError, build_model
from allinone.modeling import MultiTaskModel
from allinone.modeling.heads import EmbeddingHead
from allinone.modeling.vision_transformer import Mlp, VisionTransformer, resample_pos_embed


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


def test_a_feat_dim_other_than_the_backbone_width_is_an_error(tiny_cfg):
    tiny_cfg.Model.heads.task2.feat_dim = 128
    with pytest.raises(ConfigError, match=r"Model.heads.task2.feat_dim is 128 .*embed_dim 64"):
        build_model(tiny_cfg)


def test_a_retired_feat_dim_equal_to_the_backbone_width_is_ignored_with_a_warning(tiny_cfg, caplog):
    tiny_cfg.Model.heads.task2.feat_dim = 64
    with caplog.at_level(logging.WARNING, logger="allinone.modeling"):
        model = build_model(tiny_cfg)
    assert "Model.heads.task2.feat_dim is not needed" in caplog.text
    assert model.heads["task2"].bottleneck[0].weight.shape == [64]


def test_heads_take_the_backbone_width(tiny_cfg):
    assert "feat_dim" not in tiny_cfg.Model.heads.task2
    tiny_cfg.Model.backbone.embed_dim = 48
    tiny_cfg.Model.heads.task2.num_classes = 3
    model = build_model(tiny_cfg)
    assert model.heads["task2"].bottleneck[0].weight.shape == [48]
    assert model.heads["task2"].classifier.weight.shape == [48, 3]


def test_the_builder_argument_in_dim_cannot_come_from_the_config(tiny_cfg):
    tiny_cfg.Model.heads.task1.in_dim = 64
    with pytest.raises(ConfigError, match="Model.heads.task1.in_dim is set by the model builder"):
        build_model(tiny_cfg)


def test_unknown_model_keys_are_rejected(tiny_cfg):
    tiny_cfg.Model.pixel_mean = [127.5] * 3
    with pytest.raises(ConfigError, match="pixel_mean"):
        build_model(tiny_cfg)


def test_embed_is_the_eval_output_of_one_task_and_refuses_training_mode(tiny_cfg):
    tiny_cfg.Model.task_to_head = {"market1501": "task3", "lfw": "task1"}
    model = build_model(tiny_cfg)
    model.heads["task3"].bottleneck[0].bias.set_value(paddle.full([64], 0.5))
    model.eval()
    x = images(3, 7)
    with paddle.no_grad():
        embedded = model.embed("market1501", x).numpy()
        fused = model({"lfw": images(2, 8), "market1501": x})["market1501"].numpy()
        direct = model.heads["task3"](model.backbone(x)).numpy()
    np.testing.assert_allclose(embedded, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embedded, fused, rtol=1e-5, atol=1e-6)
    model.train()
    with pytest.raises(RuntimeError, match="model.eval"):
        model.embed("market1501", x)


def test_the_backbone_gets_each_tasks_rows_as_segments(tiny_model):
    seen = []
    tiny_model.backbone.register_forward_pre_hook(lambda layer, inputs: seen.append(inputs[1]))
    with paddle.no_grad():
        tiny_model({"task1": images(2, 0), "task3": {"images": images(3, 1)}})
        tiny_model.embed("task4", images(1, 2))
    assert seen == [(("task1", 2), ("task3", 3)), (("task4", 1),)]


def test_segments_that_do_not_cover_the_batch_are_an_error(tiny_model):
    with pytest.raises(ValueError, match=r"cover 3 rows but the batch has 2"):
        tiny_model.backbone(images(2, 0), (("task1", 1), ("task3", 2)))


class SegmentRecordingMlp(Mlp):
    """The plain MLP, recording the segments it is called with (what a task-MoE MLP routes by)."""

    calls = []

    def forward(self, x, segments=None):
        SegmentRecordingMlp.calls.append((x.shape[0], segments))
        return super().forward(x, segments)


class AnySizeViT(VisionTransformer):
    """A ViT taking any image size: its embed_tokens resamples pos_embed to the input's patch grid."""

    def embed_tokens(self, x, segments=None):
        patches = self.patch_embed.proj(x)  # B, D, gh, gw
        grid = tuple(patches.shape[2:])
        pos_embed = resample_pos_embed(self.pos_embed, self.grid_size, grid)
        tokens = paddle.concat([self.cls_token.expand([x.shape[0], -1, -1]),
                                patches.flatten(2).transpose([0, 2, 1])], axis=1)
        return self.pos_drop(tokens + pos_embed)


def any_size_model(fuse_tasks=True):
    paddle.seed(4)
    backbone = AnySizeViT(img_size=32, patch_size=16, stride_size=16, embed_dim=32, depth=2, num_heads=2,
                          mlp_ratio=2.0, qkv_bias=True, qk_scale=None, mlp_layer=SegmentRecordingMlp)
    heads = {name: EmbeddingHead(32) for name in ("faces", "persons", "cars")}
    model = MultiTaskModel(backbone, heads, fuse_tasks=fuse_tasks)
    model.eval()
    return model


def test_tasks_are_fused_only_within_one_image_size():
    model = any_size_model()
    inputs = {"faces": images(2, 0), "persons": paddle.randn([3, 3, 48, 32]), "cars": images(1, 1)}
    passes = count_backbone_passes(model)
    SegmentRecordingMlp.calls.clear()
    with paddle.no_grad():
        fused = model(inputs)
        single = {task: model.embed(task, batch) for task, batch in inputs.items()}
    assert passes[:2] == [3, 3]  # faces + cars (32x32) in one pass, persons (48x32) in another
    assert SegmentRecordingMlp.calls[:4] == [(3, (("faces", 2), ("cars", 1)))] * 2 + [(3, (("persons", 3),))] * 2
    assert list(fused) == ["faces", "persons", "cars"]
    for task in inputs:
        np.testing.assert_allclose(fused[task].numpy(), single[task].numpy(), rtol=1e-5, atol=1e-6)


class BatchRecordingHead(EmbeddingHead):
    """The retrieval head, also recording the task batch it receives."""

    def forward(self, tokens, task_batch=None):
        self.received = task_batch
        return super().forward(tokens, task_batch)


def test_training_gives_each_head_its_whole_task_batch():
    paddle.seed(5)
    backbone = VisionTransformer(img_size=32, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, qkv_bias=True,
                                 qk_scale=None)
    model = MultiTaskModel(backbone, {"persons": BatchRecordingHead(32, num_classes=4)})
    model.train()
    batch = {"images": images(2, 0), "targets": paddle.to_tensor([3, 1]), "camids": paddle.to_tensor([0, 5])}
    outputs = model({"persons": batch})
    assert model.heads["persons"].received is batch
    assert outputs["persons"]["logits"].shape == [2, 4]
