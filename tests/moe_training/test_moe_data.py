"""The OneForAll recipe's training-set readers (one per layout family), their labels, and their errors."""
import os
import shutil

import numpy as np
import pytest

import allinone.data  # noqa: F401  (registers the readers)
from allinone.data.datasets import DatasetLayoutError
from allinone.data.datasets.classification_sets import CLASSIFICATION_SETS
from allinone.registry import DATASETS


def build(name, root, **args):
    return DATASETS.build({"name": name, "root": root, **args})


def test_recipe_sets_are_all_registered():
    assert len(CLASSIFICATION_SETS) == 20
    for name in CLASSIFICATION_SETS + ("PersonAll", "VeriAll"):
        assert name in DATASETS


@pytest.mark.parametrize("name", CLASSIFICATION_SETS)
def test_classification_sets_read_their_layout(oneforall_root, name):
    data = build(name, oneforall_root)
    train_labels = sorted({label for _, label, _ in data.train})
    test_labels = sorted({label for _, label in data.items})
    assert train_labels == test_labels == [0, 1, 2] and data.num_classes == 3
    assert all(os.path.isfile(path) for path, _, _ in data.train) and all(os.path.isfile(p) for p, _ in data.items)
    assert not {path for path, _, _ in data.train} & {path for path, _ in data.items}
    assert [(p, l) for p, l, _ in data.train] == build(name, oneforall_root, split="train").items


def label_of(data, fragment):
    (label,) = {label for path, label, _ in data.train if fragment in path}
    return label


def test_label_rules(oneforall_root):
    """Integer folders with an offset, names with spaces, list offsets, folder prefixes, .lst float labels, csv."""
    assert label_of(build("Oxford102Flower", oneforall_root), "/train/1/") == 0
    assert label_of(build("CIFAR100", oneforall_root), "/train/2/") == 2
    aircraft = build("FGVCaircraft", oneforall_root)
    assert aircraft.classes == ["Boeing 707-000", "Boeing 717-100", "Boeing 727-200"]
    assert label_of(build("OxfordPet", oneforall_root), "breed_00_") == 0  # class id 1 in the list -> 0
    cars = build("CompCars", oneforall_root)
    assert cars.classes == ["1/10", "1/12", "2/11"]  # <make>/<model>, the year dropped
    sun = build("SUN397", oneforall_root)
    assert sun.classes == ["a/scene_00/indoor", "a/scene_02", "b/scene_01"]
    assert label_of(build("TsingHuaDogs", oneforall_root), "201-n000001") == 1
    gtsrb = build("GTSRB", oneforall_root)
    assert all(path.endswith(".ppm") for path, _ in gtsrb.items) and label_of(gtsrb, "/00002/") == 2
    assert sorted(label for path, label in gtsrb.items if path.endswith("00201.ppm")) == [2]


def test_class_images_agree_between_splits(oneforall_root):
    """The painter draws one pattern (two colours) per class: a test image's colour quantiles are nearest to its own
    class's mean in the train split for all but at most one image (a label permutation between the splits fails)."""
    from allinone.data.io import read_image

    for name in ("FGVCaircraft", "SUN397", "DF20", "FoodX251", "CompCars", "ImageNet1kBD"):
        data = build(name, oneforall_root)
        mean = lambda path: np.percentile(np.asarray(read_image(path), dtype=np.float64).reshape(-1, 3),  # noqa: E731
                                          [10, 90], axis=0).ravel()
        centres = np.stack([np.mean([mean(p) for p, label, _ in data.train if label == c], axis=0)
                            for c in range(data.num_classes)])
        predicted = [int(np.argmin(((centres - mean(p)) ** 2).sum(1))) for p, _ in data.items]
        matches = sum(p == label for p, (_, label) in zip(predicted, data.items))
        assert matches >= len(data.items) - 1, (name, predicted)


def test_personall_and_veriall(oneforall_root):
    person = build("PersonAll", oneforall_root)
    assert len(person.train) == 20 and {pid for _, pid, _ in person.train} == set(range(5))
    assert sorted({cam for _, _, cam in person.train}) == [0, 1, 2, 3]
    assert person.query == person.gallery == []
    assert person.train[0][0].endswith(os.path.join("mask_train_v3", "0000", "0000_000_01_0303morning_0000_0.jpg"))
    veri = build("VeriAll", oneforall_root)
    assert veri.dataset_name == "veriall" and {pid for _, pid, _ in veri.train} == {f"{v:05d}" for v in range(5)}


def test_merged_training_labels(oneforall_root):
    from allinone.data.common import TrainImageDataset

    person = build("PersonAll", oneforall_root)
    merged = TrainImageDataset([("PersonAll", person.train)], None, "person")
    assert sorted(merged.pid_labels) == [f"PersonAll_{pid}" for pid in range(5)]


@pytest.fixture
def broken(oneforall_root, tmp_path):
    def copy(folder):
        shutil.copytree(os.path.join(oneforall_root, folder), os.path.join(tmp_path, folder))
        return str(tmp_path), os.path.join(tmp_path, folder)

    return copy


def test_errors_name_file_and_line(broken):
    root, folder = broken("ILSVRC2012")
    with open(os.path.join(folder, "val_list.txt"), "a") as f:
        f.write("val/x.JPEG seven\n")
    with pytest.raises(DatasetLayoutError, match=r"val_list.txt, line 7: the label must be an integer"):
        build("ImageNet1kBD", root)

    root, folder = broken("intern_train/df20")
    with open(os.path.join(folder, "DF20-train_metadata.csv"), "w") as f:
        f.write("path,label\na.jpg,1\n")
    with pytest.raises(DatasetLayoutError, match=r"DF20-train_metadata.csv: needs columns 'image_path' and 'class_id'"):
        build("DF20", root)

    root, folder = broken("intern_test/oxford102flower")
    os.makedirs(os.path.join(folder, "Oxford_102_Flower/dataset/train/0"))
    shutil.copy(os.path.join(folder, "Oxford_102_Flower/dataset/train/1/0000.jpg"),
                os.path.join(folder, "Oxford_102_Flower/dataset/train/0/0000.jpg"))
    with pytest.raises(DatasetLayoutError, match="negative label .*train/0/0000.jpg"):
        build("Oxford102Flower", root)

    root, folder = broken("intern_train/tsinghuadogs")
    with open(os.path.join(folder, "low-resolution/val.lst"), "a") as f:
        f.write("9 3 x.jpg\n")
    with pytest.raises(DatasetLayoutError, match=r"val.lst, line 7: expected '<index>"):
        build("TsingHuaDogs", root)

    with pytest.raises(DatasetLayoutError, match="missing folder .*PersonAll"):
        build("PersonAll", root)
