"""Traffic readers, transforms, samplers and loaders on a real miniature tree (JPEG/PNG/JSON/TXT files)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from allinone.data.build import build_train_loader
from allinone.data.samplers import RankBatches
from oneforall.traffic.data import (ClassificationDataset, DetectionDataset, LayoutError, SegmentationDataset)
from oneforall.traffic.loader import ClassAwareSampler, build_eval_loader
from oneforall.traffic.mini import SIGN_CATEGORIES, make_traffic_tree
from oneforall.traffic.transforms import (IMAGENET_MEAN, IMAGENET_STD, ClassificationTest, DetectionTest,
                                          DetectionTrain, SegmentationTest, SegmentationTrain)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("traffic_tree")
    make_traffic_tree(str(path), seed=1)
    return str(path)


def test_classification_reader_uses_list_ids_and_test_folder(root):
    train = ClassificationDataset(root, "train")
    assert len(train) == 32 and sorted(set(train.targets.tolist())) == [0, 1, 2, 3] and train.num_classes == 4
    sample = train[0]
    assert sample["images"].dtype == np.uint8 and sample["images"].shape[2] == 3
    test = ClassificationDataset(root, "test")
    assert [name for name, _ in [(os.path.basename(p), l) for p, l in test.items]] == sorted(
        os.listdir(os.path.join(root, "track1_test_data", "cls", "test")))


def test_classification_list_errors_name_file_and_line(tmp_path, root):
    base = tmp_path / "track1_train_data" / "cls"
    base.mkdir(parents=True)
    (base / "train.txt").write_text("a.jpg 1\nb.jpg\n")
    with pytest.raises(LayoutError, match=r"train\.txt:2"):
        ClassificationDataset(str(tmp_path), "train")
    with pytest.raises(LayoutError, match="classification list not found"):
        ClassificationDataset(str(tmp_path), "val")


def test_detection_reader_maps_category_ids_and_filters_boxes(root, tmp_path):
    data = DetectionDataset(root, "train")
    assert data.category_ids == [c[0] for c in SIGN_CATEGORIES] and data.num_classes == 3
    with open(os.path.join(root, "track1_train_data", "dec", "train.json")) as f:
        coco = json.load(f)
    first = coco["annotations"][0]
    item = next(i for i in data.items if i[1] == first["image_id"])
    x, y, w, h = first["bbox"]
    assert [x, y, x + w, y + h] in item[2].tolist()
    assert data.label_of[first["category_id"]] in item[3].tolist()
    # crowd, ignored and degenerate boxes dropped; an image left without boxes is dropped from training only
    coco["annotations"] = [dict(a, iscrowd=1) if a["image_id"] == 1 else a for a in coco["annotations"]]
    coco["annotations"].append({"id": 999, "image_id": 2, "category_id": 3, "bbox": [1, 1, 0, 5], "area": 0})
    fake = tmp_path / "track1_train_data" / "dec"
    fake.mkdir(parents=True)
    os.symlink(os.path.join(root, "track1_train_data", "dec", "train"), fake / "train")
    (fake / "train.json").write_text(json.dumps(coco))
    filtered = DetectionDataset(str(tmp_path), "train")
    assert 1 not in [i[1] for i in filtered.items] and len(filtered) == len(data) - 1
    assert len(next(i for i in filtered.items if i[1] == 2)[2]) == len(next(i for i in data.items if i[1] == 2)[2])
    test = DetectionDataset(root, "test")
    assert [i[1] for i in test.items] == list(range(1, len(test) + 1))  # image id = line number in test.txt


def test_segmentation_reader_pairs_by_stem(root):
    data = SegmentationDataset(root, "train")
    sample = data[0]
    assert sample["targets"].shape == sample["images"].shape[:2] and sample["name"].endswith(".png")
    assert set(np.unique(sample["targets"])) <= {0, 2, 5, 10, 13, 255}
    label_dir = os.path.join(root, "track1_train_data", "seg", "label", "val")
    moved = os.path.join(label_dir, "val_0000.png")
    os.rename(moved, moved + ".bak")
    try:
        with pytest.raises(LayoutError, match="val_0000.jpg"):
            SegmentationDataset(root, "val")
    finally:
        os.rename(moved + ".bak", moved)


def test_three_normalisations(root):
    image = np.full([20, 30, 3], 255, np.uint8)
    cls = ClassificationTest((16, 16))({"images": image})["images"]
    np.testing.assert_allclose(cls[:, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)
    det = DetectionTest((24, 24))({"images": image})
    np.testing.assert_allclose(det["images"][:, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)
    np.testing.assert_allclose(det["scale_factor"], [24 / 20, 24 / 30])
    seg = SegmentationTest()({"images": image})["images"]
    assert seg.shape == (3, 20, 30) and np.allclose(seg, 1.0)


def test_segmentation_crop_reads_width_then_height_and_pads_with_ignore():
    np.random.seed(0)
    image = np.full([30, 50, 3], 200, np.uint8)
    label = np.ones([30, 50], np.int64)
    out = SegmentationTrain(crop_wh=(20, 40), scales=(1.0,), flip_prob=0, distort_prob=0)(
        {"images": image, "targets": label})
    assert out["images"].shape == (3, 40, 20) and out["targets"].shape == (40, 20)  # portrait: 40 high, 20 wide
    assert (out["targets"] == 255).sum() == 10 * 20  # 10 padded rows are ignored
    padded_rows = out["images"][:, (out["targets"] == 255).all(1)]
    np.testing.assert_allclose(padded_rows, (127 / 255 - 0.5) / 0.5, rtol=1e-6)  # 127.5 cast to uint8


def test_detection_train_boxes_become_normalised_centres():
    image = np.zeros([100, 200, 3], np.uint8)
    sample = {"images": image, "gt_boxes": np.array([[20, 10, 60, 50]], np.float32), "gt_classes": np.array([2])}
    out = DetectionTrain(short_sides=(50,), max_long=80, flip_prob=0, crop_prob=0)(sample)
    assert out["images"].shape == (3, 40, 80)  # short side 50 would make the long side 100 > 80
    np.testing.assert_allclose(out["gt_boxes"], [[0.2, 0.3, 0.2, 0.4]], rtol=1e-5)
    flipped = DetectionTrain(short_sides=(50,), max_long=80, flip_prob=1, crop_prob=0)(sample)
    np.testing.assert_allclose(flipped["gt_boxes"], [[0.8, 0.3, 0.2, 0.4]], rtol=1e-5)


def test_class_aware_sampler_draws_whole_classes_and_resumes():
    targets = np.repeat(np.arange(5), [1, 2, 3, 4, 5])
    sampler = ClassAwareSampler(targets, 8, seed=3)
    for _ in range(20):
        batch = sampler.next_batch()
        assert len(batch) == 8
        for cls in set(targets[batch].tolist()):
            picked = [i for i in batch if targets[i] == cls]
            assert len(set(picked)) == min(len(picked), (targets == cls).sum())  # distinct while the class allows
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(3)]
    sampler.set_state_dict(state)
    assert [sampler.next_batch() for _ in range(3)] == expected


def test_ranks_split_each_global_batch():
    targets = np.arange(12) % 4
    batches = [RankBatches(ClassAwareSampler(targets, 8, seed=5), rank, 2, task=1) for rank in (0, 1)]
    whole = ClassAwareSampler(targets, 8, seed=5)
    for (rank0, rank1) in zip(*[iter(b) for b in batches]):
        assert [i for i, _ in rank0] + [i for i, _ in rank1] == whole.next_batch()
        break


def test_train_loader_gives_one_batch_per_task_in_order(root):
    tasks = {
        "segmentation": {"type": "TrafficSegmentation", "batch_size": 2,
                         "transform": {"crop_wh": [48, 32], "scales": [1.0]}},
        "fgvc": {"type": "TrafficClassification", "batch_size": 4, "sampler": {"name": "ClassAwareSampler"},
                 "transform": {"size": [32, 32]}},
        "trafficsign": {"type": "TrafficDetection", "batch_size": 2,
                        "transform": {"short_sides": [64], "max_long": 80, "crop_short_sides": [64],
                                      "crop_range": [48, 64]}},
    }
    with build_train_loader(tasks, root=root, seed=0) as loader:
        batch = next(loader)
    assert list(batch) == ["segmentation", "fgvc", "trafficsign"]
    assert list(batch["segmentation"]["images"].shape) == [2, 3, 32, 48]
    assert list(batch["fgvc"]["images"].shape) == [4, 3, 32, 32]
    det = batch["trafficsign"]
    assert len(det["gt_boxes"]) == 2 and det["pad_mask"].shape[0] == 2
    for image_mask, boxes in zip(det["pad_mask"].numpy(), det["gt_boxes"]):
        assert image_mask.max() == 1 and ((boxes.numpy() > 0) & (boxes.numpy() <= 1)).all()


def test_eval_loader_covers_every_image_once(root):
    data = DetectionDataset(root, "val", DetectionTest((48, 48)))
    ids = [i for batch in build_eval_loader(data, 4) for i in batch["image_id"].numpy().tolist()]
    assert ids == [item[1] for item in data.items]


def test_mini_tree_writes_real_files(root):
    label = Image.open(os.path.join(root, "track1_train_data", "seg", "label", "train", "train_0000.png"))
    assert label.mode == "L"
    with open(os.path.join(root, "track1_test_data", "dec", "test.txt")) as f:
        names = f.read().split()
    assert all(os.path.exists(os.path.join(root, "track1_test_data", "dec", "test", n)) for n in names)
