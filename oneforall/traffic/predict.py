"""Run a traffic model over a split: predictions for the submission JSON and, on a labelled split, the metrics.

    python -m oneforall.traffic.predict -c configs/traffic/vitbase_3tasks.yaml --model_path model_final.pdparams \
        [--split test] [--output submission.json] [--root DATA_ROOT]

Writes the submission (keys seg, cls, dec; docs/traffic.md, "Submission") and prints the metrics of a labelled
split (val) as JSON. Every image is predicted once (the baseline padded its test sets with duplicates).
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
import paddle

from .data import DATASETS
from .evaluation import SegmentationMetric, average_precision_50, leaderboard_score, top1_accuracy
from .loader import build_eval_loader
from .submission import build_submission, write_submission
from .transforms import build_transform

logger = logging.getLogger("oneforall.traffic.predict")

EVAL_DEFAULTS = {"segmentation": {"batch_size": 1}, "fgvc": {"batch_size": 8}, "trafficsign": {"batch_size": 8}}


def eval_settings(eval_cfg, task):
    """(transform kwargs, batch size, extra dataset kwargs) of a task's evaluation."""
    settings = {**EVAL_DEFAULTS[task], **dict((eval_cfg or {}).get(task) or {})}
    transform = dict(settings.pop("transform", {}) or {})
    batch_size = int(settings.pop("batch_size"))
    return transform, batch_size, settings


@paddle.no_grad()
def predict_split(model, root, split="val", eval_cfg=None, tasks=None):
    """{"cls": {name: class}, "dec": [COCO results], "seg": {"<stem>.png": mask}} and, for a labelled split,
    {"fgvc.Acc@1", "trafficsign.AP50", "segmentation.mIoU", "score"} (0-1 scale)."""
    was_training = model.training
    model.eval()
    tasks = tasks or ("fgvc", "trafficsign", "segmentation")
    predictions, metrics = {"cls": {}, "dec": [], "seg": {}}, {}
    try:
        for task in tasks:
            transform, batch_size, extra = eval_settings(eval_cfg, task)
            dataset = DATASETS[task](root, split, build_transform(task, False, **transform), **extra)
            loader = build_eval_loader(dataset, batch_size)
            metrics.update(RUNNERS[task](model, dataset, loader, predictions, labelled=split != "test"))
    finally:
        model.train(was_training)
    if len(metrics) == 3:
        metrics["score"] = leaderboard_score(metrics["fgvc.Acc@1"], metrics["trafficsign.AP50"],
                                             metrics["segmentation.mIoU"])
    return predictions, metrics


def _run_classification(model, dataset, loader, predictions, labelled):
    labels, targets = [], []
    for batch in loader:
        logits = model({"fgvc": batch})["fgvc"]["logits"]
        predicted = logits.argmax(-1).numpy()
        predictions["cls"].update(zip(batch["name"], predicted.tolist()))
        labels.append(predicted)
        targets.append(batch["targets"].numpy())
    return {"fgvc.Acc@1": top1_accuracy(np.concatenate(labels), np.concatenate(targets))} if labelled else {}


def _run_detection(model, dataset, loader, predictions, labelled):
    results = []
    for batch in loader:
        out = model({"trafficsign": batch})["trafficsign"]
        rows, ids = out["bbox"].numpy(), batch["image_id"].numpy()
        for image_rows, image_id in zip(rows, ids):
            for label, score, x1, y1, x2, y2 in image_rows:
                results.append({"image_id": int(image_id), "category_id": dataset.category_ids[int(label)],
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                "score": float(score)})
    predictions["dec"].extend(results)
    if not labelled:
        return {}
    with open(dataset.annotation_file, encoding="utf-8") as f:
        return {"trafficsign.AP50": max(average_precision_50(json.load(f), results), 0.0)}


def _run_segmentation(model, dataset, loader, predictions, labelled):
    metric = SegmentationMetric(dataset.num_classes)
    for batch in loader:
        masks = model({"segmentation": batch})["segmentation"]["logits"].argmax(1).numpy().astype(np.uint8)
        for i, (name, mask) in enumerate(zip(batch["name"], masks)):
            predictions["seg"][name] = mask
            if labelled:
                metric.update(mask, batch["targets"][i].numpy())
    return {"segmentation.mIoU": metric.miou()} if labelled else {}


RUNNERS = {"fgvc": _run_classification, "trafficsign": _run_detection, "segmentation": _run_segmentation}


def make_evaluate_fn(cfg, root):
    """model -> the val metrics, for training's evaluation hook."""
    def evaluate(model):
        return predict_split(model, root, "val", cfg.get_path("Data.eval"))[1]

    return evaluate


def data_root(cfg, override=None):
    return override or cfg.get_path("Data.root") or os.environ.get("FASTREID_DATASETS", "datasets")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--model_path", required=True, help="checkpoint (state dict or training checkpoint)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--output", default=None, help="submission JSON (default <output_dir>/pred_results.json)")
    parser.add_argument("--root", default=None, help="data root (default Data.root or $FASTREID_DATASETS)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    from allinone.config import load_config
    from allinone.modeling.checkpoint import load_checkpoint
    from allinone.utils.env import configure_threads

    from .model import build_traffic_model

    cfg = load_config(args.config, args.override)
    configure_threads(cfg.get_path("Global.num_threads"))
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    model = build_traffic_model(cfg.Model)
    logger.info("%s", load_checkpoint(model, args.model_path))
    predictions, metrics = predict_split(model, data_root(cfg, args.root), args.split, cfg.get_path("Data.eval"))
    output = args.output or os.path.join(cfg.Global.output_dir, "pred_results.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    seg_classes = cfg.Model.heads.segmentation.get("num_classes", 19)
    write_submission(output, build_submission(predictions["cls"], predictions["dec"], predictions["seg"],
                                              seg_classes))
    logger.info("wrote %s (%d cls, %d dec, %d seg entries)", output, len(predictions["cls"]), len(predictions["dec"]),
                len(predictions["seg"]))
    if metrics:
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
