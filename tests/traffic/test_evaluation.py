"""Metrics, submission JSON and the scorer: AP@0.5 equals pycocotools, mIoU follows the baseline's rules, polygons
paint back into the masks, and the scorer gives a perfect submission full marks."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from oneforall.traffic.evaluation import (SegmentationMetric, average_precision_50, coco_ap50, leaderboard_score,
                                          top1_accuracy)
from oneforall.traffic.mini import make_traffic_tree
from oneforall.traffic.submission import (build_submission, mask_to_polygons, polygons_to_mask, read_submission,
                                          write_submission)


def coco_case():
    """Two images, categories 3 and 7 with ground truth, 9 without; hits, a duplicate, a miss and a near miss."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
          "categories": [{"id": 3}, {"id": 7}, {"id": 9}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400},
              {"id": 2, "image_id": 1, "category_id": 3, "bbox": [50, 50, 10, 10], "area": 100},
              {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "area": 900},
              {"id": 4, "image_id": 2, "category_id": 7, "bbox": [60, 60, 20, 20], "area": 400}]}
    results = [
        {"image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "score": 0.9},   # hit
        {"image_id": 1, "category_id": 3, "bbox": [11, 11, 20, 20], "score": 0.8},   # duplicate -> FP
        {"image_id": 1, "category_id": 3, "bbox": [80, 80, 10, 10], "score": 0.85},  # FP
        {"image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 15], "score": 0.7},     # IoU 0.5 exactly -> hit
        {"image_id": 2, "category_id": 7, "bbox": [61, 61, 20, 20], "score": 0.3},   # hit
        {"image_id": 2, "category_id": 9, "bbox": [1, 1, 5, 5], "score": 0.99},      # category without GT
    ]
    return gt, results


def test_ap50_hand_made_case_equals_pycocotools_and_hand_count():
    gt, results = coco_case()
    # category 3: ranked hit(0.9), FP(0.85), FP(0.8), hit(0.7) of 3 GT -> precision 1 up to recall 1/3, then 2/4
    # up to recall 2/3, 0 after; category 7: one hit -> 1.0
    recall = np.linspace(0, 1, 101)
    cat3 = np.where(recall <= 1 / 3, 1.0, np.where(recall <= 2 / 3, 0.5, 0.0)).mean()
    expected = (cat3 + 1.0) / 2
    assert average_precision_50(gt, results) == pytest.approx(expected, abs=1e-12)
    assert coco_ap50(gt, results) == pytest.approx(expected, abs=1e-12)


def test_ap50_random_cases_equal_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(4):
        gt = {"images": [{"id": i, "width": 200, "height": 200} for i in range(1, 6)],
              "categories": [{"id": c} for c in (1, 4, 5)], "annotations": []}
        results = []
        for image in range(1, 6):
            for _ in range(rng.integers(0, 5)):
                x, y, w, h = rng.uniform(0, 150, 2).tolist() + rng.uniform(5, 50, 2).tolist()
                cat = int(rng.choice([1, 4, 5]))
                gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image, "category_id": cat,
                                          "bbox": [x, y, w, h], "area": w * h})
                for _ in range(rng.integers(0, 3)):
                    jitter = rng.normal(0, 6, 4)
                    results.append({"image_id": image, "category_id": cat, "bbox": [x + jitter[0], y + jitter[1],
                                    max(1, w + jitter[2]), max(1, h + jitter[3])], "score": float(rng.uniform())})
            for _ in range(rng.integers(0, 4)):
                results.append({"image_id": image, "category_id": int(rng.choice([1, 4, 5])),
                                "bbox": rng.uniform(0, 150, 2).tolist() + rng.uniform(5, 50, 2).tolist(),
                                "score": float(rng.uniform())})
        assert average_precision_50(gt, results) == pytest.approx(coco_ap50(gt, results), abs=1e-12)


