"""LR schedule values (the released recipe's), warm-up as a fraction, one optimizer step against the update rule
written out by hand, the optimizer registry (AdamW) and parameter groups by name pattern."""
import numpy as np
import paddle
import pytest

from allinone.config import Config, ConfigError
from allinone.engine.solver import build_lr_scheduler, build_optimizer, lr_multipliers, warmup_length
from allinone.modeling import MultiTaskModel
from allinone.modeling.heads import EmbeddingHead

RELEASED_LR = Config({"base_lr": 0.2, "warmup_iters": 6000, "eta_min": 0.004})


def lr_at(scheduler, iteration):
    while scheduler.last_epoch < iteration:
        scheduler.step()
    return scheduler.last_lr


@pytest.mark.parametrize("iteration, expected", [(0, 0.0), (3000, 0.1), (6000, 0.2), (20000, 0.169252),
                                                 (33000, 0.102), (59999, 0.004)])
def test_lr_schedule_reproduces_the_checked_values_of_the_released_config(iteration, expected):
    """Warmup end (6000), middle (33000: half-way down the cosine) and end (59999), base .2, T 54000, eta .004."""
    assert lr_at(build_lr_scheduler(RELEASED_LR, max_iter=60000), iteration) == pytest.approx(expected, abs=2e-6)


def test_lr_schedule_without_warmup_starts_at_base_lr_and_ends_at_eta_min():
    scheduler = build_lr_scheduler(Config({"base_lr": 0.1, "warmup_iters": 0, "eta_min": 0.001}), max_iter=100)
    assert lr_at(scheduler, 0) == pytest.approx(0.1)
    assert lr_at(scheduler, 50) == pytest.approx(0.0505)
    assert lr_at(scheduler, 100) == pytest.approx(0.001)


def test_lr_schedule_state_dict_resumes_at_the_same_value():
    first = build_lr_scheduler(RELEASED_LR, max_iter=60000)
    lr_at(first, 7000)
    second = build_lr_scheduler(RELEASED_LR, max_iter=60000)
    second.set_state_dict(first.state_dict())
    assert lr_at(second, 33000) == pytest.approx(0.102, abs=2e-6)


class TinyBackbone(paddle.nn.Layer):
    """A Linear (weight + bias) and a LayerNorm: enough to see the bias factor and its norm-layer exception."""

    def __init__(self):
        super().__init__()
        self.embed_dim = 3
        self.fc = paddle.nn.Linear(2, 3)
        self.norm = paddle.nn.LayerNorm(3)

    def forward(self, x, segments=None):
        return self.norm(self.fc(x)).reshape([-1, 1, 3])  # tokens [B, 1, D]: a cls token only


def tiny_model():
    paddle.seed(0)
    heads = {"a": EmbeddingHead(3, num_classes=2, cls_type="Linear", scale=1.0),
             "b": EmbeddingHead(3, num_classes=2, cls_type="Linear", scale=1.0)}
    return MultiTaskModel(TinyBackbone(), heads)


OPT = Config({"name": "Momentum", "momentum": 0.9, "weight_decay": 0.01, "grad_clip_norm": 0.5,
              "bias_lr_factor": 2.0, "head_lr_scale": {"b": 0.5},
              "lr": {"base_lr": 0.1, "warmup_iters": 0, "eta_min": 0.0}})


def test_lr_multipliers_double_linear_biases_scale_heads_and_skip_frozen_bn_bias():
    multipliers = lr_multipliers(tiny_model(), bias_lr_factor=2.0, head_lr_scale={"b": 0.5})
    assert multipliers["backbone.fc.bias"] == 2.0
    assert multipliers["backbone.fc.weight"] == 1.0
    assert multipliers["backbone.norm.bias"] == 1.0  # norm biases keep 1, as the original's ParamAttrs
    assert multipliers["heads.b.classifier.weight"] == 0.5
    assert multipliers["heads.a.bottleneck.0.weight"] == 1.0
    assert "heads.a.bottleneck.0.bias" not in multipliers  # frozen (stop_gradient)


def test_head_lr_scale_naming_an_unknown_head_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown head\(s\) \['c'\]"):
        lr_multipliers(tiny_model(), head_lr_scale={"c": 2.0})


