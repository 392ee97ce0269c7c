"""Score a submission JSON against a labelled split, the way the baseline's shipped scorer does:

    python -m oneforall.traffic.score --pred submission.json --gt datasets/track1_train_data [--split val]

`--gt` is a folder holding `cls/<split>.txt`, `dec/<split>.json` and `seg/label/<split>/*.png` (or a data root that
contains `track1_train_data/`). Prints {"acc", "map50", "miou", "score"} as JSON (0-1 scale; score = mean, rounded to
4 places). Accuracy counts the submission's entries (duplicates too, as the shipped scorer); segmentation masks are
painted from the polygons on a canvas of the label's size and paired with the labels by name.
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
from PIL import Image

from .data import TRAIN_ROOT
from .evaluation import SegmentationMetric, coco_ap50, leaderboard_score
from .submission import polygons_to_mask, read_submission

logger = logging.getLogger("oneforall.traffic.score")


def resolve_gt_folder(folder):
    if os.path.isdir(os.path.join(folder, "cls")) or os.path.isdir(os.path.join(folder, "dec")):
        return folder
    if os.path.isdir(os.path.join(folder, TRAIN_ROOT)):
        return os.path.join(folder, TRAIN_ROOT)
    raise FileNotFoundError(f"{folder} holds neither cls/, dec/, seg/ nor {TRAIN_ROOT}/ (see docs/traffic.md)")


def score_classification(predictions, list_file):
    truth = {}
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 2:
                truth[fields[0]] = fields[1]
    unknown = [name for name in predictions if name not in truth]
    if unknown:
        logger.warning("cls: %d predicted name(s) not in %s (counted wrong), e.g. %s", len(unknown), list_file,
                       unknown[:3])
    missing = len(set(truth) - set(predictions))
    if missing:
        logger.warning("cls: %d image(s) of %s have no prediction", missing, list_file)
    if not predictions:
        return 0.0
    return sum(str(label) == truth.get(name) for name, label in predictions.items()) / len(predictions)


def score_segmentation(predictions, label_dir, num_classes=19, ignore_index=255):
    metric = SegmentationMetric(num_classes, ignore_index)
    names = sorted(name for name in os.listdir(label_dir) if name.endswith(".png"))
    missing = [name for name in names if name not in predictions]
    if missing:
        logger.warning("seg: %d label(s) of %s without a prediction (scored as all class 0), e.g. %s", len(missing),
                       label_dir, missing[:3])
    for name in names:
        label = np.asarray(Image.open(os.path.join(label_dir, name)))
        mask = polygons_to_mask(predictions.get(name, {}), label.shape[:2])
        metric.update(mask, label)
    return metric.miou()


def score_submission(pred_path, gt_folder, split="val"):
    folder = resolve_gt_folder(gt_folder)
    cls, dec, seg = read_submission(pred_path)
    with open(os.path.join(folder, "dec", f"{split}.json"), encoding="utf-8") as f:
        coco = json.load(f)
    acc = score_classification(cls, os.path.join(folder, "cls", f"{split}.txt"))
    map50 = coco_ap50(coco, dec)
    miou = score_segmentation(seg, os.path.join(folder, "seg", "label", split))
    return {"acc": acc, "map50": map50, "miou": miou, "score": leaderboard_score(acc, map50, miou)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, help="submission JSON")
    parser.add_argument("--gt", required=True, help="labelled folder (track1_train_data or a root holding it)")
    parser.add_argument("--split", default="val", help="which split's labels (default val)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    print(json.dumps(score_submission(args.pred, args.gt, args.split)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
