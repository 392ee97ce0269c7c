"""The evaluation table (`Eval.datasets` of a config) as steps shared by evaluation_script.py and training:
select entries, read their test sets, extract features with the entry's head, evaluate, tabulate against the
published numbers, flatten to the original's `task.dataset.metric` keys."""
import logging
import time
from collections import OrderedDict

from ..config import ConfigError

logger = logging.getLogger("allinone.evaluation")


def select_test_sets(eval_cfg, requested):
    """The Eval table entries named in `requested` ('A,B' or None = every entry of Eval.datasets), in that order."""
    default = list(eval_cfg.datasets)
    known = OrderedDict((entry.name, entry) for entry in default + list(eval_cfg.get("optional_datasets") or []))
    if not requested:
        return default
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--test_datasets: unknown name(s) {unknown}; the config's evaluation table "
                          f"({eval_cfg.source}) has {list(known)}")
    return [known[name] for name in names]


def prepare(entry, root):
    """(test set, evaluator) of one table entry: reads the lists and checks the entry's published metric names and
    evaluator arguments (`evaluator_args`, e.g. {num_draws: 10}) and that the evaluator can read the test set, so a
    bad entry fails before any inference."""
    from .. import data  # noqa: F401  (registers the dataset readers)
    from ..registry import DATASETS, EVALUATORS

    evaluator_args = dict(entry.get("evaluator_args") or {})
    try:
        evaluator = EVALUATORS.build({"name": entry.evaluator, **evaluator_args})
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
    except TypeError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': dataset_args {dataset_args} do not fit "
                          f"{entry.dataset} ({err})") from None
    try:
        evaluator.images(test_set)
    except ValueError as err:
        raise ConfigError(f"{entry.source}: Eval entry '{entry.name}': {err}") from None
    return test_set, evaluator


def evaluate_test_set(model, entry, test_set, evaluator, batch_size, num_workers):
    """Features of the entry's head for the evaluator's images, then the evaluator's metrics (OrderedDict)."""
    from ..inference import FeatureExtractor

    images = evaluator.images(test_set)
    extractor = FeatureExtractor(model, head=entry.head, batch_size=batch_size, num_workers=num_workers,
                                 show_progress=True)
    start = time.perf_counter()
    features = extractor.extract(images, desc=entry.name)
    seconds = time.perf_counter() - start
    logger.info("%s: %d images in %.1f s (%.1f images/s)", entry.name, len(images), seconds,
                len(images) / max(seconds, 1e-9))
    return evaluator.evaluate(features, test_set)


def evaluate_all(model, entries, prepared, batch_size, num_workers):
    """Every entry in order: its metrics per entry name (OrderedDict), each logged as it finishes."""
    results = OrderedDict()
    for entry in entries:
        results[entry.name] = evaluate_test_set(model, entry, *prepared[entry.name], batch_size, num_workers)
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
