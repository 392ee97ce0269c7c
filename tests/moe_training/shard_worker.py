"""One launched process of the sharded-expert test: trains the given config for its Train.max_iter steps with the
engine and writes what this rank holds to OUT/rank<r>.json (state-dict keys, parameter count, the parameters the
optimizer holds state for, and its state keys).

    python -m paddle.distributed.launch --nproc_per_node 2 shard_worker.py OUT CONFIG [key=value ...]
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine"))


def main(out, config, *overrides):
    import paddle

    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import load_config
    from allinone.engine.build import build_trainer
    from allinone.engine.distributed import init_distributed
    from allinone.utils.env import seed_everything
    from engine_tools import optimizer_parameter_keys

    rank, _ = init_distributed()
    cfg = load_config(config, [f"Global.output_dir={os.path.join(out, 'run')}", *overrides])
    seed_everything(cfg.Global.seed, rank)
    trainer = build_trainer(cfg)
    if rank == 0:
        cfg.dump(os.path.join(out, "run", "config.yaml"))  # as tools/train.py: heads sized by the data
    trainer.train()
    module, optimizer = trainer.module, trainer.optimizer
    state = module.state_dict()
    report = {"keys": sorted(state), "numel": int(sum(value.size for value in state.values())),
              "optimizer_params": optimizer_parameter_keys(module, optimizer),
              "optimizer_state": sorted(key for key, value in optimizer.state_dict().items()
                                        if isinstance(value, paddle.Tensor))}
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
