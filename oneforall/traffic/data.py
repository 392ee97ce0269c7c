"""Readers of the competition's three layouts (Stanford Cars `cls`, TT100K `dec`, BDD100K `seg`) under a root such as

    <root>/track1_train_data/{cls,dec,seg}/...   (train and val splits)
    <root>/track1_test_data/{cls,dec,seg}/...    (test split, no labels)

Each dataset is a `paddle.io.Dataset` whose items are `dataset[index]` (evaluation) or `dataset[(index, seed)]`
(training: the random transform draws from `seed` alone), returning a dict of numpy arrays; `dataset.collate` batches
them. The layouts are spelled out in docs/traffic.md ("Data layout").
"""
import glob
import json
import os

import cv2
import numpy as np
import paddle
from PIL import Image, ImageOps

from allinone.data.io import ImageReadError
from allinone.data.transforms import seeded_global_rngs
from allinone.registry import TRAIN_DATASETS

from .collate import detection_collate, stack_collate

TRAIN_ROOT, TEST_ROOT = "track1_train_data", "track1_test_data"
SPLITS = ("train", "val", "test")


class LayoutError(FileNotFoundError):
    """A file or folder of the expected layout is missing or malformed; the message names it."""


def _require(path, what):
    if not os.path.exists(path):
        raise LayoutError(f"{what} not found: {path} (layout: docs/traffic.md, 'Data layout')")
    return path


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def read_rgb_pil(path):
    """RGB uint8 HWC via PIL, EXIF orientation applied (how the classification images are read)."""
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None


