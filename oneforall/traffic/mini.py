"""A miniature traffic tree in the competition's layouts (real JPEG/PNG/JSON/TXT files), for tests and the demo.

* cls: `num_cls_classes` "car" classes, each a body colour and shape on a noisy background.
* dec: road-side scenes with 1-3 drawn signs of 3 kinds (red ring, blue disc, yellow triangle); COCO json with
  non-contiguous category ids, so the label <-> category id mapping is exercised.
* seg: street scenes (sky, building, road, a car, a pole) with BDD100K train ids and an ignored band (255).
Test folders hold the val images again (test list, test images), so a submission made on the test split can be
scored against the val ground truth.
"""
import json
import os

import cv2
import numpy as np
from PIL import Image

from .data import TEST_ROOT, TRAIN_ROOT

SIGN_CATEGORIES = ((3, "pn", (220, 30, 30)), (17, "pl40", (30, 60, 220)), (37, "w57", (235, 200, 20)))
CAR_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (210, 190, 30), (150, 60, 170), (30, 170, 180))
SEG_CLASSES = {"road": 0, "building": 2, "pole": 5, "sky": 10, "car": 13}


def _noise(rng, height, width, base=110, spread=25):
    return np.clip(rng.normal(base, spread, size=[height, width, 3]), 0, 255).astype(np.uint8)


