"""The classification sets of the OneForAll recipe, read by one generic reader per on-disk layout family.

A set is a folder plus its train and test *sources*; each source is one of four layout families:

* `folders`: `<dir>/<class>/<image>` (a sub-folder per class);
* `list`: a text file of `<image path> <label or other fields>` lines;
* `csv`: a delimited table whose header (or given column names) names the image and label columns;
* `lst`: MXNet's `.lst` files, `<index>\\t<label>\\t<image path>`.

Labels are the integers the files give plus an offset (e.g. Oxford-102 folders `1..102` -> `0..101`), or class
names (a folder name, a field, the parent folder of a listed path) numbered in sorted order over the train and test
sources together, so train and test agree. Items: `train` = `(path, label, 0)` (the ReID triplet shape the training
loaders take), `items` = the test split as `(path, label)` (what `ClassificationEvaluator` reads). The 20 sets'
folders and splits are the recipe table's (docs/data.md, "Classification sets of the OneForAll recipe").
"""
import csv
import logging
import os

from ...registry import DATASETS
from .base import DatasetLayoutError, dataset_root, parse_int, read_list, require_dir, require_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
logger = logging.getLogger(__name__)


def read_folders(folder, dir, label="name", offset=0):
    """`<folder>/<dir>/<class>/<image>`: label = the class folder's name, or its integer value (`label='int'`)."""
    base = require_dir(os.path.join(folder, dir), f"{folder}/{dir}/<class>/<image>")
    items = []
    for name in sorted(entry.name for entry in os.scandir(base) if entry.is_dir()):
        if label != "name" and not name.lstrip("-").isdigit():
            raise DatasetLayoutError(f"{base}/{name}: class folders must be integers here (label='int'), got '{name}'")
        key = name if label == "name" else int(name) + offset
        items += [(os.path.join(base, name, image), key) for image in sorted(os.listdir(os.path.join(base, name)))
                  if image.lower().endswith(IMAGE_SUFFIXES)]
    return items


def read_list_file(folder, file, image_dir="", label="field", field=1, offset=0, suffix="", sep=None,
                   max_fields=None, class_depth=None):
    """Lines `<image path> ...`: label = the integer field `field` (+ offset), the class name in field `field`
    (`label='name'`; `max_fields=2` keeps spaces in the name), or the listed path's folder (`label='dir'`; its first
    `class_depth` components when given, e.g. CompCars' `<make>/<model>` of `<make>/<model>/<year>/<image>`).
    Paths are relative to `<folder>/<image_dir>` (a leading '/' is dropped) and get `suffix` appended."""
    path = os.path.join(folder, file)
    layout = f"{path} (lines '<image path> ...', label {label})"
    items = []
    for number, line in read_list(path, layout):
        fields = line.split(sep, max_fields - 1 if max_fields else -1)
        rel_path = fields[0].lstrip("/") + suffix
        if label == "dir":
            key = "/".join(os.path.dirname(rel_path).split("/")[:class_depth])
            if not key:
                raise DatasetLayoutError(f"{path}, line {number}: the class is the image's folder, but "
                                         f"'{fields[0]}' has none")
        elif len(fields) <= field:
            raise DatasetLayoutError(f"{path}, line {number}: expected a label in field {field + 1}, got '{line}'")
        else:
            key = fields[field] if label == "name" else parse_int(fields[field], path, number, "the label") + offset
        items.append((os.path.join(folder, image_dir, rel_path), key))
    return items


def read_csv_file(folder, file, path_column, label_column, image_dir="", delimiter=",", offset=0, suffix="",
                  fieldnames=None):
    """A table with a header row (or none, with `fieldnames` naming the columns): image path from `path_column`,
    integer label from `label_column` (+ offset)."""
    path = require_file(os.path.join(folder, file), f"{folder}/{file} (a '{delimiter}' table with columns "
                                                   f"{path_column}, {label_column})")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, fieldnames=fieldnames, delimiter=delimiter))
    if rows and not {path_column, label_column} <= set(rows[0]):
        raise DatasetLayoutError(f"{path}: needs columns '{path_column}' and '{label_column}', has {list(rows[0])}")
    return [(os.path.join(folder, image_dir, row[path_column] + suffix),
             parse_int(row[label_column], path, number, f"column {label_column}") + offset)
            for number, row in enumerate(rows, 1 if fieldnames else 2)]


