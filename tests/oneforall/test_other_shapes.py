"""The supernets beyond the reference shapes: non-square images, overlapping patches, no qkv bias, other depths and
task names. Extraction must stay bit-exact and the task path must not depend on the batch's task mix."""
import numpy as np
import paddle
import pytest

from allinone.registry import BACKBONES
from oneforall.elastic import ElasticVisionTransformer
from oneforall.search_space import SearchSpace
from oneforall.subnet_export import subnet_backbone_config, subnet_state_dict
from oneforall.task_extract import task_state_from_moe
from oneforall.task_moe import TaskMoEVisionTransformer

SHAPES = dict(img_size=[24, 40], patch_size=8, stride_size=6, embed_dim=48, depth=4, num_heads=[3, 4, 2, 4],
              mlp_ratio=[2.0, 3.0, 2.5, 2.0], qkv_bias=False, qk_scale=None, head_dim=8)


def randomise(model, seed):
    rng = np.random.RandomState(seed)
    for param in model.parameters():
        param.set_value(paddle.to_tensor((0.1 * rng.standard_normal(param.shape)).astype("float32")))


@pytest.mark.parametrize("seed", [0, 1])
def test_elastic_extraction_is_exact_for_other_shapes(seed):
    model = ElasticVisionTransformer(**SHAPES).eval()
    randomise(model, seed)
    assert model.grid_size == (3, 6)
    space = SearchSpace(depth=(2, 3, 4), num_heads=(1, 2), mlp_ratio=(0.5, 1.0, 2.0), embed_dim=(48,))
    x = paddle.randn([2, 3, 24, 40])
    for step in range(3):
        model.set_subnet(space.sample(step + 10 * seed))
        plain = BACKBONES.build(subnet_backbone_config(model))
        missing, unexpected = plain.set_state_dict(subnet_state_dict(model))
        assert not missing and not unexpected
        np.testing.assert_array_equal(plain.eval()(x).numpy(), model(x).numpy())


def test_task_moe_for_other_shapes_and_task_names():
    tasks = ["cars", "signs", "lanes", "faces"]
    model = TaskMoEVisionTransformer(tasks=tasks, **SHAPES).eval()
    randomise(model, 3)
    for block in model.blocks:  # near ties on both sides and an exact one
        for task, logits in zip(tasks, ([0.3, 0.3], [0.31, 0.3], [0.3, 0.31], [-1.0, 2.0])):
            block.mlp.gates[task].set_value(paddle.to_tensor([logits]))
    space = SearchSpace(depth=(3, 4), num_heads=(2,), mlp_ratio=(0.5, 1.5, 2.0), embed_dim=(48,))
    model.set_subnet(space.sample(5, num_tasks=len(tasks)))
    images = paddle.randn([7, 3, 24, 40])
    segments = (("lanes", 2), ("cars", 1), ("faces", 3), ("signs", 1))
    fused = model(images, segments).numpy()
    start = 0
    for task, rows in segments:
        x = images[start:start + rows]
        state, config, picks = task_state_from_moe(model, task)
        plain = BACKBONES.build(config)
        plain.set_state_dict(state)
        np.testing.assert_array_equal(plain.eval()(x).numpy(), fused[start:start + rows])
        assert picks[0] == {"cars": "specific", "signs": "common", "lanes": "specific", "faces": "specific"}[task]
        start += rows
