"""One launched process of the sharded-expert test: trains the given config for its Train.max_iter steps with the
engine and writes what this rank holds to OUT/rank<r>.json (state-dict keys, parameter count, the parameters the
optimizer holds state for, and its state keys) and, for every checkpoint save, the bytes the saving thread wrote
and the bytes the whole process read meanwhile, as the kernel counts them (/proc/thread-self/io and /proc/self/io:
files and sockets alike); with --resume=PATH, the bytes the resuming thread read.

    python -m paddle.distributed.launch --nproc_per_node 2 shard_worker.py OUT CONFIG [key=value ...] [--resume=PATH]
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine"))


def main(out, config, *overrides):
    import paddle

    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import load_config
    from allinone.engine.build import build_trainer, resume_trainer
    from allinone.engine.distributed import init_distributed
    from allinone.utils.env import seed_everything
    from engine_tools import optimizer_parameter_keys

    rank, _ = init_distributed()
    resume = [item.split("=", 1)[1] for item in overrides if item.startswith("--resume=")]
    overrides = [item for item in overrides if not item.startswith("--resume=")]
    cfg = load_config(config, [f"Global.output_dir={os.path.join(out, 'run')}", *overrides])
    seed_everything(cfg.Global.seed, rank)
    trainer = build_trainer(cfg)
    resume_read = None
    if resume:  # as build_trainer(cfg, resume) does last, counting the bytes this thread reads meanwhile
        before = io_counters("/proc/thread-self/io")["rchar"]
        resume_trainer(trainer, resume[0])
        resume_read = io_counters("/proc/thread-self/io")["rchar"] - before
    saves = measure_saves(trainer)
    if rank == 0:
        cfg.dump(os.path.join(out, "run", "config.yaml"))  # as tools/train.py: heads sized by the data
    trainer.train()
    module, optimizer = trainer.module, trainer.optimizer
    state = module.state_dict()
    report = {"keys": sorted(state), "numel": int(sum(value.size for value in state.values())),
              "optimizer_params": optimizer_parameter_keys(module, optimizer),
              "optimizer_state": sorted(key for key, value in optimizer.state_dict().items()
                                        if isinstance(value, paddle.Tensor)),
              "saves": saves, "resume_read": resume_read}
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


def io_counters(path):
    with open(path, encoding="ascii") as f:
        return {name: int(value) for name, value in (line.split(":") for line in f)}


def measure_saves(trainer):
    """[{name, written, read}] filled in at each save of the trainer's PeriodicCheckpointer: `written` the bytes
    this (the saving) thread wrote during it, `read` the bytes the whole process read during it."""
    hook = next(hook for hook in trainer.hooks if type(hook).__name__ == "PeriodicCheckpointer")
    save, saves = hook._save, []

    def measured(name, next_iter):
        thread, process = io_counters("/proc/thread-self/io"), io_counters("/proc/self/io")
        path = save(name, next_iter)
        saves.append({"name": name, "written": io_counters("/proc/thread-self/io")["wchar"] - thread["wchar"],
                      "read": io_counters("/proc/self/io")["rchar"] - process["rchar"]})
        return path

    hook._save = measured
    return saves


if __name__ == "__main__":
    main(*sys.argv[1:])
