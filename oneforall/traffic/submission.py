"""The competition's submission JSON: write it from predictions, read it back into predictions.

    {"seg": [{"<stem>.png": {"0": [polygon, ...], ..., "18": [...]}}, ...],
     "cls": [{"<image file name>": <class id>}, ...],
     "dec": [{"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score": float}, ...]}

A polygon is a list of [x, y] integer points (x = column) of one contour of `cv2.findContours(mask == class,
RETR_TREE, CHAIN_APPROX_SIMPLE)`: outer boundaries and hole boundaries. Reading paints, for every class in stored
order, its polygons of more than two points with `cv2.fillPoly` (later classes overwrite earlier ones), as the
baseline's scorer does. Details and the differences from the baseline: docs/traffic.md ("Submission").
"""
import json

import cv2
import numpy as np


def mask_to_polygons(mask, num_classes=19):
    """{"0": [...], ..., str(num_classes - 1): [...]}: every contour of every class of an [H, W] class-id mask."""
    mask = np.asarray(mask)
    polygons = {}
    for cls in range(num_classes):
        binary = (mask == cls).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2:]
        polygons[str(cls)] = [contour.reshape([-1, 2]).tolist() for contour in contours]
    return polygons


def polygons_to_mask(polygons, shape):
    """Paint {class: polygons} on a zero canvas of `shape` (H, W), classes in stored order."""
    canvas = np.zeros(shape, np.uint8)
    for cls, contours in polygons.items():
        points = [np.asarray(contour, np.int32).reshape([-1, 2]) for contour in contours
                  if np.asarray(contour).reshape([-1, 2]).shape[0] > 2]
        if points:
            cv2.fillPoly(canvas, points, int(cls))
    return canvas


def build_submission(classification=None, detection=None, segmentation=None, num_seg_classes=19):
    """classification {file name: class id}; detection [COCO result dicts]; segmentation {"<stem>.png": mask}.
    Returns the JSON-ready dict with keys in the baseline's order seg, cls, dec."""
    return {
        "seg": [{name: mask_to_polygons(mask, num_seg_classes)} for name, mask in (segmentation or {}).items()],
        "cls": [{name: int(label)} for name, label in (classification or {}).items()],
        "dec": [{"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
                 "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])} for d in (detection or [])],
    }


def write_submission(path, submission):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(submission, f)


def read_submission(path):
    """The submission dict; `cls` and `seg` may be lists of one-key objects (the baseline) or plain objects (the
    README's form). Returns (cls {name: id}, dec [results], seg {name: polygons}); duplicate names raise."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    missing = [key for key in ("cls", "dec", "seg") if key not in data]
    if missing:
        raise KeyError(f"submission {path} lacks key(s) {missing}; it has {sorted(data)}")
    return _as_dict(data["cls"], "cls", path), list(data["dec"]), _as_dict(data["seg"], "seg", path)


def _as_dict(entries, key, path):
    if isinstance(entries, dict):
        return dict(entries)
    merged = {}
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"submission {path}: every '{key}' entry must be a one-key object, got {entry!r:.80}")
        name, value = next(iter(entry.items()))
        if name in merged:
            raise ValueError(f"submission {path}: '{key}' lists {name} twice")
        merged[name] = value
    return merged


__all__ = ["build_submission", "mask_to_polygons", "polygons_to_mask", "read_submission", "write_submission"]
