"""LR schedule values (spec oneforall.md 3.3) and one optimizer step against the update rule written out by hand."""
import numpy as np
import paddle
import pytest

from allinone.config import Config, ConfigError
from allinone.engine.solver import build_lr_scheduler, build_optimizer, lr_multipliers
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