def test_miou_rules_against_direct_count():
    rng = np.random.default_rng(1)
    metric = SegmentationMetric(num_classes=6)
    preds, labels = [], []
    for _ in range(3):
        label = rng.integers(0, 4, size=[9, 11])  # classes 4, 5 never labelled
        label[0] = 255
        pred = rng.integers(0, 5, size=[9, 11])  # class 4 predicted (false positives), class 5 never: union 0
        metric.update(pred, label)
        preds.append(pred)
        labels.append(label)
    pred, label = np.stack(preds), np.stack(labels)
    valid = label != 255
    ious = []
    for c in range(6):
        inter = ((pred == c) & (label == c)).sum()
        union = ((pred == c) & valid).sum() + (label == c).sum() - inter
        ious.append(inter / union if union else 0.0)
    assert metric.miou() == pytest.approx(np.mean(ious))
    assert metric.iou()[5] == 0 and metric.iou()[4] == 0 and metric.predicted[4] > 0


def test_top1_and_score():
    assert top1_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert leaderboard_score(0.75, 0.5, 0.25) == 0.5
    with pytest.raises(ValueError):
        top1_accuracy([1], [1, 2])


def blocky_mask(rng, shape=(72, 128)):
    mask = np.zeros(shape, np.uint8)
    mask[: shape[0] // 3] = 10
    for _ in range(6):
        cls = int(rng.choice([2, 5, 13, 18, 1]))
        x, y = int(rng.integers(0, shape[1] - 20)), int(rng.integers(0, shape[0] - 15))
        if rng.uniform() < 0.5:
            mask[y:y + int(rng.integers(4, 15)), x:x + int(rng.integers(4, 20))] = cls
        else:
            cv2.circle(mask, (x + 8, y + 8), int(rng.integers(3, 9)), cls, -1)
    mask[24:40, 36:52] = 13
    mask[30:34, 40:46] = 0  # a background hole in a car
    return mask


def test_polygon_round_trip_reproduces_masks(tmp_path):
    rng = np.random.default_rng(2)
    masks = {f"img_{i}.png": blocky_mask(rng) for i in range(8)}
    path = str(tmp_path / "sub.json")
    write_submission(path, build_submission({"a.jpg": 3}, [], masks))
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    assert list(raw) == ["seg", "cls", "dec"] and raw["cls"] == [{"a.jpg": 3}]
    assert all(list(entry[name]) == [str(c) for c in range(19)] for entry in raw["seg"] for name in entry)
    _, _, seg = read_submission(path)
    for name, mask in masks.items():
        assert np.array_equal(polygons_to_mask(seg[name], mask.shape), mask), name


def test_components_of_one_or_two_pixels_are_lost_by_the_format():
    mask = np.zeros([10, 10], np.uint8)
    mask[2, 2] = 5  # one-point contour: the scorer skips polygons of two points or fewer
    mask[6:9, 6:9] = 7
    painted = polygons_to_mask(mask_to_polygons(mask), mask.shape)
    assert painted[2, 2] == 0 and (painted[6:9, 6:9] == 7).all()


def test_score_cli_gives_a_perfect_submission_full_marks(tmp_path):
    root = str(tmp_path / "data")
    make_traffic_tree(root, seed=3, num_cls_classes=3, cls_per_class=(2, 2), dec_images=(2, 3), seg_images=(1, 2))
    base = os.path.join(root, "track1_train_data")
    with open(os.path.join(base, "cls", "val.txt")) as f:
        cls = {line.split()[0]: int(line.split()[1]) for line in f if line.strip()}
    with open(os.path.join(base, "dec", "val.json")) as f:
        dec = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in json.load(f)["annotations"]]
    label_dir = os.path.join(base, "seg", "label", "val")
    seg = {name: np.asarray(Image.open(os.path.join(label_dir, name))) for name in sorted(os.listdir(label_dir))}
    seg = {name: np.where(mask == 255, 0, mask) for name, mask in seg.items()}
    path = str(tmp_path / "sub.json")
    write_submission(path, build_submission(cls, dec, seg))
    out = subprocess.run([sys.executable, "-m", "oneforall.traffic.score", "--pred", path, "--gt", root],
                         capture_output=True, text=True, check=True)
    scores = json.loads(out.stdout.strip().splitlines()[-1])
    miou = 5 / 19  # five classes present, perfect; the other 14 have union 0 and count as IoU 0
    assert scores["acc"] == 1.0 and scores["map50"] == pytest.approx(1.0)
    assert scores["miou"] == pytest.approx(miou, abs=1e-3)  # polygon edges of the thin pole may lose a pixel
    assert scores["score"] == pytest.approx(round((2 + miou) / 3, 4), abs=2e-4)
