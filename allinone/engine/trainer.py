"""The training loop, split as detectron2 splits it: `TrainerBase` runs iterations and calls hooks; what one
iteration does is a step object (`allinone.engine.steps`, registry STEPS) that the `Trainer` calls with itself.

A step composes the Trainer's building blocks: `next_batch`, `forward_losses` (the criterion's losses plus the ones
the model returns, keyed by (task, name)), `check_losses` (averaged over ranks, so a non-finite loss on one rank
stops every rank at the same iteration, before any backward), `backward` and `update` (loss scaling included).
Adding a behaviour around the loop (LR stepping, checkpoints, logging, evaluation) is a hook; a different update
rule (several passes per update, a per-task backward) is a step class. Neither edits the loop.
"""
import math
import time

import paddle
import paddle.distributed as dist

from .amp import LossScaler
from .checkpointer import ResumeError, capture_rng_state, pack, restore_rng_state
from .events import EventStorage
from .steps import SimpleStep


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the iteration and the task(s)."""


class HookBase:
    """Called by the trainer around the loop; `self.trainer` is set on registration."""

    trainer = None

    def before_train(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass

    def after_train(self):
        pass

    def on_error(self, error):
        """The loop raised `error`; the model still holds the last good state."""


class TrainerBase:
    """Runs iterations `iter .. max_iter - 1` (from 0, or from a resumed iteration) and calls the hooks. `self.iter`
    is the iteration in progress; hooks see it unchanged in `after_step`. Values of the step go to `self.storage`."""

    def __init__(self, max_iter):
        self.iter, self.max_iter = 0, int(max_iter)
        self.hooks = []
        self.storage = EventStorage()

    def register_hooks(self, hooks):
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    def train(self):
        self.storage.iter = self.iter
        try:
            self._call("before_train")
            while self.iter < self.max_iter:
                self.storage.iter = self.iter
                self._call("before_step")
                self.run_step()
                self._call("after_step")
                self.iter += 1
            self._call("after_train")
        except Exception as error:
            for hook in self.hooks:
                hook.on_error(error)
            raise
        finally:
            self.close()

    def _call(self, name):
        for hook in self.hooks:
            getattr(hook, name)()

    def run_step(self):
        raise NotImplementedError

    def close(self):
        """Release what the run holds (loader workers); called when training ends, however it ends."""


class Trainer(TrainerBase):
    """The multi-task trainer: `step.run_step(self)` does one update of `model` from batches of `data_loader`.

    After a step, `self.losses` holds its losses `{(task, name): float}` averaged over ranks, `self.total_loss`
    their sum and `self.lr` its base learning rate; the storage has them as scalars `{task}_{name}`, `total_loss`,
    `lr`, plus `images` (global images per step), `time/step_seconds` and `time/data_seconds`."""

    def __init__(self, model, criterion, optimizer, scheduler, data_loader, max_iter, step=None, amp_dtype=None,
                 scaler=None):
        """`amp_dtype`: None (fp32), 'float16' (with dynamic loss scaling, `scaler` or a default LossScaler) or
        'bfloat16' mixed precision. `step`: an object with `run_step(trainer)` (default SimpleStep)."""
        super().__init__(max_iter)
        self.model, self.criterion = model, criterion
        self.optimizer, self.scheduler = optimizer, scheduler
        self.data_loader = data_loader
        self._batches = iter(data_loader)
        self.step = step or SimpleStep()
        self.amp_dtype = amp_dtype
        self.scaler = scaler if scaler is not None else (LossScaler() if amp_dtype == "float16" else None)
        self.world_size = dist.get_world_size()
        self.losses, self.total_loss, self.lr = {}, 0.0, 0.0
        self._data_seconds = 0.0

    @property
    def module(self):
        """The MultiTaskModel (unwrapped from paddle.DataParallel)."""
        return self.model._layers if isinstance(self.model, paddle.DataParallel) else self.model

    def train(self):
        self.model.train()
        super().train()

    def run_step(self):
        """One update by the step object. On a non-finite loss the model's buffers (BatchNorm running statistics,
        which the failed forward already moved) are put back, so the model is exactly the state before the step."""
        start = time.perf_counter()
        self._data_seconds = 0.0
        # paddle keeps BatchNorm's running mean and variance as parameters that take no gradient, not as buffers
        state = self.module.buffers() + [param for param in self.module.parameters() if param.stop_gradient]
        buffers = [(tensor, tensor.clone()) for tensor in state]
        try:
            self.step.run_step(self)
        except NonFiniteLossError:
            with paddle.no_grad():
                for buffer, saved in buffers:
                    buffer.set_value(saved)
            raise
        self.storage.put_scalars(**{"time/step_seconds": time.perf_counter() - start,
                                    "time/data_seconds": self._data_seconds})

    # ---- building blocks of a step ----
    def next_batch(self):
        """The next `{task: task_batch}` of the loader; the images it holds are counted in the `images` scalar."""
        start = time.perf_counter()
        batch = next(self._batches)
        self._data_seconds += time.perf_counter() - start
        return batch

    def forward_losses(self, batch):
        """{(task, name): scalar Tensor}: the criterion's losses on the model's outputs for `batch`, plus every
        `outputs[task]["losses"]` entry the model computed itself."""
        with paddle.amp.auto_cast(enable=self.amp_dtype is not None, dtype=self.amp_dtype or "float16"):
            outputs = self.model(batch)
            losses = dict(self.criterion(outputs, batch))
        for task, task_outputs in outputs.items():
            extra = task_outputs.get("losses", {}) if isinstance(task_outputs, dict) else {}
            for name, value in extra.items():
                if (task, name) in losses:
                    raise KeyError(f"task {task}: the model returns a loss '{name}' that the criterion also computes")
                losses[(task, name)] = value
        return losses

    def check_losses(self, losses):
        """Average the losses over ranks (a collective call) and raise NonFiniteLossError when one is not finite
        on any rank; returns {(task, name): float}."""
        keys = list(losses)
        values = paddle.stack([losses[key].detach().astype("float32").reshape([]) for key in keys])
        if self.world_size > 1:
            dist.all_reduce(values)
            values = values / self.world_size
        averaged = dict(zip(keys, values.numpy().tolist()))
        bad = [key for key, value in averaged.items() if not math.isfinite(value)]
        if bad:
            tasks = sorted({task for task, _ in bad})
            values = ", ".join(f"{task}_{name}={averaged[(task, name)]}" for task, name in bad)
            raise NonFiniteLossError(f"non-finite loss at iteration {self.iter}: task(s) {tasks} ({values}); the model "
                                     f"was not updated with it")
        return averaged

    def backward(self, losses, weight=1.0):
        """Backward of `weight` x the sum of `losses` (scaled for float16), accumulating into the gradients."""
        total = paddle.add_n(list(losses.values()))
        if weight != 1.0:
            total = total * weight
        if self.scaler is not None:
            total = self.scaler.scale(total)
        total.backward()

    def update(self):
        """One optimizer step on the accumulated gradients (skipped by the scaler on an overflow), then clear them."""
        self.lr = self.optimizer.get_lr()
        if self.scaler is not None:
            self.scaler.step(self.optimizer, self.module.parameters())
            self.storage.put_scalar("loss_scale", self.scaler.scale_value)
        else:
            self.optimizer.step()
        self.optimizer.clear_grad()
        self.storage.put_scalar("lr", self.lr)

    def record_losses(self, averaged, images):
        """Publish a step's rank-averaged losses (from `check_losses`) and its global image count."""
        self.losses = dict(averaged)
        self.total_loss = sum(averaged.values())
        self.storage.put_scalars(**{f"{task}_{name}": value for (task, name), value in averaged.items()})
        self.storage.put_scalars(total_loss=self.total_loss, images=images * self.world_size)

    # ---- checkpoints ----
    def state_dict(self, next_iter):
        """Everything a resumed run needs (see checkpointer.py), to continue at `next_iter`. A collective call:
        every rank must call it, because the data-loader, RNG and step states of all ranks are stored."""
        return {"model": self.step.model_state(self), "optimizer": self.step.optimizer_state(self),
                "lr_scheduler": self.scheduler.state_dict(), "iteration": next_iter,
                "data": pack(self._gather(self.data_loader.state_dict())),
                "rng": pack(self._gather(capture_rng_state())),
                "step": pack(self._gather(self.step.state_dict())),
                "scaler": pack(self.scaler.state_dict() if self.scaler is not None else None)}

    def load_state_dict(self, state, source="the checkpoint"):
        """Restore a `load_training_state` dict: the run continues at `state['iteration']`."""
        saved_world = len(state["rng"])
        if saved_world != self.world_size:
            raise ResumeError(f"{source} was written by {saved_world} process(es) but this run has "
                              f"{self.world_size}: resume with the same number of processes")
        rank = dist.get_rank()
        self.step.load_model_state(self, state["model"])
        self.step.load_optimizer_state(self, state["optimizer"])
        self.scheduler.set_state_dict(state["lr_scheduler"])
        self.data_loader.set_state_dict(state["data"][rank])
        restore_rng_state(state["rng"][rank])
        if state.get("step") is not None:
            self.step.set_state_dict(state["step"][rank])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.set_state_dict(state["scaler"])
        self.iter = int(state["iteration"])
        self._batches = iter(self.data_loader)

    def _gather(self, obj):
        """[obj of rank 0, obj of rank 1, ...]."""
        if self.world_size == 1:
            return [obj]
        gathered = []
        dist.all_gather_object(gathered, obj)
        return gathered

    def close(self):
        close = getattr(self.data_loader, "close", None)
        if close is not None:
            close()
