"""The task-MoE supernet: parity with the original on set B (all tasks in one fused batch), gate picks, the gate's
training and eval maths, frozen common expert, learning-rate multipliers, errors for unknown tasks."""
import json

import numpy as np
import paddle
import pytest
from oneforall_tools import assert_close_relative, build_moe, reference_path

from oneforall import gate as gates
from oneforall.moe_checkpoint import convert_original_ranks
from oneforall.original import original_backbone_kwargs
from oneforall.task_moe import TaskMoEVisionTransformer


def fused_batch(b_inputs, tasks):
    images = paddle.to_tensor(np.concatenate([b_inputs[task] for task in tasks]))
    return images, tuple((task, b_inputs[task].shape[0]) for task in tasks)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention", "plain_attention"])
def test_set_b_outputs_and_intermediates_match_the_original(moe_b, b_inputs, reference_config, fused):
    outputs, intermediates = np.load(reference_path("B_outputs.npz")), np.load(reference_path("B_intermediates.npz"))
    for block in moe_b.blocks:
        block.attn.fused = fused
    tasks = list(moe_b.tasks)
    images, segments = fused_batch(b_inputs, tasks)
    tokens = moe_b.embed_tokens(images, segments)
    for task, part in zip(tasks, paddle.split(tokens, [rows for _, rows in segments])):
        assert_close_relative(part.numpy(), intermediates[f"tokens.{task}"])
    for entry in reference_config["B"]["configs"]:
        name = entry["name"]
        moe_b.set_subnet(entry["config"])
        x = tokens
        for index in range(moe_b.subnet.depth):
            x = moe_b.blocks[index](x, segments)
            for task, part in zip(tasks, paddle.split(x, [rows for _, rows in segments])):
                assert_close_relative(part.numpy(), intermediates[f"{name}.{task}.block{index}"])
        result = moe_b(images, segments)[:, 0]
        for task, part in zip(tasks, paddle.split(result, [rows for _, rows in segments])):
            assert_close_relative(part.numpy(), outputs[f"{name}.{task}"][:, :, 0, 0])


def test_one_task_alone_gives_the_same_rows(moe_b, b_inputs):
    images, segments = fused_batch(b_inputs, list(moe_b.tasks))
    fused = moe_b(images, segments).numpy()
    alone = moe_b(paddle.to_tensor(b_inputs["person"]), (("person", 2),)).numpy()
    np.testing.assert_array_equal(alone, fused[3:5])


def test_gate_picks_match_the_original(moe_b, reference_config):
    picks = moe_b.gate_picks()
    for task, blocks in reference_config["B"]["picks"].items():
        for entry in blocks:
            assert picks[entry["block"]][task] == entry["picked"], (task, entry)


def test_eval_gate_rule_ties_and_near_ties_go_to_specific():
    assert gates.eval_pick(paddle.to_tensor([[0.25, 0.25]]), 5.0) == gates.SPECIFIC
    assert gates.eval_pick(paddle.to_tensor([[0.8, -0.4]]), 5.0) == gates.COMMON
    # one ulp apart: the float32 softmax rounds to [0.5, 0.5] -> specific, while the raw values say common
    common = np.float32(0.3)
    specific = np.nextafter(common, np.float32(0))
    assert gates.eval_pick(paddle.to_tensor([[common, specific]]), 5.0) == gates.SPECIFIC
    assert gates.release_pick(np.array([common, specific])) == gates.COMMON
    assert gates.release_pick(np.array([0.5, 0.5])) == gates.SPECIFIC


def test_training_gate_is_one_hot_straight_through_with_fresh_noise_per_row():
    paddle.seed(3)
    logits = paddle.zeros([1, 2])
    logits.stop_gradient = False
    rows = logits.tile([400, 1])
    choice = gates.hard_choice(rows, 5.0, training=True)
    values = choice.numpy()
    assert set(np.unique(values)) == {0.0, 1.0} and (values.sum(axis=1) == 1.0).all()
    share = values[:, 1].mean()
    assert 0.4 < share < 0.6  # zero logits: each row draws its own noise
    weights = paddle.to_tensor(np.linspace(-1, 1, 800, dtype="float32").reshape(400, 2))
    (choice * weights).sum().backward()
    assert float(paddle.abs(logits.grad).sum()) > 0  # straight-through: the softmax's gradient reaches the logits
    eval_choice = gates.hard_choice(paddle.to_tensor([[0.1, 0.0]] * 3), 5.0, training=False).numpy()
    np.testing.assert_array_equal(eval_choice, [[1.0, 0.0]] * 3)


