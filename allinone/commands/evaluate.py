"""Evaluate an AllInOne checkpoint on the test sets of a config's evaluation table (`ufo-eval`, or
`python evaluation_script.py` in a checkout: same command line).

    ufo-eval --model_path allinone_vitlarge.pdmodel [--test_datasets Market1501,SOP] [--vis DIR]

The original's command line (--model_path, --batchsize, --test_datasets) plus --config (a path or a packaged name
such as allinone/vitlarge_eval), --output, --device, --num_workers, --allow_partial, --vis and -o overrides. Every
test set is one row of `Eval.datasets` (dataset reader, head, evaluator, published numbers), so adding one is a config
edit. Data root: $FASTREID_DATASETS (default `datasets`).
Exit codes: 0 done, 2 a mistake in the input (one `error:` line), 1 a bug (traceback).
"""
import argparse
import json
import logging
import os
import sys

from ..utils.cli import quiet_third_party

quiet_third_party()

from ..config import load_config  # noqa: E402  (after the quiet set-up)
from ..utils.cli import (non_negative_int, positive_int, run_cli, writable_file,  # noqa: E402
                         write_text_atomically)
from ..utils.env import configure_threads, import_paddle  # noqa: E402

ENGINES = ("auto", "dygraph", "inference")  # allinone.evaluation.embedders.ENGINES (imported after the thread set-up)

DEFAULT_CONFIG = "allinone/vitlarge_eval"
logger = logging.getLogger("allinone.evaluation")


def parse_args(argv=None, prog="ufo-eval"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--model_path", required=True,
                        help="checkpoint: the official .pdmodel state dict, a file of ours, or a sharded task-MoE "
                             "checkpoint folder")
    parser.add_argument("--test_datasets", default=None,
                        help="one name or a comma-separated list of Eval.datasets / Eval.optional_datasets names "
                             "(default: all of Eval.datasets)")
    parser.add_argument("--batchsize", type=positive_int, default=None,
                        help="images per forward (default Eval.batch_size)")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"YAML config: a path, or the name of a packaged config such as allinone/tiny_eval "
                             f"(default {DEFAULT_CONFIG})")
    parser.add_argument("--output", default=None, help="write all metrics as JSON, keyed task.dataset.metric")
    parser.add_argument("--num_workers", type=non_negative_int, default=None,
                        help="data-loading workers (default Eval.num_workers)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default=None,
                        help="default: Global.device (auto = gpu when available)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="how test images become features: dygraph (model.embed), inference (Paddle Inference "
                             "from the model exported once per run: oneDNN on the CPU), auto (default: inference on "
                             "the CPU, dygraph when the model cannot be exported or on a GPU)")
    parser.add_argument("--tensorrt", action="store_true",
                        help="with --engine inference on a GPU: run the exported model through TensorRT")
    parser.add_argument("--allow_partial", action="store_true",
                        help="load a checkpoint whose keys do not all fit (reported), instead of stopping")
    parser.add_argument("--vis", default=None, metavar="DIR",
                        help="also draw pictures into DIR: rank lists of the worst and best queries (ReID, SOP), ROC "
                             "and threshold curves (faces), measured vs published bars")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. -o Eval.batch_size=32 (repeatable)")
    return parser.parse_args(argv)


def run(args):
    cfg = load_config(args.config, args.override)
    if args.output:
        writable_file(args.output)  # before hours of inference
    if args.vis:
        writable_file(os.path.join(args.vis, "rank_lists.png"), "--vis")
    configure_threads(cfg.get_path("Global.num_threads"))
    import_paddle()  # after the thread set-up (without Paddle's OMP_NUM_THREADS banner)

    from .. import build_model
    from ..evaluation.suite import EvaluationSuite
    from ..modeling.checkpoint import load_checkpoint
    from ..plugins import load_config_plugins
    from ..utils.env import configure_faiss_threads, resolve_device, seed_everything
    from ..utils.keys import describe, load_reporting_keys
    from ..utils.logger import setup_logger

    load_config_plugins(cfg)  # Global.plugins: e.g. the heads of an extracted OneForAll model (docs/design.md)
    setup_logger()
    configure_faiss_threads()
    device = resolve_device(args.device or cfg.get_path("Global.device", "auto"))
    seed_everything(cfg.get_path("Global.seed", 0))
    # reads every test list first: a missing folder stops the run in seconds, not after hours of inference
    suite = EvaluationSuite(cfg, args.test_datasets, batch_size=args.batchsize, num_workers=args.num_workers,
                            engine=args.engine, tensorrt=args.tensorrt)
    model = build_model(cfg)
    suite.check_heads(model)
    key_file = os.path.splitext(args.output)[0] + ".keys.txt" if args.output else None
    report = load_reporting_keys(load_checkpoint, model, args.model_path, strict=not args.allow_partial,
                                 key_file=key_file)
    logger.info("%s", describe(report, key_file))
    model.eval()
    logger.info("evaluating %s on %s (data root %s, batch size %d, engine %s)", args.model_path, device, suite.root,
                suite.batch_size, args.engine)
    flat = suite(model)
    if args.output:
        write_text_atomically(args.output, json.dumps(flat, indent=1))
        logger.info("metrics written to %s", args.output)
    if args.vis:
        draw_pictures(suite, args.vis)
    return flat


def draw_pictures(suite, out_dir):
    """The pictures of every evaluated test set (allinone/evaluation/visualize.py), from the kept features."""
    from ..evaluation.evaluators import FeatureEvaluator
    from ..evaluation.visualize import published_bars, test_set_pictures

    written = []
    for entry in suite.entries:
        test_set, evaluator = suite.prepared[entry.name]
        if isinstance(evaluator, FeatureEvaluator):
            written += test_set_pictures(out_dir, entry, test_set, evaluator, evaluator.features(),
                                         suite.results[entry.name])
        else:  # e.g. class scores: only the numbers
            os.makedirs(out_dir, exist_ok=True)
            written.append(published_bars(out_dir, entry.name, suite.results[entry.name],
                                          dict(entry.get("published") or {})))
    logger.info("%d pictures written to %s", len(written), out_dir)
    return written


def main(argv=None, prog="ufo-eval"):
    return run_cli(run, parse_args(argv, prog))

