"""The evaluation table (`Eval.datasets` of a config), run the same way by evaluation_script.py and by training.

`EvaluationSuite(cfg)` checks the table, reads every test set and builds its evaluator once (a bad entry or a missing
folder fails before any inference); calling it with a model runs each test set: loader batches -> the model's eval
output for the entry's head -> `evaluator.process`, then `evaluator.evaluate()`; it returns the metrics flattened to
the original's `head.dataset.metric` keys and logs a table with the published numbers beside the measured ones.
"""
import logging
import time
from collections import OrderedDict

import numpy as np

from ..config import ConfigError

logger = logging.getLogger("allinone.evaluation")

EVAL_KEYS = ("batch_size", "num_workers", "datasets", "optional_datasets")
ENTRY_KEYS = ("name", "dataset", "head", "task", "evaluator", "published", "dataset_args", "evaluator_args")
ENTRY_REQUIRED = ("name", "dataset", "head", "evaluator")
EVAL_SECTIONS = ("Global", "Model", "Eval")
TRAINING_SECTIONS = ("Train", "DataLoader", "Loss", "Optimizer")  # read by tools/train.py, which checks them
EVAL_GLOBAL_KEYS = ("device", "seed", "num_threads", "plugins")  # plugins: allinone/plugins.py


def check_evaluation_config(cfg):
    """Refuse keys that evaluation would not read: unknown sections, Global keys and Eval keys (entries included).
    A training config may be evaluated: its training sections (and Global.output_dir) are left to tools/train.py."""
    if not cfg:
        raise ConfigError(f"{cfg.source}: the config is empty; evaluation needs a Model and an Eval section (see "
                          f"configs/allinone/vitlarge_eval.yaml)")
    training = "Train" in cfg
    cfg.check_keys(EVAL_SECTIONS + (TRAINING_SECTIONS if training else ()), "top level")
    if "Global" in cfg:
        cfg.Global.check_keys(EVAL_GLOBAL_KEYS + (("output_dir", "runner") if training else ()), "Global")
    for section in ("Model", "Eval"):
        if section not in cfg:
            raise ConfigError(f"{cfg.source}: no '{section}' section (evaluation needs Model and Eval; see "
                              f"configs/allinone/vitlarge_eval.yaml)")
    eval_cfg = cfg.Eval
    eval_cfg.check_keys(EVAL_KEYS, "Eval")
    for key, minimum in (("batch_size", 1), ("num_workers", 0)):
        value = eval_cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{cfg.source}: Eval.{key} must be an integer >= {minimum}, got {value!r}")
    for table in ("datasets", "optional_datasets"):
        entries = eval_cfg.get(table) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{cfg.source}: Eval.{table} must be a list of entries, got {entries!r}")
        for position, entry in enumerate(entries):
            where = f"Eval.{table}[{position}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{cfg.source}: {where} must be a mapping with keys {list(ENTRY_REQUIRED)}")
            entry.check_keys(ENTRY_KEYS, where)
            missing = [key for key in ENTRY_REQUIRED if key not in entry]
            if missing:
                raise ConfigError(f"{cfg.source}: {where} lacks {missing} (an entry needs {list(ENTRY_REQUIRED)})")
    names = [entry.name for entry in list(eval_cfg.datasets or []) + list(eval_cfg.get("optional_datasets") or [])]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{cfg.source}: the evaluation table names {repeated} more than once")


def select_test_sets(eval_cfg, requested, option="--test_datasets"):
    """The Eval table entries named in `requested` ('A,B' or None = every entry of Eval.datasets), in that order.
    `option` is where the names came from (the command-line flag or a config key), for the error messages."""
    default = list(eval_cfg.datasets)
    known = OrderedDict((entry.name, entry) for entry in default + list(eval_cfg.get("optional_datasets") or []))
    if requested is None:
        return default
    names = [name.strip() for name in requested.split(",")]
    if not any(names):
        raise ConfigError(f"{option} is empty; give one or more of {list(known)} (comma-separated), or leave "
                          f"it out to run all of Eval.datasets")
    if not all(names):
        raise ConfigError(f"{option} '{requested}': an empty name between commas")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{option} '{requested}' names {repeated} more than once")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"{option}: unknown name(s) {unknown}; the config's evaluation table "
                          f"({eval_cfg.source}) has {list(known)}")
    return [known[name] for name in names]


