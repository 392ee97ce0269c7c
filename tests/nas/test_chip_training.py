"""Chip-supernet training steps on a real tiny elastic ViT: the sandwich step's update is the sum (each weighted
1 / passes) of the separate sub-networks' gradients, the draws are step-seeded (same seed, same sub-networks; the
draw count travels in the step state), in-place distillation, and tools/train.py evaluating named sub-networks."""
import numpy as np
import paddle
import pytest

import oneforall.chip_training  # noqa: F401  (registers the supernet and the steps)
from allinone.config import load_config
from allinone.engine.losses import MultiTaskLoss
from allinone.engine.solver import build_lr_scheduler, build_optimizer
from allinone.engine.trainer import Trainer
from allinone.modeling import build_model
from engine_tools import BatchList, random_batch, run_train
from oneforall.subnet_codes import subnet_code
from oneforall.chip_training import InplaceDistillation, SubnetSandwichStep, SubnetStep, named_subnet_evaluation

TASKS = ("task1", "task2")
CE_ONLY = [{"name": "CrossEntropyLoss"}]


def chip_cfg(nas_config):
    cfg = load_config(nas_config, ["Optimizer.lr.warmup_fraction=0.0"])
    for head in cfg.Model.heads.values():
        head.num_classes = 8
    return cfg


def make_batch(seed=0, rows=8):
    return random_batch(TASKS, seed, rows)


class GradientKeepingTrainer(Trainer):
    """A Trainer whose update keeps the accumulated gradients (then clears them without stepping)."""

    def update(self):
        self.gradients = {name: param.grad.numpy().copy() for name, param in self.module.named_parameters()
                          if param.grad is not None}
        self.optimizer.clear_grad()


def make_trainer(cfg, step, trainer_class=Trainer, losses=None, max_iter=10):
    paddle.seed(0)
    model = build_model(cfg)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, max_iter)
    criterion = MultiTaskLoss({task: losses or cfg.Loss[task] for task in TASKS}, list(TASKS))
    trainer = trainer_class(model, criterion, build_optimizer(cfg.Optimizer, model, scheduler), scheduler,
                            BatchList([make_batch(seed) for seed in range(3)]), max_iter, step=step)
    model.train()
    return trainer


def record_subnets(trainer):
    """The sub-network of every backbone forward, as codes."""
    seen = []
    backbone = trainer.module.backbone
    backbone.register_forward_pre_hook(lambda layer, inputs: seen.append(layer.subnet))
    return seen


def test_the_sandwich_update_is_the_sum_of_the_separate_subnetwork_gradients(nas_config):
    cfg = chip_cfg(nas_config)
    trainer = make_trainer(cfg, SubnetSandwichStep(num_random=2, seed=3), GradientKeepingTrainer, CE_ONLY)
    seen = record_subnets(trainer)
    trainer.step.run_step(trainer)
    space = trainer.module.backbone.search_space
    assert seen == [space.largest(), space.smallest(), space.sample(3 * 1_000_003), space.sample(3 * 1_000_003 + 1)]
    assert len({subnet_code(arch) for arch in seen}) == 4

    separate = make_trainer(cfg, SubnetSandwichStep(num_random=2, seed=3), GradientKeepingTrainer, CE_ONLY)
    batch = make_batch(0)
    total = {}
    for arch in seen:
        separate.module.backbone.set_subnet(arch)
        separate.optimizer.clear_grad()
        separate.backward(separate.forward_losses(batch))
        for name, param in separate.module.named_parameters():
            if param.grad is not None:
                total[name] = total.get(name, 0.0) + param.grad.numpy() / len(seen)
    assert set(total) == set(trainer.gradients)
    for name, value in total.items():
        np.testing.assert_allclose(trainer.gradients[name], value, rtol=1e-4, atol=1e-7, err_msg=name)
    # a block past the smallest depth is trained only by the sub-networks that have it: non-zero, not the full sum
    deep = "backbone.blocks.11.mlp.fc1.weight"
    assert np.abs(trainer.gradients[deep]).sum() > 0


