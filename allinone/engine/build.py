"""From a config to a ready Trainer: data, model (heads sized by the data), losses, solver, hooks, resume.

Sections read here: `Global` (seed, output_dir), `Train` (loop, checkpoints, logging, AMP), `DataLoader.train`
(tasks for `allinone.data.build_train_loader`), `Loss`, `Optimizer`; `Model` goes to `build_model`. Unknown keys
in these sections are errors naming the key.
"""
import logging
import os

import paddle

from ..config import ConfigError
from ..modeling.checkpoint import load_checkpoint
from .checkpointer import Checkpointer, checkpoint_parts, load_training_state
from .distributed import data_parallel
from ..registry import STEPS
from . import steps as _steps  # noqa: F401  (registers the step classes)
from .hooks import EvalHook, LRScheduler, MetricsLogger, PeriodicCheckpointer, VisualDLWriter
from .losses import MultiTaskLoss
from .solver import LR_KEYS, OPTIMIZER_KEYS, build_lr_scheduler, build_optimizer
from .trainer import Trainer

logger = logging.getLogger("allinone.engine")

SECTIONS = ("Global", "Model", "Eval", "Train", "DataLoader", "Loss", "Optimizer")
# plugins: modules to import (allinone/plugins.py); runner: the program tools/train.py hands the config to
GLOBAL_KEYS = ("device", "seed", "num_threads", "output_dir", "plugins", "runner")
TRAIN_KEYS = ("max_iter", "checkpoint_period", "checkpoint_keep", "log_period", "eval_period", "eval_datasets",
              "amp", "init_checkpoint", "step")
# integer keys of Train and the least value each takes (a float such as 10.5 is refused, not truncated)
TRAIN_INTEGERS = {"max_iter": 1, "checkpoint_period": 0, "checkpoint_keep": 0, "log_period": 1, "eval_period": 0}
AMP_KEYS = ("enabled", "dtype")
AMP_DTYPES = ("float16", "bfloat16")
TRAIN_LOADER_KEYS = ("mode", "num_workers", "tasks")


def check_training_config(cfg):
    """Raise ConfigError on an unknown section or key of the training sections (the model checks its own)."""
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown} in {cfg.source}; allowed: {list(SECTIONS)} (a config of "
                          f"another training program names it in Global.runner)")
    for section in ("Train", "DataLoader", "Loss", "Optimizer"):
        if section not in cfg:
            raise ConfigError(f"{cfg.source}: a training config needs a '{section}' section")
    cfg.Global.check_keys(GLOBAL_KEYS, "Global")
    cfg.Train.check_keys(TRAIN_KEYS, "Train")
    cfg.Train.amp.check_keys(AMP_KEYS, "Train.amp")
    cfg.Optimizer.check_keys(OPTIMIZER_KEYS, "Optimizer")
    cfg.Optimizer.lr.check_keys(LR_KEYS, "Optimizer.lr")
    cfg.DataLoader.check_keys(("train",), "DataLoader")
    cfg.DataLoader.train.check_keys(TRAIN_LOADER_KEYS, "DataLoader.train")
    for key, least in TRAIN_INTEGERS.items():
        value = cfg.Train.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"Train.{key} in {cfg.source} must be an integer >= {least}, got {value!r}")
    workers = [("DataLoader.train.num_workers", cfg.DataLoader.train.get("num_workers", 0))]
    workers += [(f"DataLoader.train.tasks.{task}.num_workers", spec["num_workers"])
                for task, spec in (cfg.DataLoader.train.get("tasks") or {}).items()
                if isinstance(spec, dict) and spec.get("num_workers") is not None]
    for key, value in workers:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} in {cfg.source} must be an integer >= 0 (data-loading worker processes), "
                              f"got {value!r}")
    step_class(cfg, "SimpleStep")
    if cfg.Train.amp.enabled and cfg.Train.amp.dtype not in AMP_DTYPES:
        raise ConfigError(f"Train.amp.dtype must be one of {AMP_DTYPES}, got '{cfg.Train.amp.dtype}'")


def build_train_data(cfg):
    """The multi-task train loader of `DataLoader.train` (data root: $FASTREID_DATASETS)."""
    from ..data import build_train_loader

    loader_cfg = cfg.DataLoader.train
    try:
        return build_train_loader(loader_cfg.tasks.to_dict(), mode=loader_cfg.mode, seed=int(cfg.Global.seed),
                                  num_workers=int(loader_cfg.num_workers))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"DataLoader.train in {cfg.source}: {err}") from None


def size_heads(cfg, num_classes):
    """Set each training head's num_classes from its task's data (the original's auto_adjust_cfg)."""
    task_to_head = cfg.Model.get("task_to_head") or {}
    sized = {}
    for task, count in num_classes.items():
        head = task_to_head.get(task, task)
        if head not in cfg.Model.heads:
            raise ConfigError(f"training task '{task}' maps to head '{head}', which Model.heads does not have "
                              f"({list(cfg.Model.heads)})")
        if head in sized:
            raise ConfigError(f"tasks '{sized[head]}' and '{task}' both train head '{head}': give each task its own")
        sized[head] = task
        cfg.Model.heads[head].num_classes = int(count)