def test_training_forward_routes_rows_and_freezes_the_common_expert(reference_config, b_inputs):
    model = build_moe(reference_config, drop_path_rate=0.0)
    model.set_state_dict(convert_original_ranks(_rank_states(reference_config), model.tasks))
    images, segments = fused_batch(b_inputs, list(model.tasks))
    paddle.seed(0)
    model.train()
    out = model(images, segments)
    out.sum().backward()
    for name, param in model.named_parameters():
        if ".common_expert." in name:
            assert param.stop_gradient and param.grad is None, name
            assert param.optimize_attr["learning_rate"] == 0.0
        elif ".gates." in name:
            assert param.grad is not None and float(param.grad.abs().sum()) > 0, name
    assert model.pos_embeds["veri"].grad is not None


def _rank_states(reference_config):
    from oneforall_tools import original_rank_states
    return original_rank_states(reference_config)


def test_learning_rate_multipliers_follow_the_original(reference_config):
    with open(reference_path("../../checkpoints/oneforall_tiny_keys.json"), encoding="utf-8") as f:
        dump = json.load(f)
    model = TaskMoEVisionTransformer(**original_backbone_kwargs(dump["constructor_args"]))
    original = {entry["structured_name"]: entry["learning_rate_multiplier"] for entry in dump["parameters"]}
    # the dumped instance is task face's rank: it holds face's specific expert only
    identity = {name: name for name in original}
    names = convert_original_ranks({"face": identity, "person": identity}, model.tasks)
    ours = dict(model.named_parameters())
    assert set(names) == set(ours)
    for our_name, original_name in names.items():
        if "specific_experts.person" in our_name:
            continue
        assert ours[our_name].optimize_attr["learning_rate"] == original[original_name], our_name


def test_soft_gate_mixes_and_common_expert_can_be_trained(reference_config, b_inputs):
    model = build_moe(reference_config, gate="soft", train_common_expert=True)
    block = model.blocks[0]
    assert not block.mlp.common_expert.fc1.weight.stop_gradient
    assert block.mlp.common_expert.fc1.weight.optimize_attr["learning_rate"] == 1.0
    block.mlp.gates["face"].set_value(paddle.to_tensor([[0.5, -0.5]]))
    x = paddle.randn([2, 5, 64])
    weights = paddle.nn.functional.softmax(paddle.to_tensor([[0.5, -0.5]]) / 5.0)[0].numpy()
    expected = (block.mlp.common_expert(x).numpy() * weights[0] + block.mlp.specific_experts["face"](x).numpy()
                * weights[1])
    np.testing.assert_allclose(block.mlp(x, (("face", 2),)).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_unknown_task_or_missing_segments_is_an_error(moe_b, b_inputs):
    images = paddle.to_tensor(b_inputs["face"])
    with pytest.raises(KeyError, match=r"unknown task\(s\) \['car'\].*\['face', 'person', 'veri'\]"):
        moe_b(images, (("car", 3),))
    with pytest.raises(ValueError, match="pass segments"):
        moe_b(images)
    with pytest.raises(ValueError, match="cover 4 rows but the batch has 3"):
        moe_b(images, (("face", 4),))


def test_a_bad_moe_subnet_names_the_task(moe_b):
    config = {"num_heads": [4, 4], "mlp_ratio": [2.0, 2.0], "embed_dim": [64, 64], "layer_num": 2,
              "softpolicy_mlp_ratio": [{"common_expert": 2.0, "specific_experts": [2.0, 2.5, 2.0]}] * 2}
    with pytest.raises(ValueError, match=r"layer 0: expert_ratios.specific\[person\] = 2.5"):
        moe_b.set_subnet(config)
    with pytest.raises(ValueError, match="needs expert_ratios"):
        moe_b.set_subnet({k: v for k, v in config.items() if k != "softpolicy_mlp_ratio"})
    assert moe_b.subnet == moe_b.largest_subnet()


def test_in_the_multi_task_model_each_task_uses_its_own_path():
    from allinone import build_model
    from allinone.config import load_config
    model = build_model(load_config("configs/oneforall/tiny_task_moe.yaml")).eval()
    model.backbone.blocks[1].mlp.gates["task3"].set_value(paddle.to_tensor([[0.0, 1.0]]))
    faces, persons = paddle.randn([2, 3, 32, 32]), paddle.randn([3, 3, 32, 32])
    fused = model({"task1": faces, "task3": {"images": persons}})
    np.testing.assert_array_equal(model.embed("task3", persons).numpy(), fused["task3"].numpy())
    np.testing.assert_array_equal(model.embed("task1", faces).numpy(), fused["task1"].numpy())
    assert np.abs(model.embed("task1", persons).numpy() - fused["task3"].numpy()).max() > 1e-3
