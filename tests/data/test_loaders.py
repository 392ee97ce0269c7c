"""The evaluation loader (order, rank shares, unreadable images) and the multi-task training loader (batch sizes per
task and rank, merged labels, homogeneous mode, resume, skipped images)."""
import logging
import os

import numpy as np
import pytest

import paddle

from allinone.data import ImageReadError, build_test_loader, build_test_transform, gather_in_order, read_image
from allinone.registry import DATASETS, TRAIN_DATASETS

SMALL = {"size": [32, 16], "mean": [127.5] * 3, "std": [127.5] * 3}


def person_and_face_tasks(**person):
    return {"face": {"datasets": ["MS1MV3"], "batch_size": 6, "transform": {**SMALL, "erasing_prob": 0.5}},
            "person": {"datasets": ["Market1501", {"name": "MSMT17", "version": 2}], "batch_size": 8,
                       "sampler": {"name": "IdentitySampler", "num_instances": 2},
                       "transform": {**SMALL, "autoaug_prob": 0.5}, **person}}


def targets_of(batches):
    return [{task: (batch["targets"].numpy().tolist(), batch["dataset_name"]) for task, batch in b.items()}
            for b in batches]


def test_test_loader_yields_every_image_once_in_order(mini_root):
    market = DATASETS.build({"name": "Market1501", "root": mini_root})
    items = market.query + market.gallery
    batches = list(build_test_loader(items, build_test_transform((32, 16)), batch_size=8))
    assert [len(b["index"]) for b in batches] == [8, 8, 8, 3]
    assert np.concatenate([b["index"].numpy() for b in batches]).tolist() == list(range(27))
    assert list(batches[0]["images"].shape) == [8, 3, 32, 16] and str(batches[0]["images"].dtype) == "paddle.float32"


def test_test_loader_gives_a_rank_its_contiguous_share(mini_root):
    lfw = DATASETS.build({"name": "LFW", "root": mini_root})
    loader = build_test_loader(lfw.images, build_test_transform((16, 16)), batch_size=16, rank=1, world_size=3)
    assert np.concatenate([b["index"].numpy() for b in loader]).tolist() == list(range(27, 54))


def test_test_loader_reads_images_from_bin_bytes(mini_root, copy_of):
    lfw = DATASETS.build({"name": "LFW", "root": copy_of("faces_emore")})
    batch = next(iter(build_test_loader(lfw.images[:4], build_test_transform((16, 16)), batch_size=4)))
    assert list(batch["images"].shape) == [4, 3, 16, 16]


def test_test_loader_batches_are_the_same_with_and_without_workers_and_equal_the_transform(mini_root):
    market = DATASETS.build({"name": "Market1501", "root": mini_root})
    items, transform = (market.query + market.gallery)[:10], build_test_transform((32, 16))
    expected = np.stack([transform(read_image(source)) for source, _, _ in items])
    for num_workers in (0, 2):
        batches = list(build_test_loader(items, transform, batch_size=4, num_workers=num_workers))
        assert np.concatenate([b["index"].numpy() for b in batches]).tolist() == list(range(10))
        np.testing.assert_array_equal(np.concatenate([b["images"].numpy() for b in batches]), expected)


def test_test_loader_runs_another_transform_whole_and_leaves_its_output_alone(mini_root):
    lfw = DATASETS.build({"name": "LFW", "root": mini_root})
    batch = next(iter(build_test_loader(lfw.images[:2], build_test_transform((16, 16)).to_uint8, batch_size=2)))
    assert str(batch["images"].dtype) == "paddle.uint8" and list(batch["images"].shape) == [2, 3, 16, 16]


def test_gather_in_order_on_one_process_sorts_by_index():
    assert gather_in_order(np.array([[2.0], [0.0], [1.0]]), [2, 0, 1], 3)[:, 0].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_unreadable_image_during_evaluation_is_an_error_naming_it(mini_root, tmp_path, num_workers):
    broken = tmp_path / "0001_c1s1_000000_00.jpg"
    broken.write_bytes(b"truncated")
    items = [os.path.join(mini_root, "faces_emore_val", "lfw", "00000.jpg"), str(broken)]
    with pytest.raises(ImageReadError, match=f"cannot read image {broken}"):
        list(build_test_loader(items, build_test_transform((16, 16)), batch_size=1, num_workers=num_workers))


def test_heterogeneous_batches_hold_every_task_with_its_own_per_rank_size(mini_root, train_loader):
    loader = train_loader(person_and_face_tasks(), root=mini_root, rank=1, world_size=2)
    batch = next(loader)
    assert sorted(batch) == ["face", "person"]
    assert list(batch["face"]["images"].shape) == [3, 3, 32, 16]
    assert list(batch["person"]["images"].shape) == [4, 3, 32, 16]
    assert batch["person"]["task"] == ["person"] * 4 and str(batch["person"]["camids"].dtype) == "paddle.int64"


def test_identities_of_a_task_merge_across_data_sets_with_a_prefix(mini_root, train_loader):
    loader = train_loader(person_and_face_tasks(), root=mini_root, world_size=1, rank=0)
    assert loader.num_classes == {"face": 8, "person": 6 + 4}  # MSMT17: list_train.txt alone
    labels = loader.datasets["person"].pid_labels
    assert sorted(labels)[:2] == ["market1501_1", "market1501_2"] and labels["msmt17_0"] == 6


