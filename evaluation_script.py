"""Evaluate an AllInOne checkpoint on the test sets of a config's evaluation table.

    python evaluation_script.py --model_path allinone_vitlarge.pdmodel [--test_datasets Market1501,SOP]

The original's command line (--model_path, --batchsize, --test_datasets) plus --config, --output, --device,
--num_workers, --allow_partial and -o overrides. Every test set is one row of `Eval.datasets` (dataset reader, head,
evaluator, published numbers), so adding one is a config edit. Data root: $FASTREID_DATASETS (default `datasets`).
"""
import argparse
import json
import logging
import os
import sys
from collections import OrderedDict

from allinone.config import ConfigError, load_config
from allinone.evaluation.suite import evaluate_all, flat_results, prepare, results_table, select_test_sets
from allinone.utils.cli import run_cli
from allinone.utils.env import configure_threads

DEFAULT_CONFIG = "configs/allinone/vitlarge_eval.yaml"
logger = logging.getLogger("allinone.evaluation")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_path", required=True, help="checkpoint: the official .pdmodel state dict or ours")
    parser.add_argument("--test_datasets", default=None,
                        help="one name or a comma-separated list of Eval.datasets / Eval.optional_datasets names "
                             "(default: all of Eval.datasets)")
    parser.add_argument("--batchsize", type=int, default=None, help="images per forward (default Eval.batch_size, 8)")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
    parser.add_argument("--output", default=None, help="write all metrics as JSON, keyed task.dataset.metric")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loading workers (default Eval.num_workers)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default=None,
                        help="default: Global.device (auto = gpu when available)")
    parser.add_argument("--allow_partial", action="store_true",
                        help="load a checkpoint whose keys do not all fit (reported), instead of stopping")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. -o Eval.batch_size=32 (repeatable)")
    return parser.parse_args(argv)


def run(args):
    cfg = load_config(args.config, args.override)
    entries = select_test_sets(cfg.Eval, args.test_datasets)
    configure_threads(cfg.get_path("Global.num_threads"))
    import paddle  # noqa: F401  (after the thread set-up)

    from allinone import build_model, load_checkpoint
    from allinone.utils.env import configure_faiss_threads, resolve_device
    from allinone.utils.logger import setup_logger

    setup_logger()
    configure_faiss_threads()
    device = resolve_device(args.device or cfg.get_path("Global.device", "auto"))
    root = os.environ.get("FASTREID_DATASETS", "datasets")
    # read every list first: a missing folder stops the run in seconds, not after hours of inference
    prepared = OrderedDict((entry.name, prepare(entry, root)) for entry in entries)
    model = build_model(cfg)
    unknown_heads = sorted({entry.head for entry in entries} - set(model.heads))
    if unknown_heads:
        raise ConfigError(f"{cfg.source}: Eval.datasets name head(s) {unknown_heads}; Model.heads has "
                          f"{list(model.heads)}")
    report = load_checkpoint(model, args.model_path, strict=not args.allow_partial)
    logger.info("%s", report)
    model.eval()
    batch_size = args.batchsize or cfg.Eval.batch_size
    num_workers = cfg.Eval.num_workers if args.num_workers is None else args.num_workers
    logger.info("evaluating %s on %s (data root %s, batch size %d)", args.model_path, device, root, batch_size)
    results = evaluate_all(model, entries, prepared, batch_size, num_workers)
    flat = flat_results(entries, prepared, results)
    print(results_table(entries, results))
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(flat, f, indent=1)
        logger.info("metrics written to %s", args.output)
    return flat


def main(argv=None):
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
