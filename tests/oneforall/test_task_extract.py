"""Task extraction: the release layout through the original extractor's rules (set C: key sources and the plain
ViT's outputs), and our layout, whose extracted plain ViT equals the task-MoE eval output bit for bit."""
import numpy as np
import paddle
import pytest
import yaml
from oneforall_tools import assert_close_relative, original_rank_states, reference_path

from allinone import build_model, load_checkpoint
from allinone.config import load_config
from allinone.utils.cli import USER_ERROR
from allinone.modeling.vision_transformer import VisionTransformer
from allinone.registry import BACKBONES
from oneforall import extract
from oneforall.original import original_backbone_kwargs
from oneforall.task_extract import TaskExtractionError, task_state_from_moe, task_state_from_release

TINY_MOE_CONFIG = "configs/oneforall/tiny_task_moe.yaml"


def release_checkpoint(reference_config):
    """The release-layout dict of set C, built from the B weights by the recipe recorded in the JSON."""
    recipe = reference_config["C"]
    ranks = list(original_rank_states(reference_config).values())
    rng = np.random.RandomState(0)
    state = {}
    for key, entry in recipe["release_dict"].items():
        source = entry["source"]
        if key in recipe["policies"]:
            value = np.asarray(recipe["policies"][key], dtype="float32")
        elif source.startswith("DECOY("):
            value = ranks[0][source[len("DECOY("):-1]].numpy() + recipe["decoy_value"]
        elif source.startswith("rank") and ":" in source:
            rank, name = source.split(":", 1)
            value = ranks[int(rank[len("rank"):])][name].numpy()
        elif source.startswith("random head"):
            value = (0.08 * rng.standard_normal(entry["shape"])).astype("float32")
        else:
            value = ranks[0][source].numpy()
        assert list(value.shape) == entry["shape"], key
        state[key] = paddle.to_tensor(value)
    return state


def extractor_task_names(reference_config):
    """The extractor's task order (policy rows): each task at its recorded index, unused rows named '-<i>'."""
    index = reference_config["C"]["extractor_task_index"]
    names = [f"-{i}" for i in range(max(index.values()) + 1)]
    for task, row in index.items():
        names[row] = task
    return names


def test_release_layout_extraction_matches_the_original(reference_config, b_inputs):
    release = release_checkpoint(reference_config)
    names = extractor_task_names(reference_config)
    plain_kwargs = original_backbone_kwargs(reference_config["C"]["plain_vit_kwargs"], supernet=False)
    expected = np.load(reference_path("C_plainvit_outputs.npz"))
    for task, recorded in reference_config["C"]["per_task"].items():
        out, _ = task_state_from_release(release, task, names)
        sources = recorded["output_key_sources_in_release_dict"]
        assert sorted(out) == sorted(sources)
        for key, source in sources.items():
            np.testing.assert_array_equal(out[key].numpy(), release[source].numpy(), err_msg=key)
        model = VisionTransformer(**plain_kwargs)
        backbone = {key[len("backbone."):]: value for key, value in out.items() if key.startswith("backbone.")}
        missing, unexpected = model.set_state_dict(backbone)
        assert not missing and not unexpected
        tokens = model.eval()(paddle.to_tensor(b_inputs[task]))
        assert_close_relative(tokens[:, 0].numpy(), expected[task][:, :, 0, 0])


def test_release_layout_without_qkv_bias_and_with_unknown_task(reference_config):
    release = {k: v for k, v in release_checkpoint(reference_config).items() if ".qkv.bias" not in k}
    names = extractor_task_names(reference_config)
    out, _ = task_state_from_release(release, "veri", names)
    assert not any(key.endswith("qkv.bias") for key in out) and "backbone.blocks.1.attn.qkv.weight" in out
    with pytest.raises(TaskExtractionError, match="unknown task 'car'"):
        task_state_from_release(release, "car", names)
    with pytest.raises(TaskExtractionError, match="not a release-layout"):
        task_state_from_release({"blocks.0.mlp.fc1.weight": paddle.zeros([2, 2])}, "face", names)


