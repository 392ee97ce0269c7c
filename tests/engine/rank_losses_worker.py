"""Run by test_distributed.py under `paddle.distributed.launch` (2 CPU processes): a real Trainer on a tiny model
whose two ranks see different data, so their local losses differ; at iteration NAN_AT rank 1's batch holds a NaN
(-1: never). STEP names the step class. Each rank writes what it computed locally, what the trainer logged and its
final weights to OUT/rank{r}.json.

    python -m paddle.distributed.launch --nproc_per_node 2 rank_losses_worker.py OUT NAN_AT [STEP]"""
import json
import os
import sys

import numpy as np
import paddle

from allinone.config import Config
from allinone.engine.distributed import data_parallel, init_distributed
from allinone.engine.losses import MultiTaskLoss
from allinone.engine.solver import build_lr_scheduler, build_optimizer
from allinone.engine.steps import SandwichStep, SimpleStep
from allinone.engine.trainer import HookBase, NonFiniteLossError, Trainer


class TinyModel(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(4, 3)

    def forward(self, batch):
        return {task: {"logits": self.fc(task_batch["images"])} for task, task_batch in batch.items()}


class RecordingLoss(MultiTaskLoss):
    """The real multi-task loss, remembering this rank's own values."""

    local = []

    def __call__(self, outputs, batch):
        losses = super().__call__(outputs, batch)
        self.local.append({f"{task}/{name}": float(value) for (task, name), value in losses.items()})
        return losses


class RecordLogged(HookBase):
    logged = []

    def after_step(self):
        self.logged.append({f"{task}/{name}": value for (task, name), value in self.trainer.losses.items()})


def batches(rank, nan_at):
    rng = np.random.default_rng(rank)
    for it in range(100):
        images = rng.normal(size=(4, 4)).astype("float32") * (1 + rank)
        if it == nan_at and rank == 1:
            images[0, 0] = np.nan
        yield {"a": {"images": paddle.to_tensor(images), "targets": paddle.to_tensor(rng.integers(0, 3, 4))}}


def main(out, nan_at, step="SimpleStep"):
    rank, world = init_distributed()
    paddle.seed(0)
    model = TinyModel()
    opt_cfg = Config({"name": "Momentum", "momentum": 0.9, "weight_decay": 0.0, "grad_clip_norm": 5.0,
                      "bias_lr_factor": 1.0, "head_lr_scale": {},
                      "lr": {"base_lr": 0.1, "warmup_iters": 0, "eta_min": 0.1}})
    scheduler = build_lr_scheduler(opt_cfg.lr, 10)
    optimizer = build_optimizer(opt_cfg, model, scheduler)
    criterion = RecordingLoss(Config({"a": [{"name": "CrossEntropyLoss"}]}), ["a"])
    step = SandwichStep(num_passes=2) if step == "SandwichStep" else SimpleStep()
    trainer = Trainer(data_parallel(model), criterion, optimizer, scheduler, batches(rank, nan_at), 4, step=step)
    trainer.register_hooks([RecordLogged()])
    error = None
    try:
        trainer.train()
    except NonFiniteLossError as err:
        error = str(err)
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump({"world": world, "local": RecordingLoss.local, "logged": RecordLogged.logged, "error": error,
                   "weight": model.fc.weight.numpy().tolist()}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