def prepare(entry, root):
    """(test set, evaluator) of one table entry: reads the lists and checks the entry's published metric names and
    evaluator arguments (`evaluator_args`, e.g. {num_draws: 10}) and that the evaluator can read the test set, so a
    bad entry fails before any inference."""
    from .. import data  # noqa: F401  (registers the dataset readers)
    from .. import evaluation  # noqa: F401  (registers the evaluators)
    from ..registry import DATASETS, EVALUATORS

    evaluator_args = dict(entry.get("evaluator_args") or {})
    try:
        evaluator = EVALUATORS.build({"name": entry.evaluator, **evaluator_args})
    except KeyError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': {err.args[0]}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': evaluator_args {evaluator_args} do not fit "
                          f"{entry.evaluator} ({err})") from None
    unknown = sorted(set(entry.get("published") or {}) - set(evaluator.metric_names))
    if unknown:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': published metric(s) {unknown} are not "
                          f"reported by {entry.evaluator} (it reports {list(evaluator.metric_names)})")
    dataset_args = dict(entry.get("dataset_args") or {})
    try:
        test_set = DATASETS.build({"name": entry.dataset, "root": root, **dataset_args})
    except KeyError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': {err.args[0]}") from None
    except TypeError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': dataset_args {dataset_args} do not fit "
                          f"{entry.dataset} ({err})") from None
    try:
        evaluator.images(test_set)
    except ValueError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': {err}") from None
    return test_set, evaluator


def entry_task(model, entry):
    """The task whose path (task embeddings and experts of a task-MoE backbone, then its head) an entry's images
    take: the entry's `task`; else the one task that Model.task_to_head sends to the entry's head; else the head's
    own name. A task that the model routes to another head than the entry's is a config error."""
    routes = dict(getattr(model, "task_to_head", None) or {})
    task = entry.get("task")
    if task is None:
        senders = [name for name, head in routes.items() if head == entry.head]
        task = senders[0] if len(senders) == 1 else entry.head
    routed = routes.get(task, task)
    if routed != entry.head:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': task '{task}' goes to head '{routed}' "
                          f"(Model.task_to_head), not to the entry's head '{entry.head}'; set the entry's `task` to "
                          f"a task routed to '{entry.head}'")
    return task


def eval_outputs(model, head, images):
    """The model's eval output for `images` on `head`: through `model.embed` (the one eval path) when the model has
    it, else the backbone followed by the head."""
    from .embedders import DygraphEmbedder

    return DygraphEmbedder(model).embed(head, images)


def evaluate_test_set(model, entry, test_set, evaluator, batch_size, num_workers, show_progress=True,
                      distributed=False, embedder=None):
    """Feed the evaluator every test image's model output (batches in data-set order), return its metrics.
    `distributed`: call on every rank; each reads its share of the images and the evaluator gathers them. Else
    this process reads every image (training evaluates on rank 0 alone). `embedder`: what computes the outputs
    (`embedders.py`; default the dygraph model)."""
    import paddle
    from tqdm import tqdm

    from ..data import build_test_loader, build_test_transform
    from .embedders import DygraphEmbedder

    embedder = embedder or DygraphEmbedder(model)

    if entry.head not in model.heads:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}' names head '{entry.head}'; the model has "
                          f"{list(model.heads)}")
    task = entry_task(model, entry)
    evaluator.bind(test_set, distributed)
    images = evaluator.images(test_set)
    transform = build_test_transform(model.backbone.img_size)
    shard = {} if distributed else {"rank": 0, "world_size": 1}
    loader = build_test_loader(images, transform, batch_size, num_workers, name=f"test set {entry.name}", **shard)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with paddle.no_grad(), tqdm(total=len(images), unit="img", desc=entry.name,
                                    disable=not show_progress) as progress:
            for batch in loader:
                evaluator.process(batch, embedder.embed(task, batch["images"]))
                progress.update(int(np.asarray(batch["index"]).size))
    finally:
        if was_training:
            model.train()
    seconds = time.perf_counter() - start
    logger.info("%s: %d images in %.1f s (%.1f images/s)", entry.name, len(images), seconds,
                len(images) / max(seconds, 1e-9))
    return evaluator.evaluate()


