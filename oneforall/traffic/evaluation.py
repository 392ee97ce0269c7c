"""Metrics of the three traffic tasks, with the rules of the baseline's scorer (docs/traffic.md, "Scoring"):

* classification: top-1 accuracy;
* detection: COCO AP at IoU 0.5 (all areas, 100 detections per image and category, 101-point interpolation, mean
  over the categories that have ground truth); `coco_ap50` runs pycocotools, `average_precision_50` is a numpy
  re-implementation of the same numbers used during training (fast, no pycocotools log);
* segmentation: per-class intersection / union accumulated over the whole set, ignore label excluded from both the
  prediction and the label counts, IoU 0 for a class whose union is 0, mIoU = mean over all classes.
Score = mean of the three (0-1 scale).
"""
import contextlib
import io

import numpy as np


def top1_accuracy(predictions, targets):
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.shape != targets.shape or predictions.size == 0:
        raise ValueError(f"top1_accuracy: {predictions.shape} predictions for {targets.shape} targets")
    return float((predictions == targets).mean())


class SegmentationMetric:
    """Accumulates per-class intersection, prediction and label pixel counts."""

    def __init__(self, num_classes=19, ignore_index=255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reset()

    def reset(self):
        self.intersection = np.zeros(self.num_classes, np.int64)
        self.predicted = np.zeros(self.num_classes, np.int64)
        self.labelled = np.zeros(self.num_classes, np.int64)

    def update(self, prediction, label):
        prediction, label = np.asarray(prediction).astype(np.int64), np.asarray(label).astype(np.int64)
        if prediction.shape != label.shape:
            raise ValueError(f"segmentation prediction {prediction.shape} and label {label.shape} differ in shape")
        valid = label != self.ignore_index
        pred, lab = prediction[valid], label[valid]
        k = self.num_classes
        in_range_pred = (pred >= 0) & (pred < k)
        self.predicted += np.bincount(pred[in_range_pred], minlength=k)[:k]
        self.labelled += np.bincount(lab[(lab >= 0) & (lab < k)], minlength=k)[:k]
        same = (pred == lab) & in_range_pred
        self.intersection += np.bincount(pred[same], minlength=k)[:k]

    def iou(self):
        union = self.predicted + self.labelled - self.intersection
        return np.where(union > 0, self.intersection / np.maximum(union, 1), 0.0)

    def miou(self):
        return float(self.iou().mean())


def box_iou_xywh(a, b):
    """IoU matrix of [n, 4] and [m, 4] xywh boxes (no +1, as COCO)."""
    a, b = np.asarray(a, np.float64).reshape([-1, 4]), np.asarray(b, np.float64).reshape([-1, 4])
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def average_precision_50(gt, results, max_dets=100):
    """COCO AP@0.5 (area all) of `results` (COCO result dicts) against `gt` (a COCO dict): the numbers of
    pycocotools' COCOeval stats[1], in numpy. Crowd ground truth is ignored (matched detections not counted)."""
    image_ids = sorted(image["id"] for image in gt["images"])
    category_ids = sorted(category["id"] for category in gt["categories"])
    gts, dts = {}, {}
    for ann in gt["annotations"]:
        gts.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
    for det in results:
        dts.setdefault((det["image_id"], det["category_id"]), []).append(det)
    recall_points = np.linspace(0, 1, 101)
    aps = []
    for category in category_ids:
        scores, matched, ignored, num_gt = [], [], [], 0
        for image in image_ids:
            g = gts.get((image, category), [])
            d = sorted(dts.get((image, category), []), key=lambda x: -x["score"])[:max_dets]
            crowd = np.array([bool(x.get("iscrowd", 0)) for x in g], bool)
            order = np.argsort(crowd, kind="stable")  # non-crowd ground truth first
            g = [g[i] for i in order]
            crowd = crowd[order]
            num_gt += int((~crowd).sum())
            ious = box_iou_xywh([x["bbox"] for x in d], [x["bbox"] for x in g]) if g and d else None
            taken = np.zeros(len(g), bool)
            for di, det in enumerate(d):
                best, match = min(0.5, 1 - 1e-10), -1
                for gi in range(len(g)):
                    if taken[gi] and not crowd[gi]:
                        continue
                    if match > -1 and not crowd[match] and crowd[gi]:
                        break
                    if ious[di, gi] < best:
                        continue
                    best, match = ious[di, gi], gi
                scores.append(det["score"])
                matched.append(match > -1)
                ignored.append(match > -1 and bool(crowd[match]))
                if match > -1:
                    taken[match] = True
        if num_gt == 0:
            continue
        order = np.argsort(-np.array(scores, np.float64), kind="mergesort")
        keep = ~np.array(ignored, bool)[order] if scores else np.zeros(0, bool)
        tp = np.array(matched, bool)[order][keep] if scores else np.zeros(0, bool)
        tp_sum, fp_sum = np.cumsum(tp).astype(np.float64), np.cumsum(~tp).astype(np.float64)
        recall = tp_sum / num_gt
        precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
        index = np.searchsorted(recall, recall_points, side="left")
        interpolated = np.array([precision[i] if i < precision.size else 0.0 for i in index])
        aps.append(interpolated.mean())
    return float(np.mean(aps)) if aps else -1.0


def coco_ap50(gt, results):
    """pycocotools' COCOeval (bbox) stats[1] of `results` against the COCO dict `gt` (its log silenced)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**gt, "annotations": [{"iscrowd": 0, **a} for a in gt["annotations"]]}
        coco_gt.createIndex()
        if not results:
            return 0.0
        coco_dt = coco_gt.loadRes(list(results))
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[1])


def leaderboard_score(accuracy, ap50, miou):
    return round((accuracy + ap50 + miou) / 3, 4)


__all__ = ["SegmentationMetric", "average_precision_50", "box_iou_xywh", "coco_ap50", "leaderboard_score",
           "top1_accuracy"]
