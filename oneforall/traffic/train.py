"""Train the traffic three-task model in allinone's engine, or evaluate a checkpoint on the val split.

    python -m oneforall.traffic.train -c configs/traffic/tiny_cpu.yaml [-o Section.key=value ...] [--resume [PATH]]
    python -m oneforall.traffic.train -c CONFIG --eval-only --resume PATH
    sh scripts/train.sh configs/traffic/tiny_cpu.yaml [args]      # tools/train.py hands a traffic config here
                                                                  # (Global.runner: traffic);
                                                                  # NPROC=2 CPU processes or GPUS=... data parallel

The recipe's step (`PerTaskStep`, in steps.py): one batch of every task, a separate forward and backward per task (gradients
accumulate), one gradient all-reduce over the ranks, global-norm clipping and one AdamW update. Outputs (checkpoints,
log, config.yaml) go to Global.output_dir. Config sections: docs/traffic.md ("Training").
"""
import argparse
import logging
import os
import sys

from allinone.config import ConfigError, load_config

logger = logging.getLogger("oneforall.traffic")

SECTIONS = ("Global", "Model", "Data", "Train", "Optimizer")
TRAIN_KEYS = ("max_iter", "checkpoint_period", "checkpoint_keep", "log_period", "eval_period", "init_checkpoint",
              "step")
DATA_KEYS = ("root", "num_workers", "train", "eval")
GLOBAL_KEYS = ("seed", "num_threads", "output_dir", "plugins", "runner")  # plugins, runner: docs/design.md
EVAL_KEYS = ("batch_size", "transform", "num_classes")


def no_criterion(outputs, batch):
    """The traffic heads compute their losses themselves (outputs[task]["losses"])."""
    return {}


def check_config(cfg):
    """Raise ConfigError naming any unknown section or key (the model and data sets refuse unknown arguments when
    they are built)."""
    from allinone.engine.solver import LR_KEYS, OPTIMIZER_KEYS

    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown} in {cfg.source}; allowed: {list(SECTIONS)}")
    for section in SECTIONS[1:]:
        if section not in cfg:
            raise ConfigError(f"{cfg.source}: a traffic training config needs a '{section}' section")
    if "Global" in cfg:
        cfg.Global.check_keys(GLOBAL_KEYS, "Global")
    cfg.Train.check_keys(TRAIN_KEYS, "Train")
    cfg.Data.check_keys(DATA_KEYS, "Data")
    cfg.Optimizer.check_keys(OPTIMIZER_KEYS, "Optimizer")
    cfg.Optimizer.lr.check_keys(LR_KEYS, "Optimizer.lr")
    for task, spec in (cfg.Data.get("eval") or {}).items():
        spec.check_keys(EVAL_KEYS, f"Data.eval.{task}")


def build_traffic_trainer(cfg, resume_path=None, evaluate_fn=None, root=None):
    """A allinone Trainer over the traffic model, data and recipe of `cfg`, resumed from `resume_path` if given."""
    from allinone.data.build import build_train_loader
    from allinone.engine.build import build_step, resume_trainer, training_hooks
    from allinone.engine.solver import build_lr_scheduler, build_optimizer
    from allinone.engine.trainer import Trainer
    from allinone.modeling.checkpoint import load_checkpoint
    from allinone.modeling.sync_batch_norm import synchronise_batch_norm

    from . import data as _data  # noqa: F401  (registers the train datasets)
    from . import loader as _loader  # noqa: F401  (registers ClassAwareSampler)
    from .model import build_traffic_model
    from .predict import data_root
    from .steps import broadcast_parameters  # registers PerTaskStep

    check_config(cfg)
    train_cfg = cfg.Train
    try:
        data = build_train_loader(cfg.Data.train.to_dict(), seed=int(cfg.Global.seed),
                                  num_workers=int(cfg.Data.get("num_workers") or 0), root=data_root(cfg, root))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"Data.train in {cfg.source}: {err}") from None
    model = synchronise_batch_norm(build_traffic_model(cfg.Model))  # SyncBatchNorm as the baseline (> 1 rank)
    if train_cfg.get("init_checkpoint") and resume_path is None:
        logger.info("%s", load_checkpoint(model, train_cfg.init_checkpoint, strict=False))
    broadcast_parameters(model)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, int(train_cfg.max_iter))
    optimizer = build_optimizer(cfg.Optimizer, model, scheduler)
    step = build_step(cfg, "PerTaskStep")
    trainer = Trainer(model, no_criterion, optimizer, scheduler, data, int(train_cfg.max_iter), step=step)
    trainer.register_hooks(training_hooks(cfg, evaluate_fn))
    if resume_path:
        resume_trainer(trainer, resume_path)
    return trainer


def run(args, cfg=None):
    """Train (or with `args.eval_only` evaluate) the traffic config `cfg` (read from `args.config` when not given).
    oneforall.plugin registers it as the `traffic` entry of TRAIN_RUNNERS: tools/train.py hands it a config with
    `Global.runner: traffic`."""
    from allinone.engine.build import find_resume_checkpoint
    from allinone.engine.distributed import init_distributed
    from allinone.modeling.checkpoint import load_checkpoint
    from allinone.utils.env import configure_threads, seed_everything
    from allinone.utils.logger import setup_logger

    from .model import build_traffic_model
    from .predict import data_root, make_evaluate_fn

    if cfg is None:
        cfg = load_config(args.config, args.override)
    configure_threads(cfg.get_path("Global.num_threads"))
    check_config(cfg)
    rank, world_size = init_distributed()
    output_dir = cfg.Global.output_dir
    log = setup_logger(output_dir, rank=rank)
    seed_everything(cfg.Global.seed, rank)
    resume = find_resume_checkpoint(output_dir, args.resume) if args.resume is not None else None
    evaluate_fn = make_evaluate_fn(cfg, data_root(cfg, getattr(args, "root", None)))
    if args.eval_only:
        weights = resume or cfg.Train.get("init_checkpoint")
        if not weights:
            raise ConfigError("--eval-only needs weights: --resume PATH or Train.init_checkpoint")
        model = build_traffic_model(cfg.Model)
        log.info("%s", load_checkpoint(model, weights))
        results = evaluate_fn(model)
        print(results, flush=True)
        return results
    trainer = build_traffic_trainer(cfg, resume, evaluate_fn if cfg.Train.get("eval_period") else None,
                                    getattr(args, "root", None))
    if rank == 0:
        cfg.dump(os.path.join(output_dir, "config.yaml"))
    log.info("training %s on %d process(es): iterations %d..%d, output %s", cfg.source, world_size, trainer.iter,
             trainer.max_iter, output_dir)
    trainer.train()
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, help="YAML traffic training config")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                        help="continue from PATH, or without PATH from the newest checkpoint in Global.output_dir")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the --resume checkpoint on the val split")
    parser.add_argument("--root", default=None, help="data root (default Data.root or $FASTREID_DATASETS)")
    from allinone.utils.cli import run_cli

    return run_cli(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
