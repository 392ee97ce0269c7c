"""Task-MoE checkpoint layouts: the original's per-rank folders converted into ours, initialisation from a plain ViT
(FFN to every expert, pos_embed resampled), strict loads that name what does not fit."""
import numpy as np
import paddle
import pytest
from oneforall_tools import build_moe, load_reference_config, original_rank_states

from allinone.modeling.checkpoint import CheckpointError
from allinone.modeling.vision_transformer import VisionTransformer, resample_pos_embed
from oneforall import convert_moe
from oneforall.moe_checkpoint import load_moe_state, load_task_moe_checkpoint, to_moe_state
from oneforall.task_moe import TaskMoEVisionTransformer


@pytest.fixture(scope="module")
def rank_dir(tmp_path_factory):
    """The original's output folder: task<k>/model_final.pdmodel, each a training checkpoint {'model': ...}."""
    root = tmp_path_factory.mktemp("moe_run")
    for index, state in enumerate(original_rank_states(load_reference_config()).values()):
        (root / f"task{index}").mkdir()
        paddle.save({"model": {f"backbone.{k}": v for k, v in state.items()}, "iteration": 9},
                    str(root / f"task{index}" / "model_final.pdmodel"))
    return root


def test_per_rank_folders_convert_into_ours(rank_dir, reference_config, moe_b, b_inputs, tmp_path):
    model = build_moe(reference_config).eval()
    report = load_task_moe_checkpoint(model, "model_final.pdmodel", tasks_dir=str(rank_dir))
    assert report.ok and len(report.loaded) == len(model.state_dict())
    x = paddle.to_tensor(b_inputs["veri"])
    np.testing.assert_array_equal(model(x, (("veri", 2),)).numpy(), moe_b(x, (("veri", 2),)).numpy())
    output = tmp_path / "ours.pdparams"
    assert convert_moe.main(["--tasks_dir", str(rank_dir), "--tasks", "face,person,veri", "--output",
                             str(output)]) == 0
    again = build_moe(reference_config).eval()
    assert load_task_moe_checkpoint(again, str(output)).ok
    np.testing.assert_array_equal(again(x, (("veri", 2),)).numpy(), moe_b(x, (("veri", 2),)).numpy())


def test_a_missing_rank_folder_is_named(rank_dir, reference_config, tmp_path):
    for index in (0, 1):  # the veri rank's folder (task2) is missing
        (tmp_path / f"task{index}").mkdir()
        source = rank_dir / f"task{index}" / "model_final.pdmodel"
        (tmp_path / f"task{index}" / "model_final.pdmodel").symlink_to(source)
    with pytest.raises(FileNotFoundError, match=r"task 'veri' \(index 2\) not found: .*task2"):
        load_task_moe_checkpoint(build_moe(reference_config), "model_final.pdmodel", tasks_dir=str(tmp_path))


def test_init_from_a_plain_vit_copies_the_ffn_and_resamples_pos_embed(tmp_path):
    paddle.seed(0)
    arch = dict(embed_dim=64, depth=2, num_heads=4, mlp_ratio=4.0, qkv_bias=True, qk_scale=None)
    plain = VisionTransformer(img_size=[32, 32], patch_size=16, stride_size=16, **arch)
    path = tmp_path / "plain.pdparams"
    state = dict(plain.state_dict(), **{"head.weight": paddle.zeros([64, 10])})  # a classifier: dropped
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].reshape([64, 3 * 16 * 16])  # linear form
    paddle.save(state, str(path))
    model = TaskMoEVisionTransformer(tasks=["cars", "signs"], img_size=[48, 64], patch_size=16, stride_size=16,
                                     **arch).eval()
    report = load_task_moe_checkpoint(model, str(path))
    assert report.ok
    expected_pos = resample_pos_embed(plain.pos_embed, (2, 2), (3, 4)).numpy()
    for task in model.tasks:
        np.testing.assert_array_equal(model.pos_embeds[task].numpy(), expected_pos)
        np.testing.assert_array_equal(model.blocks[1].mlp.specific_experts[task].fc2.weight.numpy(),
                                      plain.blocks[1].mlp.fc2.weight.numpy())
        np.testing.assert_array_equal(model.blocks[1].mlp.gates[task].numpy(), [[0.0, 0.0]])
    np.testing.assert_array_equal(model.blocks[0].mlp.common_expert.fc1.weight.numpy(),
                                  plain.blocks[0].mlp.fc1.weight.numpy())
    # same weights in both experts: the MoE equals the plain ViT built for the new grid
    resized = VisionTransformer(img_size=[48, 64], patch_size=16, stride_size=16, **arch).eval()
    state = dict(plain.state_dict(), pos_embed=paddle.to_tensor(expected_pos))
    resized.set_state_dict(state)
    x = paddle.randn([2, 3, 48, 64])
    np.testing.assert_array_equal(model(x, (("signs", 2),)).numpy(), resized(x).numpy())


def test_unknown_layout_and_strict_mismatch_name_the_keys(reference_config):
    model = build_moe(reference_config)
    before = model.blocks[0].mlp.gates["face"].numpy().copy()
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout: expected ours \(cls_tokens.<task>"):
        to_moe_state({"encoder.layer.0.weight": paddle.zeros([2])}, model)
    one_rank = original_rank_states(reference_config)["face"]
    with pytest.raises(CheckpointError, match="one rank of an original per-rank"):
        to_moe_state(one_rank, model)
    ours = {k: v for k, v in model.state_dict().items() if k != "blocks.1.mlp.gates.veri"}
    ours["blocks.0.mlp.gates.face"] = paddle.ones([1, 2])
    with pytest.raises(CheckpointError, match=r"missing from the file: \['blocks.1.mlp.gates.veri'\]"):
        load_moe_state(model, ours)
    np.testing.assert_array_equal(model.blocks[0].mlp.gates["face"].numpy(), before)  # nothing loaded