def test_our_layout_extraction_equals_the_moe_eval_output_bitwise(moe_b, b_inputs, reference_config):
    for entry in reference_config["B"]["configs"]:
        moe_b.set_subnet(entry["config"])
        for task in moe_b.tasks:
            x = paddle.to_tensor(b_inputs[task])
            state, config, picks = task_state_from_moe(moe_b, task)
            model = BACKBONES.build(config)
            missing, unexpected = model.set_state_dict(state)
            assert not missing and not unexpected
            np.testing.assert_array_equal(model.eval()(x).numpy(), moe_b(x, ((task, x.shape[0]),)).numpy())
            assert picks == [moe_b.gate_picks()[b][task] for b in range(moe_b.subnet.depth)]


def test_cli_release_layout_accepts_the_readme_spelling(reference_config, tmp_path, capsys):
    path = tmp_path / "release.pdparams"
    paddle.save(release_checkpoint(reference_config), str(path))
    names = ",".join(extractor_task_names(reference_config))
    assert extract.main(["--paddel_model_path", str(path), "--task_name", "person", "--task_names", names]) == 0
    out = paddle.load(str(path) + ".toperson")
    assert len(out) == 31 and "heads.person.weight" in out
    assert extract.main(["--paddle_model_path", str(path), "--task_name", "car", "--task_names", names]) == USER_ERROR
    assert "unknown task 'car'" in capsys.readouterr().err


def test_cli_our_layout_writes_a_model_that_loads_strictly(tmp_path):
    paddle.seed(1)
    cfg = load_config(TINY_MOE_CONFIG)
    moe = build_model(cfg).eval()
    for index, block in enumerate(moe.backbone.blocks):
        block.mlp.gates["task3"].set_value(paddle.to_tensor([[0.3, -0.2]] if index == 0 else [[0.0, 0.4]]))
    checkpoint = tmp_path / "moe.pdparams"
    paddle.save(moe.state_dict(), str(checkpoint))
    output = tmp_path / "task3" / "model.pdparams"
    assert extract.main(["--config", TINY_MOE_CONFIG, "--paddle_model_path", str(checkpoint), "--task_name", "task3",
                         "--output", str(output)]) == 0
    config_path = tmp_path / "task3" / "model.yaml"
    plain = build_model(load_config(str(config_path)))
    assert load_checkpoint(plain, str(output), strict=True).ok
    assert list(plain.heads) == ["task3"]
    with open(config_path, encoding="utf-8") as f:
        assert {entry["head"] for entry in yaml.safe_load(f)["Eval"]["datasets"]} == {"task3"}
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_array_equal(plain.eval().backbone(x).numpy(),
                                  moe.backbone(x, (("task3", 2),)).numpy())


def test_cli_release_layout_with_a_config_writes_the_plain_backbone_config(reference_config, b_inputs, tmp_path):
    path = tmp_path / "release.pdparams"
    paddle.save(release_checkpoint(reference_config), str(path))
    output = tmp_path / "veri" / "model.pdparams"
    names = ",".join(extractor_task_names(reference_config))
    assert extract.main(["--paddle_model_path", str(path), "--task_name", "veri", "--task_names", names,
                         "--output", str(output), "--config", TINY_MOE_CONFIG, "-o", "Model.backbone.img_size=[16,16]",
                         "-o", "Model.backbone.patch_size=8", "-o", "Model.backbone.stride_size=8"]) == 0
    with open(tmp_path / "veri" / "model.yaml", encoding="utf-8") as f:
        backbone_config = yaml.safe_load(f)["Model"]["backbone"]
    assert backbone_config["num_heads"] == [4, 4] and backbone_config["mlp_ratio"] == [2.0, 2.0]
    model = BACKBONES.build(backbone_config)
    state = {k[len("backbone."):]: v for k, v in paddle.load(str(output)).items() if k.startswith("backbone.")}
    missing, unexpected = model.set_state_dict(state)
    assert not missing and not unexpected
    tokens = model.eval()(paddle.to_tensor(b_inputs["veri"]))
    assert_close_relative(tokens[:, 0].numpy(), np.load(reference_path("C_plainvit_outputs.npz"))["veri"][:, :, 0, 0])
