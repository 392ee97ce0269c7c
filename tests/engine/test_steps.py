"""Step classes, loss scaling and what a failed step leaves behind, in-process on a tiny real model: SandwichStep runs
through the same loop as SimpleStep, the model's own losses join the criterion's, the loss scaler really scales
(state round trip, overflow backs off), and a non-finite loss leaves the model exactly as before the step."""
import numpy as np
import paddle
import pytest

from allinone.config import load_config
from allinone.engine.amp import LossScaler
from allinone.engine.checkpointer import Checkpointer, load_training_state
from allinone.engine.hooks import PeriodicCheckpointer
from allinone.engine.losses import MultiTaskLoss
from allinone.engine.solver import build_lr_scheduler, build_optimizer
from allinone.engine.steps import SandwichStep, SimpleStep
from allinone.engine.trainer import NonFiniteLossError, Trainer
from allinone.modeling import build_model
from engine_tools import BatchList, random_batch

TASKS = ("task1", "task2")


def tiny_cfg(tiny_config, bnneck=True):
    cfg = load_config(tiny_config, ["Optimizer.lr.warmup_fraction=0.0"])
    for head in cfg.Model.heads.values():
        head.num_classes = 8
        head.with_bnneck = bnneck
    return cfg


def make_batch(seed=0, rows=8):
    return random_batch(TASKS, seed, rows)


def make_trainer(cfg, model=None, batches=None, losses=None, max_iter=10, **kwargs):
    paddle.seed(0)
    model = model or build_model(cfg)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, max_iter)
    criterion = MultiTaskLoss({task: losses or cfg.Loss[task] for task in TASKS}, list(TASKS))
    trainer = Trainer(model, criterion, build_optimizer(cfg.Optimizer, model, scheduler), scheduler,
                      BatchList(batches or [make_batch()]), max_iter, **kwargs)
    model.train()
    return trainer


def parameters(model):
    """The trainable parameters (BatchNorm's running statistics are parameters without gradient in paddle)."""
    return {name: param.numpy().copy() for name, param in model.named_parameters() if not param.stop_gradient}


CE_ONLY = [{"name": "CrossEntropyLoss"}]


def test_a_sandwich_of_two_half_batches_makes_the_update_of_one_pass_over_the_whole_batch(tiny_config):
    """CE is a per-sample mean and the heads have no BatchNorm: two half-batch passes weighted 1/2 each accumulate the
    whole batch's gradient, so one update from either step gives the same parameters."""
    cfg = tiny_cfg(tiny_config, bnneck=False)
    simple = make_trainer(cfg, losses=CE_ONLY, step=SimpleStep())
    sandwich = make_trainer(cfg, losses=CE_ONLY, step=SandwichStep(num_passes=2))
    backbone_rows = []
    sandwich.module.backbone.register_forward_pre_hook(lambda layer, inputs: backbone_rows.append(inputs[0].shape[0]))
    start = parameters(sandwich.module)
    for trainer in (simple, sandwich):
        trainer.max_iter = 1
        trainer.train()
    assert backbone_rows == [8, 8]  # two passes of 2 tasks x 4 rows
    one, two = parameters(simple.module), parameters(sandwich.module)
    assert any(not np.array_equal(two[key], start[key]) for key in two)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for key in simple.losses:
        assert sandwich.losses[key] == pytest.approx(simple.losses[key], rel=1e-4)
    assert sandwich.step.state_dict() == {"passes_run": 2}


def test_step_state_and_loss_scaler_state_travel_in_the_checkpoint(tiny_config, tmp_path):
    cfg = tiny_cfg(tiny_config)
    trainer = make_trainer(cfg, step=SandwichStep(num_passes=2), amp_dtype="float16",
                           scaler=LossScaler(init_scale=256.0, growth_interval=2))
    trainer.max_iter = 3
    trainer.train()
    assert trainer.scaler.state_dict() == {"scale": 512.0, "good_steps": 1, "skipped_steps": 0}
    saved = tmp_path / "state.pdparams"
    Checkpointer(str(tmp_path)).save("state", trainer.state_dict(next_iter=3))
    restored = make_trainer(cfg, step=SandwichStep(num_passes=2), amp_dtype="float16")
    restored.load_state_dict(load_training_state(str(tmp_path / "state.pdparams")))
    assert restored.scaler.state_dict() == trainer.scaler.state_dict()
    assert restored.step.state_dict() == {"passes_run": 6}
    assert restored.iter == 3 and restored.data_loader.position == 3
    assert saved.exists()


