"""Hooks of the training loop: LR stepping, checkpoints, metric logging (log lines + VisualDL), evaluation."""
import datetime
import logging
import resource
import statistics
from collections import defaultdict, deque

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
    in gathering the state."""

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
        if dist.get_rank() != 0:
            return None
        path = self.checkpointer.save(name, state)
        logger.info("saved checkpoint %s (next iteration %d)", path, next_iter)
        return path


def max_memory_mb():
    """Peak memory of this process: allocated GPU memory on GPU, resident set size on CPU."""
    if paddle.device.get_device().startswith("gpu"):
        return paddle.device.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class ScalarWriter:
    """VisualDL scalars in `logdir` (opened on first use); a no-op without a logdir (ranks other than 0)."""

    def __init__(self, logdir=None):
        self.logdir, self._writer = logdir, None

    def add(self, scalars, step, prefix):
        if not self.logdir:
            return
        if self._writer is None:
            from visualdl import LogWriter

            self._writer = LogWriter(logdir=self.logdir)
        for name, value in scalars.items():
            self._writer.add_scalar(tag=f"{prefix}/{name}", value=float(value), step=step)
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MetricsLogger(HookBase):
    """Every `period` iterations (and the last): a log line with the iteration, each task's losses (medians over
    the window), lr, images/s, ETA and peak memory, and the same values as VisualDL scalars `train/*`."""

    def __init__(self, period, writer=None):
        self.period = period
        self.writer = writer or ScalarWriter()
        self.window = defaultdict(lambda: deque(maxlen=period))
        self.times, self.images = deque(maxlen=period), deque(maxlen=period)

    def after_step(self):
        trainer = self.trainer
        for name, value in trainer.losses.items():
            self.window[name].append(value)
        self.times.append(trainer.step_seconds)
        self.images.append(trainer.step_images)
        it = trainer.iter
        if (it + 1) % self.period == 0 or it + 1 == trainer.max_iter:
            self._write(it)

    def _write(self, it):
        trainer = self.trainer
        seconds = sum(self.times)
        scalars = {name: statistics.median(values) for name, values in self.window.items()}
        scalars["lr"] = trainer.lr
        scalars["images_per_second"] = sum(self.images) / seconds if seconds else 0.0
        scalars["max_mem_mb"] = max_memory_mb()
        eta = datetime.timedelta(seconds=int(seconds / len(self.times) * (trainer.max_iter - it - 1)))
        losses = "  ".join(f"{name}: {value:.4g}" for name, value in scalars.items() if "loss" in name)
        logger.info("iter %d/%d  %s  lr: %.6g  images/s: %.1f  eta: %s  max_mem: %.0fM", it + 1, trainer.max_iter,
                    losses, scalars["lr"], scalars["images_per_second"], eta, scalars["max_mem_mb"])
        self.writer.add(scalars, it + 1, "train")

    def after_train(self):
        self.writer.close()


class EvalHook(HookBase):
    """Every `period` iterations and at the end: `evaluate_fn(model) -> {metric key: value}` on rank 0 (the others
    wait), logged and written to VisualDL as `eval/<key>`. Register it before MetricsLogger, which closes the writer."""

    def __init__(self, period, evaluate_fn, writer=None):
        self.period, self.evaluate_fn = period, evaluate_fn
        self.writer = writer or ScalarWriter()
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
            self.writer.add(self.results, step, "eval")
        if dist.get_world_size() > 1:
            dist.barrier()
