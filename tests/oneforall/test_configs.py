"""The OneForAll configs: the competition chip supernet and the released ViT-H/14 task-MoE model, counted and
checked without allocating their weights."""
import pytest

from allinone.config import load_config
from oneforall.arch_code import parse_arch_code
from oneforall.param_count import count_parameters, lazy_backbone, main
from oneforall.search_space import COMPETITION_SPACE

# The original's analytic count (one gate [1, 2] per block, as one rank holds it) and the difference to ours,
# which holds every task's gates: 24 tasks x 32 blocks x 2 logits instead of 32 x 2.
ORIGINAL_VITH_TASK_MOE = 10_729_034_304
OUR_VITH_TASK_MOE = ORIGINAL_VITH_TASK_MOE - 32 * 2 + 24 * 32 * 2


def test_vithuge_task_moe_is_counted_without_allocating(capsys):
    model = lazy_backbone(load_config("configs/oneforall/vithuge_task_moe.yaml").Model.backbone)
    counts = count_parameters(model)
    assert counts["total"] == OUR_VITH_TASK_MOE
    assert len(model.tasks) == 24 and model.grid_size == (18, 18) and model.head_dim == 80
    assert model.task_lr_scales["face"] == 2.0 and model.task_lr_scales["task6"] == 0.5
    assert not any(param._is_initialized() for param in model.parameters())
    assert main(["--config", "configs/oneforall/vithuge_task_moe.yaml"]) == 0
    assert "10,729,035,776" in capsys.readouterr().out


def test_vitbase_chip_supernet_is_the_competition_space():
    model = lazy_backbone(load_config("configs/oneforall/vitbase_chip_supernet.yaml").Model.backbone)
    assert model.search_space == COMPETITION_SPACE
    assert model.largest_subnet() == COMPETITION_SPACE.largest().with_space(None)
    arch = model.set_subnet("j111231321311311221231121111231000000")
    assert arch == parse_arch_code("j111231321311311221231121111231000000")
    assert [block.attn.num_heads for block in model.blocks[:3]] == [12, 11, 10]
    assert [block.mlp.hidden for block in model.blocks[:3]] == [3072, 2304, 2688]
    assert [block.active for block in model.blocks] == [True] * 10 + [False] * 2
    assert count_parameters(model)["total"] == 85_798_656  # ViT-B/16 at 224 without heads


@pytest.mark.parametrize("name", ["tiny_elastic_eval.yaml", "tiny_task_moe.yaml"])
def test_tiny_configs_build(name):
    model = lazy_backbone(load_config(f"configs/oneforall/{name}").Model.backbone)
    assert model.embed_dim == 64