def _write_jpg(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def car_image(rng, label, size=48):
    image = _noise(rng, size, size)
    colour = CAR_COLOURS[label % len(CAR_COLOURS)]
    w, h = rng.integers(size // 2, size - 8), rng.integers(size // 4, size // 2)
    x, y = rng.integers(2, size - w - 2), rng.integers(size // 4, size - h - 6)
    if (label // len(CAR_COLOURS)) % 2 == 0:
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
    else:
        cv2.ellipse(image, (int(x + w // 2), int(y + h // 2)), (int(w // 2), int(h // 2)), 0, 0, 360, colour, -1)
    for wheel in (x + w // 4, x + 3 * w // 4):
        cv2.circle(image, (int(wheel), int(y + h)), max(2, size // 12), (20, 20, 20), -1)
    return image


def draw_sign(image, kind, box):
    x1, y1, x2, y2 = (int(v) for v in box)
    colour = SIGN_CATEGORIES[kind][2]
    centre, radius = ((x1 + x2) // 2, (y1 + y2) // 2), (x2 - x1) // 2
    if kind == 0:
        cv2.circle(image, centre, radius, colour, max(2, radius // 3))
        cv2.circle(image, centre, max(1, radius - radius // 3), (245, 245, 245), -1)
    elif kind == 1:
        cv2.circle(image, centre, radius, colour, -1)
    else:
        points = np.array([[centre[0], y1], [x1, y2], [x2, y2]], np.int32)
        cv2.fillPoly(image, [points], colour)


def sign_scene(rng, height=96, width=112):
    image = _noise(rng, height, width, base=90, spread=30)
    boxes, kinds = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            side = int(rng.integers(14, 30))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            box = (x, y, x + side, y + side)
            if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in boxes):
                boxes.append(box)
                kinds.append(int(rng.integers(len(SIGN_CATEGORIES))))
                draw_sign(image, kinds[-1], box)
                break
    return image, boxes, kinds


def street_scene(rng, height=64, width=96):
    """An RGB image and its train-id label: sky over buildings over road, a car on the road, a pole."""
    label = np.full([height, width], SEG_CLASSES["road"], np.uint8)
    horizon = int(rng.integers(height // 3, height // 2))
    skyline = int(rng.integers(horizon // 3, 2 * horizon // 3))
    label[:horizon] = SEG_CLASSES["building"]
    label[:skyline] = SEG_CLASSES["sky"]
    car_w, car_h = int(rng.integers(width // 5, width // 3)), int(rng.integers(height // 6, height // 4))
    car_x, car_y = int(rng.integers(0, width - car_w)), int(rng.integers(horizon + 2, height - car_h))
    label[car_y:car_y + car_h, car_x:car_x + car_w] = SEG_CLASSES["car"]
    pole_x = int(rng.integers(2, width - 4))
    label[skyline // 2:horizon + 6, pole_x:pole_x + 2] = SEG_CLASSES["pole"]
    colours = {0: (90, 90, 95), 2: (150, 100, 70), 5: (230, 230, 230), 10: (110, 170, 235), 13: (200, 30, 40)}
    image = np.zeros([height, width, 3], np.float32)
    for cls, colour in colours.items():
        image[label == cls] = colour
    image = np.clip(image + rng.normal(0, 12, size=image.shape), 0, 255).astype(np.uint8)
    label = label.copy()
    label[height - 2:] = 255  # an ignored band at the bottom, as the ego-car hood of BDD100K labels
    return image, label


def make_traffic_tree(out_dir, seed=0, num_cls_classes=4, cls_per_class=(8, 3), dec_images=(16, 6),
                      seg_images=(8, 3)):
    """Write the miniature tree under `out_dir`; returns a summary {task: {split: count}}."""
    rng = np.random.default_rng(seed)
    train_root, test_root = os.path.join(out_dir, TRAIN_ROOT), os.path.join(out_dir, TEST_ROOT)
    summary = {}
    # classification
    cls_dir = os.path.join(train_root, "cls")
    val_names = []
    for split, per_class in zip(("train", "val"), cls_per_class):
        lines = []
        for label in range(num_cls_classes):
            for i in range(per_class):
                name = f"{split}_{label:03d}_{i:03d}.jpg"
                image = car_image(rng, label)
                _write_jpg(os.path.join(cls_dir, split, name), image)
                lines.append(f"{name} {label}")
                if split == "val":
                    _write_jpg(os.path.join(test_root, "cls", "test", name), image)
                    val_names.append(name)
        with open(os.path.join(cls_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    summary["fgvc"] = {"train": num_cls_classes * cls_per_class[0], "val": num_cls_classes * cls_per_class[1]}
    # detection
    dec_dir = os.path.join(train_root, "dec")
    categories = [{"id": cid, "name": name, "supercategory": "sign"} for cid, name, _ in SIGN_CATEGORIES]
    for split, count in zip(("train", "val"), dec_images):
        images, annotations = [], []
        for number in range(count):
            image, boxes, kinds = sign_scene(rng)
            name = f"{split}_{number:04d}.jpg"
            _write_jpg(os.path.join(dec_dir, split, name), image)
            image_id = number + 1
            images.append({"id": image_id, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
            for box, kind in zip(boxes, kinds):
                w, h = box[2] - box[0], box[3] - box[1]
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": SIGN_CATEGORIES[kind][0], "bbox": [box[0], box[1], w, h],
                                    "area": w * h, "iscrowd": 0})
            if split == "val":
                _write_jpg(os.path.join(test_root, "dec", "test", name), image)
        with open(os.path.join(dec_dir, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    with open(os.path.join(test_root, "dec", "test.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(f"val_{n:04d}.jpg" for n in range(dec_images[1])) + "\n")
    with open(os.path.join(test_root, "dec", "val.json"), "w", encoding="utf-8") as f:
        json.dump({"images": [], "annotations": [], "categories": categories}, f)
    summary["trafficsign"] = dict(zip(("train", "val"), dec_images))
    # segmentation
    seg_dir = os.path.join(train_root, "seg")
    for split, count in zip(("train", "val"), seg_images):
        for number in range(count):
            image, label = street_scene(rng)
            stem = f"{split}_{number:04d}"
            _write_jpg(os.path.join(seg_dir, "images", split, stem + ".jpg"), image)
            os.makedirs(os.path.join(seg_dir, "label", split), exist_ok=True)
            Image.fromarray(label).save(os.path.join(seg_dir, "label", split, stem + ".png"))
            if split == "val":
                _write_jpg(os.path.join(test_root, "seg", "images", "test", stem + ".jpg"), image)
    summary["segmentation"] = dict(zip(("train", "val"), seg_images))
    return summary


__all__ = ["SEG_CLASSES", "SIGN_CATEGORIES", "make_traffic_tree"]