def test_optimizer_step_is_momentum_sgd_with_per_tensor_clip_then_coupled_weight_decay():
    """w' = w - lr * mult * v,  v = mu * v + clip_5(g) + wd * w  (clip per tensor, before the decay)."""
    model = tiny_model()
    model.train()
    scheduler = build_lr_scheduler(OPT.lr, max_iter=10)
    optimizer = build_optimizer(OPT, model, scheduler)
    multipliers = lr_multipliers(model, 2.0, {"b": 0.5})
    params = dict(model.named_parameters())
    velocity = {name: np.zeros(p.shape, "float64") for name, p in params.items()}
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(4, 2)).astype("float32") * 10)
    y = paddle.to_tensor(np.array([0, 1, 1, 0]))
    for _ in range(2):
        before = {name: p.numpy().astype("float64") for name, p in params.items()}
        outputs = model({"a": {"images": x, "targets": y}, "b": {"images": x, "targets": y}})
        loss = sum(paddle.nn.functional.cross_entropy(o["logits"], y) for o in outputs.values())
        loss.backward()
        grads = {name: p.grad.numpy().astype("float64") for name, p in params.items() if p.grad is not None}
        lr = optimizer.get_lr()
        optimizer.step()
        optimizer.clear_grad()
        scheduler.step()
        for name, grad in grads.items():
            if name not in multipliers:
                continue
            norm = np.sqrt((grad ** 2).sum())
            clipped = grad * (0.5 / norm) if norm > 0.5 else grad
            velocity[name] = 0.9 * velocity[name] + clipped + 0.01 * before[name]
            expected = before[name] - lr * multipliers[name] * velocity[name]
            np.testing.assert_allclose(params[name].numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(params["heads.a.bottleneck.0.bias"].numpy(), 0.0)


def test_an_unknown_optimizer_key_is_an_error():
    cfg = Config({**OPT.to_dict(), "nesterov": True})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nesterov'\] in section 'Optimizer'"):
        build_optimizer(cfg, tiny_model(), build_lr_scheduler(OPT.lr, 10))


def test_warmup_given_as_a_fraction_scales_with_max_iter():
    lr = Config({"base_lr": 0.1, "warmup_fraction": 0.1, "eta_min": 0.0})
    assert warmup_length(lr, 3000) == 300 and warmup_length(lr, 100) == 10
    assert lr_at(build_lr_scheduler(lr, max_iter=100), 5) == pytest.approx(0.05)


@pytest.mark.parametrize("lr, message", [
    ({"warmup_iters": 300}, r"warmup_iters must be an integer in \[0, Train.max_iter=100\], got 300"),
    ({"warmup_iters": 2.5}, r"warmup_iters must be an integer .* got 2.5"),
    ({"warmup_fraction": 1.5}, r"warmup_fraction must be a number in \[0, 1\], got 1.5"),
    ({"warmup_iters": 10, "warmup_fraction": 0.1}, r"give warmup_iters \(10\) or warmup_fraction \(0.1\), not both"),
])
def test_a_warmup_that_does_not_fit_the_run_is_an_error_naming_the_key(lr, message):
    with pytest.raises(ConfigError, match=message):
        build_lr_scheduler(Config({"base_lr": 0.1, "eta_min": 0.0, **lr}), max_iter=100)


def adamw_config(**extra):
    return Config({"name": "AdamW", "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "weight_decay": 0.05,
                   "grad_clip_norm": None, "bias_lr_factor": 1.0, "head_lr_scale": {},
                   "lr": {"base_lr": 0.01, "warmup_iters": 0, "eta_min": 0.01}, **extra})


def one_step(model, optimizer):
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(4, 2)).astype("float32"))
    y = paddle.to_tensor(np.array([0, 1, 1, 0]))
    outputs = model({"a": {"images": x, "targets": y}, "b": {"images": x, "targets": y}})
    sum(paddle.nn.functional.cross_entropy(o["logits"], y) for o in outputs.values()).backward()
    grads = {name: p.grad.numpy().astype("float64") for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    optimizer.clear_grad()
    return grads


def test_adamw_first_step_is_the_decoupled_update_with_each_groups_lr_and_weight_decay():
    """Step 1 of AdamW: w' = w (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps) with m_hat / sqrt(v_hat) = sign(g)
    (|g| >> eps); `heads.b.` parameters are a group at lr x 0.5 without weight decay, `norm` ones are frozen."""
    model = tiny_model()
    model.train()
    cfg = adamw_config(param_groups=[{"pattern": r"^heads\.b\.", "lr_mult": 0.5, "weight_decay": 0.0},
                                     {"pattern": r"\.norm\.", "lr_mult": 0.0}])
    scheduler = build_lr_scheduler(cfg.lr, max_iter=10)
    optimizer = build_optimizer(cfg, model, scheduler)
    assert isinstance(optimizer, paddle.optimizer.AdamW)
    before = {name: p.numpy().astype("float64") for name, p in model.named_parameters()}
    grads = one_step(model, optimizer)
    for name, param in model.named_parameters():
        if name.startswith("backbone.norm."):
            assert param.stop_gradient and name not in grads
            np.testing.assert_array_equal(param.numpy(), before[name], err_msg=name)
            continue
        if name not in grads:
            continue
        in_b = name.startswith("heads.b.")
        lr, decay = 0.01 * (0.5 if in_b else 1.0), 0.0 if in_b else 0.05
        grad = grads[name]
        expected = before[name] * (1 - lr * decay) - lr * grad / (np.abs(grad) + 1e-8)
        np.testing.assert_allclose(param.numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_param_group_pattern_that_matches_nothing_or_an_option_of_another_optimizer_is_an_error():
    scheduler = build_lr_scheduler(OPT.lr, 10)
    with pytest.raises(ConfigError, match=r"pattern\(s\) \['experts'\] match no parameter"):
        build_optimizer(Config({**OPT.to_dict(), "param_groups": [{"pattern": "experts", "lr_mult": 2.0}]}),
                        tiny_model(), scheduler)
    with pytest.raises(ConfigError, match=r"Momentum, which takes no \['beta1'\]"):
        build_optimizer(Config({**OPT.to_dict(), "beta1": 0.9}), tiny_model(), scheduler)
    with pytest.raises(ConfigError,
                       match=r"Optimizer.name must be one of the registered .*'Adam'.*"
                             r"registered: \['AdamW', 'Momentum'\]"):
        build_optimizer(Config({**OPT.to_dict(), "name": "Adam"}), tiny_model(), scheduler)


def test_a_momentum_param_group_changes_the_lr_multiplier_of_the_parameters_it_matches():
    model = tiny_model()
    cfg = Config({**OPT.to_dict(), "param_groups": [{"pattern": r"^backbone\.fc\.weight$", "lr_mult": 0.1}]})
    optimizer = build_optimizer(cfg, model, build_lr_scheduler(OPT.lr, 10))
    params = dict(model.named_parameters())
    assert params["backbone.fc.weight"].optimize_attr["learning_rate"] == pytest.approx(0.1)
    assert params["backbone.fc.bias"].optimize_attr["learning_rate"] == pytest.approx(2.0)
    assert optimizer is not None