def build_trainer(cfg, resume_path=None, evaluate_fn=None):
    """A Trainer for `cfg` (checked with check_training_config), resumed from `resume_path` if given.
    `evaluate_fn(model) -> {key: value}` runs every `Train.eval_period` iterations and at the end (period > 0)."""
    check_training_config(cfg)
    train_cfg, output_dir = cfg.Train, cfg.Global.output_dir
    if train_cfg.amp.enabled and not paddle.device.get_device().startswith("gpu"):
        raise ConfigError("Train.amp.enabled needs a GPU (mixed precision is off on CPU): "
                          "set -o Train.amp.enabled=false")
    data = build_train_data(cfg)
    size_heads(cfg, data.num_classes)
    step = build_step(cfg, "SimpleStep")
    model = step.build_model(cfg)  # the step may build a part of the model per process (sharded experts)
    if train_cfg.init_checkpoint and resume_path is None:
        logger.info("%s", load_checkpoint(model, train_cfg.init_checkpoint, strict=False))
    loss_fn = MultiTaskLoss(cfg.Loss, data.tasks)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, int(train_cfg.max_iter))
    optimizer = build_optimizer(cfg.Optimizer, model, scheduler)
    # a step with `data_parallel = False` averages the gradients over ranks itself (oneforall's TaskMoEStep)
    wrapped = data_parallel(model, find_unused_parameters=cfg.DataLoader.train.mode == "homogeneous") \
        if getattr(step, "data_parallel", True) else model
    trainer = Trainer(wrapped, loss_fn, optimizer, scheduler, data, int(train_cfg.max_iter), step=step,
                      amp_dtype=train_cfg.amp.dtype if train_cfg.amp.enabled else None)
    trainer.register_hooks(training_hooks(cfg, evaluate_fn))
    if resume_path:
        resume_trainer(trainer, resume_path)
    return trainer


def step_class(cfg, default):
    """The class `Train.step.name` names (registry STEPS, plugins' steps included; `default` when the key is
    absent); a ConfigError naming Train.step and what is registered otherwise."""
    step = cfg.Train.get("step") or {"name": default}
    if not isinstance(step, dict) or not isinstance(step.get("name"), str):
        raise ConfigError(f"Train.step in {cfg.source} must be {{name: a STEPS entry, ...}}, got {step!r}")
    try:
        return STEPS.get(step["name"])
    except KeyError as err:
        raise ConfigError(f"Train.step.name in {cfg.source}: {err.args[0]}") from None


def build_step(cfg, default):
    """The `Train.step` of `cfg` (the class `step_class` finds, built with the entry's other keys)."""
    cls = step_class(cfg, default)
    step = dict(cfg.Train.get("step") or {"name": default})
    name = step.pop("name")
    try:
        return cls(**step)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"Train.step in {cfg.source}: building STEPS '{name}': {err}") from None


def training_hooks(cfg, evaluate_fn=None):
    """The hooks of every training command, in their order: LR schedule, checkpoints (Train.checkpoint_period /
    checkpoint_keep into Global.output_dir), evaluation (every Train.eval_period when `evaluate_fn` is given), log
    lines and, on rank 0, VisualDL scalars under `<output_dir>/vdl` (every Train.log_period)."""
    train_cfg, output_dir = cfg.Train, cfg.Global.output_dir
    rank = paddle.distributed.get_rank()
    hooks = [LRScheduler(),  # first: checkpoints store the scheduler as the next iteration needs it
             PeriodicCheckpointer(Checkpointer(output_dir, int(train_cfg.get("checkpoint_keep") or 1),
                                               clean=rank == 0), int(train_cfg.checkpoint_period))]
    if evaluate_fn is not None and train_cfg.get("eval_period"):
        hooks.append(EvalHook(int(train_cfg.eval_period), evaluate_fn))
    # writers last: they read what the step and the hooks before them put into the storage
    hooks.append(MetricsLogger(int(train_cfg.log_period)))
    if rank == 0:
        hooks.append(VisualDLWriter(os.path.join(output_dir, "vdl"), int(train_cfg.log_period)))
    return hooks


def resume_trainer(trainer, resume_path):
    """Continue `trainer` from the training checkpoint at `resume_path` (of a sharded checkpoint folder, the parts
    the step asks for: `parts_to_read`)."""
    parts = trainer.step.parts_to_read(trainer, checkpoint_parts(resume_path)) if os.path.isdir(resume_path) \
        else None
    if parts is not None:
        logger.info("reading the parts %s of %s", parts, resume_path)
    trainer.load_state_dict(load_training_state(resume_path, parts), source=resume_path)
    logger.info("resumed from %s at iteration %d", resume_path, trainer.iter)


def find_resume_checkpoint(output_dir, path=None):
    """`path` if given, else the newest checkpoint in `output_dir` (None when there is none)."""
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"--resume {path}: no such checkpoint file or folder")
        if os.path.isdir(path):
            checkpoint_parts(path)  # a ResumeError naming the missing file of an interrupted save
        return path
    return Checkpointer(output_dir).latest()