def train_draws(cfg, step, iterations):
    trainer = make_trainer(cfg, step, max_iter=iterations)
    seen = record_subnets(trainer)
    trainer.train()
    return trainer, [subnet_code(arch) for arch in seen]


@pytest.mark.parametrize("make_step", [lambda seed: SubnetStep(seed=seed),
                                       lambda seed: SubnetSandwichStep(num_random=1, seed=seed)],
                         ids=["SubnetStep", "SubnetSandwichStep"])
def test_two_runs_with_the_same_seed_draw_the_same_subnetworks_and_a_resumed_step_continues_them(nas_config,
                                                                                                 make_step):
    cfg = chip_cfg(nas_config)
    first, draws = train_draws(cfg, make_step(1), 4)
    _, again = train_draws(cfg, make_step(1), 4)
    _, other = train_draws(cfg, make_step(2), 4)
    assert draws == again and draws != other
    assert len(set(draws)) >= 3
    # a step restored from the state after 2 iterations draws what iterations 3 and 4 drew
    half, head = train_draws(cfg, make_step(1), 2)
    resumed = make_step(1)
    resumed.set_state_dict(half.step.state_dict())
    _, tail = train_draws(cfg, resumed, 2)
    assert head + tail == draws
    with pytest.raises(ValueError, match="seed 1, .* seed 2"):
        make_step(2).set_state_dict(half.step.state_dict())


def test_seed_zero_draws_the_original_per_step_subnetworks(nas_config):
    cfg = chip_cfg(nas_config)
    trainer, draws = train_draws(cfg, SubnetStep(seed=0), 3)
    space = trainer.module.backbone.search_space
    assert draws == [subnet_code(space.sample(step)) for step in range(3)]


def test_inplace_distillation_adds_a_loss_that_vanishes_when_the_student_is_the_teacher(nas_config):
    cfg = chip_cfg(nas_config)
    trainer = make_trainer(cfg, SubnetSandwichStep(num_random=1, seed=0, distill={"temperature": 2.0}))
    trainer.max_iter = 1
    trainer.train()
    assert isinstance(trainer.criterion, InplaceDistillation)
    assert trainer.losses[("task1", "loss_distill")] > 0
    # student = teacher (the largest twice): the distillation term is zero
    model = trainer.module
    model.backbone.set_subnet(model.backbone.search_space.largest())
    batch = make_batch(1)
    trainer.criterion.role = "teacher"
    trainer.forward_losses(batch)
    trainer.criterion.role = "student"
    losses = trainer.forward_losses(batch)
    assert float(losses[("task2", "loss_distill")]) == pytest.approx(0.0, abs=1e-5)


def test_named_evaluation_runs_each_subnetwork_and_restores_the_current_one(nas_config):
    model = build_model(chip_cfg(nas_config)).eval()
    model.backbone.set_subnet(model.backbone.search_space.sample(5))
    current = model.backbone.subnet
    evaluated = []

    def evaluate(m):
        evaluated.append(m.backbone.subnet)
        return {"task3.market1501.mAP": float(m.backbone.subnet.depth)}

    results = named_subnet_evaluation(evaluate)(model)
    space = model.backbone.search_space
    assert evaluated == [space.largest(), space.smallest()]
    assert dict(results) == {"largest.task3.market1501.mAP": 12.0, "smallest.task3.market1501.mAP": 10.0}
    assert model.backbone.subnet == current


def test_train_tool_trains_the_supernet_and_evaluates_the_largest_and_smallest_by_name(nas_config, mini_root,
                                                                                        tmp_path):
    result = run_train(nas_config, tmp_path, mini_root, "-o", "Train.eval_period=4",
                       "-o", "Train.eval_datasets=Market1501")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "log_rank0.txt").read_text()
    block = log.split("evaluation after 4 iterations:")[1]
    assert "largest.task3.market1501.mAP:" in block and "smallest.task3.market1501.mAP:" in block
    assert "sub-network 'smallest': j" + "331" * 10 + "000" * 2 in result.stdout
    state = paddle.load(str(tmp_path / "model_final.pdparams"))
    assert "step" in state
