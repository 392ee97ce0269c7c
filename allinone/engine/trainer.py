"""The training loop: fetch one (heterogeneous) batch, one fused forward, the summed losses, backward, step.

Everything optional (LR stepping, checkpoints, logging, evaluation) is a hook; adding a behaviour never edits the
loop. Losses are averaged over ranks every step, so every rank sees the same values and a non-finite loss stops all
ranks at the same iteration.
"""
import math
import time

import paddle
import paddle.distributed as dist

from .checkpointer import capture_rng_state, pack, restore_rng_state


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the iteration and the task(s)."""


class HookBase:
    """Called by the Trainer around the loop; `self.trainer` is set on registration."""

    trainer = None

    def before_train(self):
        pass

    def after_step(self):
        pass

    def after_train(self):
        pass

    def on_error(self, error):
        """The loop raised `error`; the model still holds the last good state."""


class Trainer:
    """Runs iterations `iter .. max_iter - 1` (from 0, or from a resumed iteration). `self.iter` is the iteration in
    progress; after it finishes the hooks see `self.iter` unchanged, the losses of that step in `self.losses`
    (rank-averaged floats) and its base learning rate in `self.lr`."""

    def __init__(self, model, loss_fn, optimizer, scheduler, data_loader, max_iter, amp_dtype=None):
        """`amp_dtype`: None (fp32), 'float16' (with loss scaling) or 'bfloat16' mixed precision."""
        self.model, self.loss_fn = model, loss_fn
        self.optimizer, self.scheduler = optimizer, scheduler
        self.data_loader = data_loader
        self._batches = iter(data_loader)
        self.max_iter, self.iter = max_iter, 0
        self.amp_dtype = amp_dtype
        self.scaler = paddle.amp.GradScaler() if amp_dtype == "float16" else None
        self.world_size = dist.get_world_size()
        self.hooks = []
        self.losses, self.lr, self.step_seconds, self.data_seconds, self.step_images = {}, 0.0, 0.0, 0.0, 0

    def register_hooks(self, hooks):
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    @property
    def module(self):
        """The MultiTaskModel (unwrapped from paddle.DataParallel)."""
        return self.model._layers if isinstance(self.model, paddle.DataParallel) else self.model

    def train(self):
        self.model.train()
        for hook in self.hooks:
            hook.before_train()
        try:
            while self.iter < self.max_iter:
                self.run_step()
                for hook in self.hooks:
                    hook.after_step()
                self.iter += 1
        except Exception as error:
            for hook in self.hooks:
                hook.on_error(error)
            raise
        for hook in self.hooks:
            hook.after_train()

    def run_step(self):
        start = time.perf_counter()
        batch = next(self._batches)
        self.data_seconds = time.perf_counter() - start
        inputs = {task: {"images": data["images"], "targets": data["targets"]} for task, data in batch.items()}
        with paddle.amp.auto_cast(enable=self.amp_dtype is not None, dtype=self.amp_dtype or "float16"):
            losses = self.loss_fn(self.model(inputs), batch)
        total = paddle.add_n(list(losses.values()))
        self.losses = self._rank_average(losses)
        self._check_finite()
        self.lr = self.optimizer.get_lr()
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        self.step_images = sum(data["images"].shape[0] for data in batch.values()) * self.world_size
        self.step_seconds = time.perf_counter() - start

    def _rank_average(self, losses):
        """{name: float}: each loss averaged over ranks, plus `total_loss`."""
        values = paddle.stack([loss.detach().astype("float32").reshape([]) for loss in losses.values()])
        if self.world_size > 1:
            dist.all_reduce(values)
            values = values / self.world_size
        averaged = dict(zip(losses, values.numpy().tolist()))
        averaged["total_loss"] = sum(averaged.values())
        return averaged

    def _check_finite(self):
        bad = [name for name, value in self.losses.items() if name != "total_loss" and not math.isfinite(value)]
        if bad:
            tasks = sorted({name.rsplit("_loss_", 1)[0] for name in bad})
            values = ", ".join(f"{name}={self.losses[name]}" for name in bad)
            raise NonFiniteLossError(f"non-finite loss at iteration {self.iter}: task(s) {tasks} ({values}); the model "
                                     f"was not updated with it")

    def state_dict(self, next_iter):
        """Everything a resumed run needs (see checkpointer.py), to continue at `next_iter`. A collective call:
        every rank must call it, because the data-loader and RNG states of all ranks are stored."""
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.scheduler.state_dict(), "iteration": next_iter,
                "data": pack(self._gather(self.data_loader.state_dict())),
                "rng": pack(self._gather(capture_rng_state()))}

    def load_state_dict(self, state):
        """Restore a `load_training_state` dict: the run continues at `state['iteration']`."""
        saved_world = len(state["rng"])
        if saved_world != self.world_size:
            raise ValueError(f"the checkpoint was written by {saved_world} rank(s) but this run has "
                             f"{self.world_size}: resume with the same number of processes")
        rank = dist.get_rank()
        self.module.set_state_dict(state["model"])
        self.optimizer.set_state_dict(state["optimizer"])
        self.scheduler.set_state_dict(state["lr_scheduler"])
        self.data_loader.set_state_dict(state["data"][rank])
        restore_rng_state(state["rng"][rank])
        self.iter = int(state["iteration"])

    def _gather(self, obj):
        """[obj of rank 0, obj of rank 1, ...]."""
        if self.world_size == 1:
            return [obj]
        gathered = []
        dist.all_gather_object(gathered, obj)
        return gathered