def test_homogeneous_mode_serves_one_task_per_iteration_in_turn(mini_root, train_loader):
    loader = train_loader(person_and_face_tasks(), mode="homogeneous", root=mini_root, rank=0, world_size=1)
    assert [list(next(loader)) for _ in range(3)] == [["face"], ["person"], ["face"]]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resumed_loader_continues_with_the_same_batches(mini_root, num_workers, train_loader):
    def loader():
        return train_loader(person_and_face_tasks(), root=mini_root, seed=7, num_workers=num_workers, rank=0,
                                  world_size=1)

    first = loader()
    for _ in range(3):
        next(first)
    state = first.state_dict()
    expected = targets_of(next(first) for _ in range(4))
    resumed = loader()
    resumed.set_state_dict(state)
    assert resumed.iteration == 3 and targets_of(next(resumed) for _ in range(4)) == expected


def test_tasks_shuffle_independently_and_seeds_change_the_order(mini_root, train_loader):
    def first_targets(seed):
        tasks = {"a": {"datasets": ["DukeMTMC"], "batch_size": 5, "transform": SMALL},
                 "b": {"datasets": ["DukeMTMC"], "batch_size": 5, "transform": SMALL}}
        batch = next(train_loader(tasks, root=mini_root, seed=seed, rank=0, world_size=1))
        return batch["a"]["targets"].numpy().tolist(), batch["b"]["targets"].numpy().tolist()

    a, b = first_targets(0)
    assert a != b and first_targets(0) == (a, b) and first_targets(1) != (a, b)


def test_a_global_batch_that_does_not_split_over_ranks_is_an_error(mini_root, train_loader):
    tasks = {"face": {"datasets": ["MS1MV3"], "batch_size": 5, "transform": SMALL}}
    with pytest.raises(ValueError, match="global batch 5 does not split over 2 ranks"):
        train_loader(tasks, root=mini_root, rank=0, world_size=2)


def test_unreadable_training_images_are_skipped_and_counted(copy_of, caplog, train_loader):
    # attach to the logger itself: a logger set-up elsewhere in the session may stop propagation to the root
    logging.getLogger("allinone.data.common").addHandler(caplog.handler)
    root = copy_of("DukeMTMC-reID")
    train_dir = os.path.join(root, "DukeMTMC-reID", "bounding_box_train")
    with open(os.path.join(train_dir, "0001_c2_f0000102.jpg"), "wb") as f:
        f.write(b"broken")
    tasks = {"person": {"datasets": ["DukeMTMC"], "batch_size": 5, "transform": SMALL}}
    loader = train_loader(tasks, root=root, rank=0, world_size=1)
    batches = [next(loader)["person"] for _ in range(3)]  # one epoch of 15 images
    assert all(len(b["targets"]) == 5 for b in batches)
    assert loader.skipped == {"person": 1}
    logging.getLogger("allinone.data.common").removeHandler(caplog.handler)
    assert "0001_c2_f0000102.jpg" in caplog.text


def test_missing_task_keys_are_an_error_naming_the_task(mini_root, train_loader):
    with pytest.raises(KeyError, match="train task 'face': needs 'batch_size'"):
        train_loader({"face": {"datasets": ["MS1MV3"]}}, root=mini_root)
    with pytest.raises(KeyError, match="train task 'face' \\(TrainImageDataset\\).*'datasets'"):
        train_loader({"face": {"batch_size": 4}}, root=mini_root)
    with pytest.raises(KeyError, match="train task 'face' \\(TrainImageDataset\\).*'datset'"):
        train_loader({"face": {"datasets": ["MS1MV3"], "datset": 1, "batch_size": 4}}, root=mini_root)


@TRAIN_DATASETS.register()
class RaggedBoxes(paddle.io.Dataset):
    """A detection-like training set: image i has i % 4 boxes (possibly none), kept ragged by its own collate."""

    def __init__(self, size):
        self.targets = np.arange(size, dtype=np.int64) % 3
        self.num_classes = 3

    @classmethod
    def from_config(cls, task, root, size):
        return cls(size)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index_and_seed):
        index, seed = index_and_seed
        boxes = np.random.default_rng(seed).uniform(0, 8, size=(index % 4, 4)).astype("float32")
        return {"images": np.full((3, 8, 8), index, dtype="float32"), "boxes": boxes, "index": index}

    @staticmethod
    def collate(samples):
        return {"images": np.stack([s["images"] for s in samples]), "boxes": [s["boxes"] for s in samples],
                "index": np.array([s["index"] for s in samples])}


def test_a_task_with_its_own_dataset_type_and_collate_keeps_ragged_targets(mini_root, train_loader):
    tasks = {"detection": {"type": "RaggedBoxes", "size": 12, "batch_size": 4},
             "face": {"datasets": ["MS1MV3"], "batch_size": 2, "transform": SMALL}}
    loader = train_loader(tasks, root=mini_root, seed=1, num_workers=0, rank=0, world_size=1)
    batches = [next(loader) for _ in range(3)]  # one epoch of the 12 detection items
    seen = []
    for batch in batches:
        detection = batch["detection"]
        assert detection["images"].shape == [4, 3, 8, 8] and len(detection["boxes"]) == 4
        for image, boxes in zip(detection["images"].numpy(), detection["boxes"]):
            index = int(image[0, 0, 0])
            assert np.asarray(boxes).shape == (index % 4, 4)
            seen.append(index)
        assert batch["face"]["images"].shape[0] == 2
    assert sorted(seen) == list(range(12))
