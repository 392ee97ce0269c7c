"""The hard gate's cheaper expert runner ('picked': the unpicked expert of a row runs without autograd) gives the
released formula's forward value and every gradient (input, both experts' parameters, gates), written out here
independently: choice[:, 0] * common(x) + choice[:, 1] * specific(x) with the same Gumbel draws."""
import numpy as np
import paddle
import pytest

from oneforall import gate as gates
from oneforall.task_moe import TaskMoEMlp, TaskMoEVisionTransformer

SEGMENTS = (("a", 7), ("b", 5))
GATE_LOGITS = {"mixed": ([0.0, 0.0], [0.0, 0.0]), "all_common": ([60.0, 0.0], [60.0, 0.0]),
               "all_specific": ([0.0, 60.0], [0.0, 60.0]), "one_each": ([60.0, 0.0], [0.0, 60.0])}


def build_mlp(train_common_expert, logits):
    paddle.seed(11)
    mlp = TaskMoEMlp(8, 16, tasks=("a", "b"), train_common_expert=train_common_expert)
    for task, values in zip(("a", "b"), logits):
        mlp.gates[task].set_value(paddle.to_tensor([values], dtype="float32"))
    mlp.train()
    return mlp


def inputs():
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.normal(size=(12, 3, 8)).astype("float32"), stop_gradient=False)
    upstream = paddle.to_tensor(rng.normal(size=(12, 3, 8)).astype("float32"))  # dL/dout
    return x, upstream


def released_formula(mlp, x):
    """The original's per-task forward, both experts with autograd on every row; the noise drawn in task order."""
    outputs, picks, start = [], [], 0
    for task, rows in SEGMENTS:
        part = x[start:start + rows]
        start += rows
        choice = gates.hard_choice(mlp.gates[task].tile([rows, 1]), mlp.tau, training=True)
        picks.append(choice.numpy()[:, 1])
        outputs.append(mlp.common_expert(part) * choice[:, 0].reshape([-1, 1, 1])
                       + mlp.specific_experts[task](part) * choice[:, 1].reshape([-1, 1, 1]))
    return paddle.concat(outputs), np.concatenate(picks)


def value_and_gradients(mlp, forward):
    x, upstream = inputs()
    paddle.seed(5)  # the same Gumbel draws for both forwards
    result = forward(mlp, x)
    out, picks = result if isinstance(result, tuple) else (result, None)
    (out * upstream).sum().backward()
    grads = {name: (None if param.grad is None else param.grad.numpy().copy())
             for name, param in mlp.named_parameters()}
    for param in mlp.parameters():
        param.clear_gradient(set_to_zero=False)
    return out.numpy(), x.grad.numpy(), grads, picks


@pytest.mark.parametrize("train_common_expert", [False, True], ids=["frozen_common", "trained_common"])
@pytest.mark.parametrize("case", sorted(GATE_LOGITS))
def test_picked_runner_equals_the_released_formula(case, train_common_expert):
    mlp = build_mlp(train_common_expert, GATE_LOGITS[case])
    ref_out, ref_dx, ref_grads, picks = value_and_gradients(mlp, released_formula)
    assert mlp.expert_runner == "picked"
    out, dx, grads, _ = value_and_gradients(mlp, lambda m, x: m(x, SEGMENTS))
    if case == "mixed":
        assert 0 < picks[:7].sum() < 7 and 0 < picks[7:].sum() < 5  # both picks within each task
    if case == "one_each":
        assert picks[:7].sum() == 0 and picks[7:].sum() == 5
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dx, ref_dx, rtol=0, atol=1e-6)
    assert set(grads) == set(ref_grads)
    for name, ref in ref_grads.items():
        if name.startswith("common_expert.") and not train_common_expert:
            assert ref is None and grads[name] is None, name  # frozen: no gradient at all
            continue
        assert ref is not None, name
        got = np.zeros_like(ref) if grads[name] is None else grads[name]  # unused expert: no tensor (zero)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6, err_msg=name)
        if grads[name] is None:
            assert not ref.any(), name
    gate_grads = [ref_grads[f"gates.{task}"] for task in ("a", "b")]
    if case == "mixed":
        assert all(np.abs(g).max() > 1e-4 for g in gate_grads)  # the gate learns from both experts' outputs


def test_the_both_runner_is_the_released_formula():
    mlp = build_mlp(False, GATE_LOGITS["mixed"])
    ref_out, ref_dx, ref_grads, _ = value_and_gradients(mlp, released_formula)
    mlp.expert_runner = "both"
    out, dx, grads, _ = value_and_gradients(mlp, lambda m, x: m(x, SEGMENTS))
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dx, ref_dx, rtol=0, atol=1e-6)
    for name, ref in ref_grads.items():
        if ref is not None:
            np.testing.assert_allclose(grads[name], ref, rtol=0, atol=1e-6, err_msg=name)


def tiny_backbone(use_recompute):
    paddle.seed(2)
    model = TaskMoEVisionTransformer(tasks=("a", "b"), img_size=[16, 16], patch_size=8, stride_size=8, embed_dim=16,
                                     depth=2, num_heads=2, head_dim=8, mlp_ratio=2.0, qkv_bias=True, qk_scale=None,
                                     drop_path_rate=0.0, use_recompute=use_recompute,
                                     choices={"num_heads": [2], "mlp_ratio": [2.0], "embed_dim": [16], "depth": [2],
                                              "img_size": [16]})
    model.train()
    return model


@pytest.mark.parametrize("use_recompute", [False, True], ids=["plain", "recompute"])
def test_whole_backbone_gradients_match_with_and_without_recompute(use_recompute):
    """The picks are re-drawn identically when a recomputed block re-runs in the backward pass."""
    images = paddle.to_tensor(np.random.RandomState(1).normal(size=(10, 3, 16, 16)).astype("float32"))
    segments = (("a", 6), ("b", 4))
    results = {}
    for runner, recompute in (("both", False), ("picked", use_recompute)):
        model = tiny_backbone(recompute)
        for block in model.blocks:
            block.mlp.expert_runner = runner
        paddle.seed(9)
        out = model(images, segments)
        (out * paddle.arange(out.size, dtype="float32").reshape(out.shape) / out.size).sum().backward()
        results[runner] = (out.numpy(), {name: (None if p.grad is None else p.grad.numpy())
                                         for name, p in model.named_parameters()})
    np.testing.assert_allclose(results["picked"][0], results["both"][0], rtol=0, atol=1e-6)
    for name, ref in results["both"][1].items():
        got = results["picked"][1][name]
        if ref is None:
            assert got is None, name
            continue
        np.testing.assert_allclose(np.zeros_like(ref) if got is None else got, ref, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
