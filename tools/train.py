"""Train an AllInOne model (heterogeneous multi-task batches, one fused backbone pass) or evaluate a checkpoint.

    python tools/train.py -c configs/allinone/tiny_demo.yaml [-o Section.key=value ...] [--resume [PATH]]
    python tools/train.py -c CONFIG --eval-only [--resume PATH]     # the Eval table on a checkpoint
    sh scripts/train.sh CONFIG [args]                               # several processes (GPUs or CPU)

Outputs go to Global.output_dir: checkpoints (model_XXXXXXX.pdparams, model_final.pdparams, last_checkpoint),
config.yaml, log_rank{r}.txt, VisualDL scalars in vdl/. Data root: $FASTREID_DATASETS (default `datasets`).
"""
import argparse
import os
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing the package

from allinone.config import ConfigError, load_config  # noqa: E402
from allinone.utils.cli import run_cli  # noqa: E402
from allinone.utils.env import configure_threads  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True, help="YAML training config")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. -o Train.max_iter=100 (repeatable)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                        help="continue from PATH, or without PATH from the newest checkpoint in Global.output_dir")
    parser.add_argument("--eval-only", action="store_true",
                        help="no training: evaluate the --resume checkpoint (or Train.init_checkpoint) on the Eval "
                             "table")
    return parser.parse_args(argv)


def make_evaluate_fn(cfg, requested=None):
    """model -> OrderedDict('{head}.{dataset}.{metric}' -> value) over the Eval table, with the steps of
    evaluation_script.py (test sets and evaluators prepared once)."""
    from allinone.evaluation import suite as evaluation

    entries = evaluation.select_test_sets(cfg.Eval, requested)
    root = os.environ.get("FASTREID_DATASETS", "datasets")
    prepared = OrderedDict((entry.name, evaluation.prepare(entry, root)) for entry in entries)

    def evaluate(model):
        results = evaluation.evaluate_all(model, entries, prepared, cfg.Eval.batch_size, cfg.Eval.num_workers)
        print(evaluation.results_table(entries, results), flush=True)
        return evaluation.flat_results(entries, prepared, results)

    return evaluate


def run(args):
    cfg = load_config(args.config, args.override)
    if "Data" in cfg:  # a traffic three-task config (configs/traffic/, docs/traffic.md)
        from oneforall.traffic.train import run as run_traffic

        return run_traffic(args)
    configure_threads(cfg.get_path("Global.num_threads"))
    import paddle  # noqa: F401  (after the thread set-up)

    import allinone.data  # noqa: F401  (registers the data sets)
    import allinone.evaluation  # noqa: F401  (registers the evaluators)
    import oneforall.moe_training  # noqa: F401  (registers the task-MoE backbone, step, heads, data and losses)
    from allinone.engine.build import build_trainer, check_training_config, find_resume_checkpoint
    from allinone.engine.distributed import init_distributed
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint
    from allinone.utils.env import configure_faiss_threads, resolve_device, seed_everything
    from allinone.utils.logger import setup_logger

    check_training_config(cfg)
    rank, world_size = init_distributed()
    output_dir = cfg.Global.output_dir
    logger = setup_logger(output_dir, rank=rank)
    if args.eval_only or cfg.Train.eval_period:
        configure_faiss_threads()  # the evaluators search with faiss
    device = resolve_device(cfg.Global.device)
    seed_everything(cfg.Global.seed, rank)
    resume = find_resume_checkpoint(output_dir, args.resume) if args.resume is not None else None
    if args.resume == "" and resume is None and not args.eval_only:
        logger.warning("--resume: no checkpoint in %s yet; starting from iteration 0", output_dir)
    evaluate_names = cfg.Train.eval_datasets
    if args.eval_only:
        weights = resume or cfg.Train.init_checkpoint
        if not weights:
            raise ConfigError("--eval-only needs weights: --resume PATH, a checkpoint in Global.output_dir "
                              "with --resume, or Train.init_checkpoint")
        model = build_model(cfg)
        logger.info("%s", load_checkpoint(model, weights))
        model.eval()
        return make_evaluate_fn(cfg, evaluate_names)(model)
    evaluate_fn = make_evaluate_fn(cfg, evaluate_names) if cfg.Train.eval_period else None
    trainer = build_trainer(cfg, resume, evaluate_fn)
    if rank == 0:
        cfg.dump(os.path.join(output_dir, "config.yaml"))
    logger.info("training %s on %s x %d process(es): iterations %d..%d, output %s", cfg.source, device, world_size,
                trainer.iter, trainer.max_iter, output_dir)
    trainer.train()
    return None


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