def evaluate_all(model, entries, prepared, batch_size, num_workers, distributed=False, embedder=None):
    """Every entry in order: its metrics per entry name (OrderedDict), each logged as it finishes."""
    results = OrderedDict()
    for entry in entries:
        results[entry.name] = evaluate_test_set(model, entry, *prepared[entry.name], batch_size, num_workers,
                                                distributed=distributed, embedder=embedder)
        logger.info("%s: %s", entry.name, ", ".join(f"{k}={v:.4f}" for k, v in results[entry.name].items()))
    return results


def results_table(entries, results):
    """One row per reported metric: measured beside published (the entry's `published` metrics, else `metric`)."""
    rows = [f"{'dataset':<15} {'head':<6} {'metric':<12} {'measured':>9} {'published':>9} {'diff':>7}"]
    for entry in entries:
        measured = results[entry.name]
        published = entry.get("published") or {}
        for metric in (list(published) or ["metric"]):
            value = measured[metric]
            if metric in published:
                rows.append(f"{entry.name:<15} {entry.head:<6} {metric:<12} {value:>9.2f} {published[metric]:>9.2f} "
                            f"{value - published[metric]:>+7.2f}")
            else:
                rows.append(f"{entry.name:<15} {entry.head:<6} {metric:<12} {value:>9.2f} {'-':>9} {'':>7}")
    return "\n".join(rows)


def flat_results(entries, prepared, results):
    """{'task3.market1501.Rank-1': value, ...}: the keys the original printed at the end."""
    return OrderedDict((f"{entry.head}.{prepared[entry.name][0].dataset_name}.{metric}", float(value))
                       for entry in entries for metric, value in results[entry.name].items())


class EvaluationSuite:
    """`suite = EvaluationSuite(cfg, requested)` once (checks the table, reads the test sets, builds the
    evaluators), then `suite(model)` -> OrderedDict('head.dataset.metric' -> value) as often as needed.

    `requested`: 'A,B' names from Eval.datasets / Eval.optional_datasets (None = all of Eval.datasets);
    `batch_size` / `num_workers` default to the Eval section's; `root` to $FASTREID_DATASETS. `distributed`: every
    rank calls the suite and reads a share of each test set (default: the calling process reads everything).
    `requested_from`: the flag or config key the names came from, for error messages. `engine`: how images
    become outputs (`embedders.ENGINES`: dygraph, the default here; inference = Paddle
    Inference from the model exported once per call; auto), `tensorrt`: with Paddle Inference on a GPU.
    """

    def __init__(self, cfg, requested=None, batch_size=None, num_workers=None, root=None, print_table=True,
                 distributed=False, engine="dygraph", tensorrt=False, requested_from="--test_datasets"):
        from ..data.datasets import dataset_root
        from .embedders import ENGINES

        check_evaluation_config(cfg)
        self.entries = select_test_sets(cfg.Eval, requested, requested_from)
        self.batch_size = cfg.Eval.batch_size if batch_size is None else batch_size
        self.num_workers = cfg.Eval.num_workers if num_workers is None else num_workers
        self.root = dataset_root(root)
        self.print_table, self.distributed = print_table, distributed
        if engine not in ENGINES:
            raise ConfigError(f"evaluation engine must be one of {list(ENGINES)}, got {engine!r}")
        self.engine, self.tensorrt = engine, tensorrt
        # read every list first: a missing folder stops the run in seconds, not after hours of inference
        self.prepared = OrderedDict((entry.name, prepare(entry, self.root)) for entry in self.entries)
        self.results = OrderedDict()

    def check_heads(self, model):
        unknown = sorted({entry.head for entry in self.entries} - set(model.heads))
        if unknown:
            raise ConfigError(f"{self.entries[0].source}: Eval.datasets name head(s) {unknown}; the model has "
                              f"{list(model.heads)}")

    def __call__(self, model):
        from .embedders import build_embedder

        self.check_heads(model)
        tasks = list(OrderedDict.fromkeys(entry_task(model, entry) for entry in self.entries))
        # exported and checked before any test image is read: a model Paddle Inference cannot run stops here
        embedder = build_embedder(self.engine, model, tasks, self.batch_size, self.tensorrt)
        try:
            self.results = evaluate_all(model, self.entries, self.prepared, self.batch_size, self.num_workers,
                                        self.distributed, embedder)
        finally:
            embedder.close()
        if self.print_table:
            print(self.table(), flush=True)
        return flat_results(self.entries, self.prepared, self.results)

    def table(self):
        return results_table(self.entries, self.results)
