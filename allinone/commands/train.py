"""Train an AllInOne model (heterogeneous multi-task batches, one fused backbone pass) or evaluate a checkpoint
(`ufo-train`, or `python tools/train.py` in a checkout: same command line).

    python tools/train.py -c configs/allinone/tiny_demo.yaml [-o Section.key=value ...] [--resume [PATH]]
    python tools/train.py -c CONFIG --eval-only [--resume PATH]     # the Eval table on a checkpoint
    sh scripts/train.sh CONFIG [args]                               # several processes (GPUs or CPU)

Outputs go to Global.output_dir: checkpoints (model_XXXXXXX.pdparams, model_final.pdparams, last_checkpoint),
config.yaml, log_rank{r}.txt, VisualDL scalars and the evaluation pictures in vdl/. Data root: $FASTREID_DATASETS
(default `datasets`).
"""
import argparse
import os

from ..utils.cli import quiet_third_party

quiet_third_party()

from ..config import ConfigError, load_config  # noqa: E402  (after the quiet set-up)
from ..registry import TRAIN_RUNNERS  # noqa: E402
from ..utils.cli import output_write_error, run_cli, user_errors, writable_dir  # noqa: E402
from ..utils.env import configure_threads, import_paddle  # noqa: E402

DEFAULT_RUNNER = "allinone"  # Global.runner when the config names none


def parse_args(argv=None, prog="ufo-train"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True,
                        help="YAML training config: a path or a packaged name (allinone/tiny_demo)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. -o Train.max_iter=100 (repeatable)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                        help="continue from PATH, or without PATH from the newest checkpoint in Global.output_dir")
    parser.add_argument("--eval-only", action="store_true",
                        help="no training: evaluate the --resume checkpoint (or Train.init_checkpoint) on the Eval "
                             "table")
    return parser.parse_args(argv)


def make_evaluate_fn(cfg, requested=None):
    """The evaluation of evaluation_script.py, in one object: an `EvaluationSuite` (table checked and every test list
    read now; `suite(model)` prints the table and returns {'head.dataset.metric': value}), plus `pictures()`: the
    --vis pictures of its last run, for VisualDL."""
    from ..evaluation.suite import EvaluationSuite

    suite = EvaluationSuite(cfg, requested, requested_from="Train.eval_datasets")
    suite.pictures = lambda: evaluation_pictures(suite.entries, suite.prepared, suite.results)
    return suite


def evaluation_pictures(entries, prepared, results):
    """The --vis pictures of evaluated test sets as (tag, HWC uint8 image); tags stay the same from one
    evaluation to the next (`vis/Market1501_worst1`, `vis/LFW_roc`), so VisualDL shows them over the steps."""
    import re
    import tempfile

    from ..evaluation.evaluators import FeatureEvaluator
    from ..evaluation.visualize import figure_to_array, test_set_pictures

    images = []
    with tempfile.TemporaryDirectory() as folder:
        for entry in entries:
            test_set, evaluator = prepared[entry.name]
            if entry.name not in results or not isinstance(evaluator, FeatureEvaluator):
                continue
            for path in test_set_pictures(folder, entry, test_set, evaluator, evaluator.features(),
                                          results[entry.name]):
                stem = re.sub(r"_query\d+$", "", os.path.splitext(os.path.basename(path))[0])
                images.append((f"vis/{stem}", figure_to_array(path)))
    return images


def run(args):
    """Hand the config to the training program its `Global.runner` names (registry TRAIN_RUNNERS; default
    `allinone`, `train_or_evaluate` below); plugins (`Global.plugins`, installed ones) may register others."""
    cfg = load_config(args.config, args.override)
    configure_threads(cfg.get_path("Global.num_threads"))
    import_paddle()  # after the thread set-up

    from ..plugins import load_config_plugins

    load_config_plugins(cfg)
    try:
        runner = TRAIN_RUNNERS.get(cfg.get_path("Global.runner", DEFAULT_RUNNER))
    except KeyError as err:
        raise ConfigError(f"Global.runner in {cfg.source}: {err.args[0]}") from None
    try:
        return runner(args, cfg)
    except OSError as err:  # a write that the output folder refuses (a full disk, ...) is a user error
        replacement = output_write_error(err, cfg.get_path("Global.output_dir", "."))
        if replacement is None:
            raise
        raise replacement from None


def train_or_evaluate(args, cfg):
    """allinone's training (or `--eval-only` evaluation) of `cfg`: the `allinone` entry of TRAIN_RUNNERS."""
    from .. import data  # noqa: F401  (registers the data sets)
    from ..engine.build import build_trainer, check_training_config, find_resume_checkpoint, step_class
    from ..engine.distributed import init_distributed
    from ..engine.rank_failures import run_reporting_rank_failures
    from ..modeling import build_model
    from ..modeling.checkpoint import load_checkpoint
    from ..utils.env import configure_faiss_threads, resolve_device, seed_everything
    from ..utils.logger import setup_logger

    check_training_config(cfg)
    # the step that trains the model says how it is evaluated (a supernet's step: its named sub-networks)
    wrap_evaluation = step_class(cfg, "SimpleStep").wrap_evaluation
    rank, world_size = init_distributed()
    output_dir = cfg.Global.output_dir
    writable_dir(output_dir, "Global.output_dir")  # before any data is read or a model is built
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
        return wrap_evaluation(make_evaluate_fn(cfg, evaluate_names))(model)
    # evaluation_script.py's EvaluationSuite, built once now (a bad table or a missing test set fails before
    # training), called by the evaluation hook on rank 0
    evaluate_fn = wrap_evaluation(make_evaluate_fn(cfg, evaluate_names)) if cfg.Train.eval_period else None
    trainer = build_trainer(cfg, resume, evaluate_fn)
    if rank == 0:
        cfg.dump(os.path.join(output_dir, "config.yaml"))
    logger.info("training %s on %s x %d process(es): iterations %d..%d, output %s", cfg.source, device, world_size,
                trainer.iter, trainer.max_iter, output_dir)
    # with several ranks, one rank's error ends every rank with that error (not with a collective's time-out)
    run_reporting_rank_failures(trainer.train, output_dir, rank, world_size, lambda: trainer.iter,
                                lambda err: isinstance(err, user_errors()))
    return None


TRAIN_RUNNERS.register(train_or_evaluate, name=DEFAULT_RUNNER)


def main(argv=None, prog="ufo-train"):
    return run_cli(run, parse_args(argv, prog))