def read_lst_file(folder, file, image_dir="", offset=0):
    """MXNet `.lst`: `<index>\\t<label>\\t<image path>` per line (the label may be a float like '3.000000')."""
    path = os.path.join(folder, file)
    items = []
    for number, line in read_list(path, f"{path} (lines '<index>\\t<label>\\t<image path>')"):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DatasetLayoutError(f"{path}, line {number}: expected '<index>\\t<label>\\t<image path>', "
                                     f"got '{line}'")
        try:
            label = int(float(fields[1]))
        except ValueError:
            raise DatasetLayoutError(f"{path}, line {number}: the label must be a number, got '{fields[1]}'") from None
        items.append((os.path.join(folder, image_dir, fields[2]), label + offset))
    return items


LAYOUT_READERS = {"folders": read_folders, "list": read_list_file, "csv": read_csv_file, "lst": read_lst_file}


class ClassificationSet:
    """A classification data set from layout-family sources (see the module doc); `split='test'` (default) or
    `'train'` chooses what `items` holds; `train` always holds the training split."""

    folder = None
    train_sources = ()
    test_sources = ()

    def __init__(self, root=None, split="test", folder=None, extra_train_sources=()):
        if split not in ("train", "test"):
            raise ValueError(f"{type(self).__name__}: split must be 'train' or 'test', got {split!r}")
        self.root = dataset_root(root)
        self.folder = os.path.join(self.root, folder or type(self).folder)
        require_dir(self.folder, f"$ROOT/{folder or type(self).folder}/ ({type(self).__name__})")
        train = self.read(list(self.train_sources) + list(extra_train_sources))
        test = self.read(self.test_sources)
        names = sorted({key for _, key in train + test if isinstance(key, str)})
        self.classes = names or sorted({key for _, key in train + test})
        index = {name: i for i, name in enumerate(names)}
        train, test = ([(path, index.get(key, key)) for path, key in items] for items in (train, test))
        for split_name, items in (("train", train), ("test", test)):
            if not items:
                raise DatasetLayoutError(f"{self.folder}: the {split_name} split has no images "
                                         f"({type(self).__name__} sources {getattr(self, split_name + '_sources')})")
            negative = [path for path, label in items if label < 0]
            if negative:
                raise DatasetLayoutError(f"{self.folder}: negative label for {negative[0]} (check the label offset)")
        self.train = [(path, label, 0) for path, label in train]
        self.items = test if split == "test" else train
        self.num_classes = max(label for _, label in train + test) + 1
        logger.info("%s from %s: %d train, %d test images, %d classes", self.dataset_name, self.folder, len(train),
                    len(test), self.num_classes)

    def read(self, sources):
        items = []
        for source in sources:
            source = dict(source)
            kind = source.pop("layout")
            items += LAYOUT_READERS[kind](self.folder, **source)
        return items

    def __repr__(self):
        return f"{type(self).__name__}({self.folder!r}: {len(self.train)} train, {len(self.items)} items)"


def classification_set(name, dataset_name, folder, train, test):
    """Register a ClassificationSet subclass `name` with its folder and sources."""
    cls = type(name, (ClassificationSet,), {"dataset_name": dataset_name, "folder": folder,
                                            "train_sources": tuple(train), "test_sources": tuple(test),
                                            "__doc__": f"{name}: $ROOT/{folder}/ (classification_sets.py)."})
    return DATASETS.register(cls)


def folders(dir, **kwargs):
    return {"layout": "folders", "dir": dir, **kwargs}


def listed(file, **kwargs):
    return {"layout": "list", "file": file, **kwargs}