def test_the_loss_scaler_unscales_gradients_so_a_scaled_step_equals_an_unscaled_one(tiny_config):
    cfg = tiny_cfg(tiny_config)
    plain = make_trainer(cfg)
    scaled = make_trainer(cfg, amp_dtype="float16", scaler=LossScaler(init_scale=1024.0))
    for trainer in (plain, scaled):
        trainer.max_iter = 2
        trainer.train()
    one, two = parameters(plain.module), parameters(scaled.module)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert scaled.storage.latest("loss_scale")[1] == 1024.0


def test_an_overflowing_scaled_loss_skips_the_update_and_backs_off_the_scale(tiny_config):
    """A scale of 1e38 turns the float32 gradients infinite (as float16 gradients overflow on a GPU): the optimizer
    must not step, and the scale halves until the gradients fit."""
    cfg = tiny_cfg(tiny_config)
    trainer = make_trainer(cfg, amp_dtype="float16", scaler=LossScaler(init_scale=1e38, growth_interval=1000))
    before = parameters(trainer.module)
    trainer.max_iter = 1
    trainer.train()
    assert trainer.scaler.skipped_steps == 1 and trainer.scaler.scale_value == 5e37
    after = parameters(trainer.module)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert np.isfinite(trainer.total_loss)  # the loss itself was fine: no NonFiniteLossError


class ModelWithItsOwnLoss(paddle.nn.Layer):
    """A real model that also returns a loss it computed (as a detection head does)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        outputs = self.inner(batch)
        outputs["task2"]["losses"] = {"loss_feature_norm": outputs["task2"]["features"].square().mean() * 0.01}
        return outputs


def test_losses_the_model_returns_are_keyed_by_task_and_name_and_trained(tiny_config):
    cfg = tiny_cfg(tiny_config)
    paddle.seed(0)
    trainer = make_trainer(cfg, model=ModelWithItsOwnLoss(build_model(cfg)))
    trainer.max_iter = 1
    trainer.train()
    assert ("task2", "loss_feature_norm") in trainer.losses
    assert trainer.total_loss == pytest.approx(sum(trainer.losses.values()))
    assert trainer.storage.latest("task2_loss_feature_norm")[1] == trainer.losses[("task2", "loss_feature_norm")]


def test_a_non_finite_loss_leaves_parameters_and_batchnorm_statistics_as_before_the_step(tiny_config, tmp_path):
    """The NaN image reaches the BN necks' running statistics in the forward; model_last_good must not hold them."""
    cfg = tiny_cfg(tiny_config)
    batches = [make_batch(0), make_batch(1)]
    batches[1]["task2"]["images"][0, 0, 0, 0] = float("nan")
    trainer = make_trainer(cfg, batches=batches)
    trainer.register_hooks([PeriodicCheckpointer(Checkpointer(str(tmp_path)), 0)])
    model = trainer.module
    trainer.max_iter = 1
    trainer.train()  # one good step
    snapshot = {key: value.numpy().copy() for key, value in model.state_dict().items()}
    trainer.max_iter = 2
    with pytest.raises(NonFiniteLossError, match=r"iteration 1: task\(s\) \['task2'\]"):
        trainer.train()
    saved = load_training_state(str(tmp_path / "model_last_good.pdparams"))
    assert int(saved["iteration"]) == 1
    running = [key for key in snapshot if "_mean" in key or "_variance" in key]
    assert running, "the test model has no BatchNorm statistics"
    for key, value in snapshot.items():
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), value, err_msg=key)
        np.testing.assert_array_equal(np.asarray(saved["model"][key]), value, err_msg=key)
