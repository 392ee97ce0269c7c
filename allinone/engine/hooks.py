"""Hooks of the training loop: LR stepping, checkpoints, evaluation, and the writers of the event storage (log
lines, VisualDL)."""
import datetime
import logging
import resource
import statistics

import paddle
import paddle.distributed as dist

from .checkpointer import PERIODIC_NAME
from .trainer import HookBase, NonFiniteLossError

logger = logging.getLogger("allinone.engine")


class LRScheduler(HookBase):
    """Steps the scheduler after every iteration (so iteration i trains at lr(i))."""

    def after_step(self):
        self.trainer.scheduler.step()


class PeriodicCheckpointer(HookBase):
    """`model_{iter:07d}.pdparams` when (iter + 1) % period == 0, `model_final.pdparams` at the end, and on a
    non-finite loss `model_last_good.pdparams` (the state before the bad step). Rank 0 writes; all ranks take part
    in gathering the state. A step whose `checkpoint_parts` splits the state (sharded experts) saves a folder
    `model_...` instead, each rank writing its parts (Checkpointer.save_parts)."""

    def __init__(self, checkpointer, period):
        self.checkpointer, self.period = checkpointer, period

    def after_step(self):
        it = self.trainer.iter
        if self.period and (it + 1) % self.period == 0 and it + 1 < self.trainer.max_iter:
            self._save(PERIODIC_NAME.format(it), it + 1)

    def after_train(self):
        self._save("model_final", self.trainer.max_iter)

    def on_error(self, error):
        if isinstance(error, NonFiniteLossError):
            path = self._save("model_last_good", self.trainer.iter)
            if path:
                logger.error("%s\nwrote the last good state to %s (resuming from it skips the offending batch)",
                             error, path)

    def _save(self, name, next_iter):
        state = self.trainer.state_dict(next_iter)
        parts = self.trainer.step.checkpoint_parts(self.trainer, state)
        if parts is not None:
            path = self.checkpointer.save_parts(name, parts)
        if dist.get_rank() != 0:
            return None
        if parts is None:
            path = self.checkpointer.save(name, state)
        logger.info("saved checkpoint %s (next iteration %d)", path, next_iter)
        return path


def max_memory_mb():
    """Peak memory of this process: allocated GPU memory on GPU, resident set size on CPU."""
    if paddle.device.get_device().startswith("gpu"):
        return paddle.device.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class VisualDLWriter(HookBase):
    """Every `period` iterations and at the end: the scalars the storage received since the last write, as VisualDL
    scalars `train/<name>` (and `eval/<key>` from EvalHook), in its own writer under `logdir`, opened on first use.
    The `time/*` scalars stay in the log lines."""

    def __init__(self, logdir, period):
        self.logdir, self.period = logdir, period
        self._writer, self._written = None, {}

    def after_step(self):
        it = self.trainer.iter
        if (it + 1) % self.period == 0:
            self.write()

    def after_train(self):
        self.write()
        self.close()

    def on_error(self, error):
        self.close()

    def write(self):
        storage = self.trainer.storage
        for name in storage.names():
            if name.startswith("time/"):
                continue
            new = [(it, value) for it, value in storage.history(name) if it > self._written.get(name, -1)]
            if not new:
                continue
            if self._writer is None:
                from visualdl import LogWriter

                self._writer = LogWriter(logdir=self.logdir)
            tag = name if name.startswith("eval/") else f"train/{name}"
            for it, value in new:
                self._writer.add_scalar(tag=tag, value=value, step=it + 1)
            self._written[name] = new[-1][0]
        for name, image, it in storage.pop_images():
            if self._writer is None:
                from visualdl import LogWriter

                self._writer = LogWriter(logdir=self.logdir)
            self._writer.add_image(tag=name, img=image, step=it + 1)
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MetricsLogger(HookBase):
    """Every `period` iterations (and the last): a log line with the iteration, each loss (median over the window),
    lr, images/s, ETA and peak memory, read from the trainer's storage."""

    def __init__(self, period):
        self.period = period

    def after_step(self):
        it = self.trainer.iter
        if (it + 1) % self.period == 0 or it + 1 == self.trainer.max_iter:
            self.write(it)

    def write(self, it):
        trainer, storage = self.trainer, self.trainer.storage
        seconds = storage.window("time/step_seconds", self.period)
        images = storage.window("images", self.period)
        speed = sum(images) / sum(seconds) if seconds and sum(seconds) else 0.0
        eta = datetime.timedelta(seconds=int(statistics.mean(seconds) * (trainer.max_iter - it - 1))) if seconds \
            else datetime.timedelta(0)
        losses = "  ".join(f"{name}: {statistics.median(storage.window(name, self.period)):.4g}"
                           for name in storage.names() if "loss" in name and name != "loss_scale"
                           and storage.window(name, self.period))
        latest_lr = storage.latest("lr")
        memory = max_memory_mb()
        storage.put_scalar("max_mem_mb", memory)
        if seconds:
            storage.put_scalar("images_per_second", speed)
        logger.info("iter %d/%d  %s  lr: %.6g  images/s: %.1f  eta: %s  max_mem: %.0fM", it + 1, trainer.max_iter,
                    losses, latest_lr[1] if latest_lr else 0.0, speed, eta, memory)


class EvalHook(HookBase):
    """Every `period` iterations and at the end: `evaluate_fn(model) -> {metric key: value}` on rank 0 (the others
    wait), logged and put into the storage as `eval/<key>` (writers registered after it write them); when
    `evaluate_fn.pictures()` exists, its (tag, HWC uint8) images go to the storage too."""

    def __init__(self, period, evaluate_fn):
        self.period, self.evaluate_fn = period, evaluate_fn
        self.results = {}

    def after_step(self):
        it = self.trainer.iter
        if self.period and (it + 1) % self.period == 0 and it + 1 < self.trainer.max_iter:
            self._evaluate(it + 1)

    def after_train(self):
        self._evaluate(self.trainer.max_iter)

    def _evaluate(self, step):
        if dist.get_rank() == 0:
            model = self.trainer.module
            model.eval()
            try:
                self.results = self.evaluate_fn(model)
            finally:
                model.train()
            logger.info("evaluation after %d iterations:\n%s", step,
                        "\n".join(f"  {key}: {value:.4f}" for key, value in self.results.items()))
            storage = self.trainer.storage
            for key, value in self.results.items():
                storage.put_scalar(f"eval/{key}", value)
            for name, image in getattr(self.evaluate_fn, "pictures", list)():
                storage.put_image(name, image)  # rank lists, ROC curves: the writers show them
        if dist.get_world_size() > 1:
            dist.barrier()