# name, dataset_name, folder under the data root, train sources, test sources (the recipe table's order)
SETS = [
    ("FGVCaircraft", "fgvcaircraft", "intern_test/fgvcaircraft/fgvc-aircraft-2013b/data",
     [listed(f"images_variant_{s}.txt", image_dir="images", label="name", suffix=".jpg", max_fields=2)
      for s in ("train", "val")],
     [listed("images_variant_test.txt", image_dir="images", label="name", suffix=".jpg", max_fields=2)]),
    ("CIFAR100", "cifar100", "intern_test/cifar100", [folders("train", label="int")], [folders("test", label="int")]),
    ("Daimlerpedcls", "daimlerpedcls", "Decathlon/daimlerpedcls", [folders("train")], [folders("val")]),
    ("DTD", "dtd", "intern_test/dtd",
     [listed(f"labels/{s}1.txt", image_dir="images", label="dir") for s in ("train", "val")],
     [listed("labels/test1.txt", image_dir="images", label="dir")]),
    ("GTSRB", "gtsrb", "intern_test/gtsrb/GTSRB_official",
     [folders("Final_Training/Images", label="int")],
     [{"layout": "csv", "file": "Final_Test/GT-final_test.csv", "path_column": "Filename",
       "label_column": "ClassId", "image_dir": "Final_Test/Images", "delimiter": ";"}]),
    ("ImageNet1kBD", "imagenet1k", "ILSVRC2012", [listed("train_list.txt")], [listed("val_list.txt")]),
    ("Omniglot", "omniglot", "Decathlon/omniglot", [folders("train")], [folders("val")]),
    ("SVHN", "svhn", "intern_test/svhn", [folders("train", label="int")], [folders("test", label="int")]),
    ("Ucf101", "ucf101", "Decathlon/ucf101", [folders("train")], [folders("val")]),
    ("Oxford102Flower", "oxford102flower", "intern_test/oxford102flower/Oxford_102_Flower/dataset",
     [folders("train", label="int", offset=-1)], [folders("valid", label="int", offset=-1)]),
    ("PatchCamelyon", "patchcamelyon", "intern_test/patchcamelyon", [folders("train")], [folders("valid")]),
    ("Fer2013", "fer2013", "intern_test/fer2013", [folders("train")], [folders("test")]),
    ("OxfordPet", "oxfordpet", "intern_test/oxfordpet/Oxford_IIIT_Pet",
     [listed("annotations/trainval.txt", image_dir="images", suffix=".jpg", offset=-1)],
     [listed("annotations/test.txt", image_dir="images", suffix=".jpg", offset=-1)]),
    ("Food101", "food101", "intern_test/food101/food-101",
     [listed("meta/train.txt", image_dir="images", label="dir", suffix=".jpg")],
     [listed("meta/test.txt", image_dir="images", label="dir", suffix=".jpg")]),
    ("CIFAR10", "cifar10", "intern_test/cifar10", [folders("train", label="int")], [folders("test", label="int")]),
    ("SUN397", "sun397", "intern_test/sun397",
     [listed("Training_01.txt", image_dir="SUN397", label="dir")],
     [listed("Testing_01.txt", image_dir="SUN397", label="dir")]),
    ("DF20", "df20", "intern_train/df20",
     [{"layout": "csv", "file": "DF20-train_metadata.csv", "path_column": "image_path", "label_column": "class_id",
       "image_dir": "images"}],
     [{"layout": "csv", "file": "DF20-public_test_metadata.csv", "path_column": "image_path",
       "label_column": "class_id", "image_dir": "images"}]),
    ("TsingHuaDogs", "tsinghuadogs", "intern_train/tsinghuadogs/low-resolution",
     [{"layout": "lst", "file": "train.lst"}], [{"layout": "lst", "file": "val.lst"}]),
    ("FoodX251", "foodx251", "intern_train/foodx251",
     [{"layout": "csv", "file": "annot/train_info.csv", "path_column": "image", "label_column": "label",
       "image_dir": "train_set", "fieldnames": ["image", "label"]}],
     [{"layout": "csv", "file": "annot/val_info.csv", "path_column": "image", "label_column": "label",
       "image_dir": "val_set", "fieldnames": ["image", "label"]}]),
    ("CompCars", "compcars", "intern_train/compcars/data",
     [listed("train_test_split/classification/train.txt", image_dir="image", label="dir", class_depth=2)],
     [listed("train_test_split/classification/test.txt", image_dir="image", label="dir", class_depth=2)]),
]

for _entry in SETS:
    classification_set(*_entry)

CLASSIFICATION_SETS = tuple(entry[0] for entry in SETS)