def read_rgb_cv2(path):
    """RGB uint8 HWC via OpenCV (how the detection and segmentation images are read)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class TrafficDataset(paddle.io.Dataset):
    """Common item protocol: `self.items` (one entry per sample), `load(i) -> sample`, `transform(sample) -> sample`."""

    task = None

    def __init__(self, split, transform=None):
        _check_split(split)
        self.split, self.transform = split, transform

    @classmethod
    def from_config(cls, task, root, split="train", transform=None, **kwargs):
        """For allinone's train loader: `transform` holds the keyword arguments of the task's transform."""
        from .transforms import build_transform

        if task != cls.task:
            raise ValueError(f"{cls.__name__} serves task {cls.task!r}, not {task!r}")
        return cls(root or "datasets", split, build_transform(task, split == "train", **(transform or {})), **kwargs)

    @property
    def targets(self):
        """One label per item for the samplers (all 0 unless the task has image labels)."""
        return np.zeros(len(self.items), np.int64)

    def __len__(self):
        return len(self.items)

    def item_name(self, index):
        """What loading errors call an item: its image file."""
        return self.items[index][0]

    def __getitem__(self, key):
        index, seed = key if isinstance(key, (tuple, list)) else (key, None)
        sample = self.load(int(index))
        if self.transform is not None:
            if seed is None:
                sample = self.transform(sample)
            else:
                with seeded_global_rngs(seed):
                    sample = self.transform(sample)
        sample["index"] = np.int64(index)
        return sample

    collate = staticmethod(stack_collate)


@TRAIN_DATASETS.register(name="TrafficClassification")
class ClassificationDataset(TrafficDataset):
    """`cls/{train,val}.txt` lines `<file> <class id>` (ids used as they are, 0..K-1), images in `cls/<split>/`;
    test: every file of `cls/test/`, sorted by name. Sample: image (RGB uint8), targets, name."""

    task = "fgvc"

    def __init__(self, root, split="train", transform=None):
        super().__init__(split, transform)
        if split == "test":
            folder = _require(os.path.join(root, TEST_ROOT, "cls", "test"), "classification test folder")
            self.items = [(os.path.join(folder, name), -1) for name in sorted(os.listdir(folder))]
        else:
            base = os.path.join(root, TRAIN_ROOT, "cls")
            list_file = _require(os.path.join(base, f"{split}.txt"), "classification list")
            self.items = []
            with open(list_file, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    fields = line.split()
                    if not fields:
                        continue
                    if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                        raise LayoutError(f"{list_file}:{number}: expected '<file name> <class id>', got {line!r}")
                    self.items.append((os.path.join(base, split, fields[0]), int(fields[1])))
        if not self.items:
            raise LayoutError(f"classification {split} split under {root} is empty")

    @property
    def targets(self):
        return np.array([label for _, label in self.items], dtype=np.int64)

    @property
    def num_classes(self):
        return int(self.targets.max()) + 1

    def load(self, index):
        path, label = self.items[index]
        return {"images": read_rgb_pil(path), "targets": np.int64(label), "name": os.path.basename(path)}


@TRAIN_DATASETS.register(name="TrafficDetection")
class DetectionDataset(TrafficDataset):
    """COCO json `dec/<split>.json` with images in `dec/<split>/`. Category ids (ascending) map to labels 0..K-1.
    Images without a usable box are dropped in training (crowd, ignored, degenerate boxes are removed); val keeps
    every image. Test: `dec/test.txt` names (image id = 1-based line number), categories from `category_json`
    (default: the training json). Sample: image, gt_boxes [n, 4] xyxy pixels, gt_classes [n], image_id."""

    task = "trafficsign"

    def __init__(self, root, split="train", transform=None, category_json=None):
        super().__init__(split, transform)
        category_json = category_json or os.path.join(root, TRAIN_ROOT, "dec", "train.json")
        if split == "test":
            with open(_require(category_json, "detection category json"), encoding="utf-8") as f:
                self.category_ids = sorted(c["id"] for c in json.load(f)["categories"])
            base = os.path.join(root, TEST_ROOT, "dec")
            with open(_require(os.path.join(base, "test.txt"), "detection test list"), encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
            self.items = [(os.path.join(base, "test", name), number, np.zeros([0, 4], np.float32),
                           np.zeros([0], np.int64)) for number, name in enumerate(names, 1)]
        else:
            base = os.path.join(root, TRAIN_ROOT, "dec")
            self.annotation_file = _require(os.path.join(base, f"{split}.json"), "detection annotation json")
            with open(self.annotation_file, encoding="utf-8") as f:
                coco = json.load(f)
            self.category_ids = sorted(c["id"] for c in coco["categories"])
            self.items = self.read_items(coco, os.path.join(base, split), keep_empty=split != "train")
        self.label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        self.num_classes = len(self.category_ids)
        if not self.items:
            raise LayoutError(f"detection {split} split under {root} has no usable image")

    def read_items(self, coco, folder, keep_empty):
        label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        boxes = {}
        for ann in coco.get("annotations", []):
            x, y, w, h = ann["bbox"]
            if ann.get("iscrowd", 0) or ann.get("ignore", False) or ann.get("area", w * h) <= 0:
                continue
            if w <= 1e-5 or h <= 1e-5:
                continue
            if ann["category_id"] not in label_of:
                raise LayoutError(f"{self.annotation_file}: annotation {ann.get('id')} has category_id "
                                  f"{ann['category_id']}, not in categories {self.category_ids}")
            boxes.setdefault(ann["image_id"], []).append(
                (np.round([x, y, x + w, y + h], 3), label_of[ann["category_id"]]))
        items = []
        for image in sorted(coco["images"], key=lambda img: img["id"]):
            path = os.path.join(folder, image["file_name"])
            found = boxes.get(image["id"], [])
            if not os.path.exists(path) or (not found and not keep_empty):
                continue
            items.append((path, image["id"], np.array([b for b, _ in found], np.float32).reshape([-1, 4]),
                          np.array([c for _, c in found], np.int64)))
        return items

    def load(self, index):
        path, image_id, boxes, classes = self.items[index]
        image = read_rgb_cv2(path)
        return {"images": image, "gt_boxes": boxes.copy(), "gt_classes": classes.copy(), "image_id": np.int64(image_id),
                "im_shape": np.array(image.shape[:2], np.float32), "scale_factor": np.ones(2, np.float32)}

    collate = staticmethod(detection_collate)


@TRAIN_DATASETS.register(name="TrafficSegmentation")
class SegmentationDataset(TrafficDataset):
    """`seg/images/<split>/*.jpg` with `seg/label/<split>/*.png` (train ids 0..18, 255 = ignore), paired by file
    stem; test: the images only. Sample: image (RGB uint8), targets [H, W] int64 (absent for test), name."""

    task = "segmentation"

    def __init__(self, root, split="train", transform=None, num_classes=19):
        super().__init__(split, transform)
        self.num_classes = num_classes
        base = os.path.join(root, TEST_ROOT if split == "test" else TRAIN_ROOT, "seg")
        images = sorted(glob.glob(os.path.join(_require(os.path.join(base, "images", split),
                                                        "segmentation image folder"), "*.jpg")))
        if split == "test":
            self.items = [(path, None) for path in images]
        else:
            label_dir = _require(os.path.join(base, "label", split), "segmentation label folder")
            labels = {os.path.splitext(name)[0]: os.path.join(label_dir, name)
                      for name in os.listdir(label_dir) if name.endswith(".png")}
            unpaired = [path for path in images if _stem(path) not in labels]
            if unpaired:
                raise LayoutError(f"{len(unpaired)} segmentation image(s) without a label <stem>.png in {label_dir}: "
                                  f"{[os.path.basename(p) for p in unpaired[:5]]}")
            self.items = [(path, labels[_stem(path)]) for path in images]
        if not self.items:
            raise LayoutError(f"segmentation {split} split under {base} has no image")

    def load(self, index):
        path, label_path = self.items[index]
        sample = {"images": read_rgb_cv2(path), "name": _stem(path) + ".png"}
        if label_path is not None:
            try:
                with Image.open(label_path) as label:
                    sample["targets"] = np.asarray(label).astype(np.int64)
            except OSError as err:
                raise ImageReadError(f"cannot read label {label_path}: {err}") from None
        return sample


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


DATASETS = {"fgvc": ClassificationDataset, "trafficsign": DetectionDataset, "segmentation": SegmentationDataset}

__all__ = ["ClassificationDataset", "DATASETS", "DetectionDataset", "LayoutError", "SegmentationDataset",
           "read_rgb_cv2", "read_rgb_pil"]
