"""Run by tests/data/test_load_errors.py in a subprocess (a loader that hangs must not hang the test run):

    python load_failure_cases.py NUM_WORKERS MINI_ROOT TRAFFIC_ROOT CASE...

Each CASE builds a real loader the project's way, makes one part of it fail, iterates, and prints one JSON line:
the exception raised in this process (type, its classes, message, cause) and the loader worker processes and
threads still alive after it.
"""
import glob
import itertools
import json
import multiprocessing
import os
import sys
import threading

import numpy as np
import paddle

import allinone.data  # noqa: F401  (registers the data sets)
from allinone.data import build_test_loader, build_test_transform, build_train_loader, collate
from allinone.data.samplers import TrainingSampler
from allinone.registry import SAMPLERS, TRAIN_DATASETS
from oneforall.traffic import loader as traffic_loader
from oneforall.traffic.data import ClassificationDataset
from oneforall.traffic.transforms import build_transform

SMALL = {"size": [16, 16], "flip_prob": 0.5}


@TRAIN_DATASETS.register()
class FailingSet(paddle.io.Dataset):
    """12 tiny samples; `fail` = "getitem" (item 5 raises), "collate" (every batch raises), "dtype" (collate returns
    a string array) or None."""

    def __init__(self, fail=None):
        self.targets, self.num_classes, self.fail = np.arange(12) % 3, 3, fail

    @classmethod
    def from_config(cls, task, root, fail=None):
        return cls(fail)

    def __len__(self):
        return 12

    def __getitem__(self, key):
        index, _ = key
        if self.fail == "getitem" and index == 5:
            raise ValueError("item five is broken")
        return {"images": np.full((3, 4, 4), index, "float32"), "index": index}

    def collate(self, samples):
        if self.fail == "collate":
            raise ValueError("this collate is broken")
        batch = collate(samples)
        if self.fail == "dtype":
            batch["names"] = np.array([f"item{i}" for i in batch["index"]])
        return batch


@SAMPLERS.register()
class FailingSampler(TrainingSampler):
    """A TrainingSampler whose second batch raises."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drawn = 0

    def next_batch(self):
        self.drawn += 1
        if self.drawn == 2:
            raise ValueError("this sampler is broken")
        return super().next_batch()


def broken_transform(*args):
    raise ValueError("this transform is broken")


def varying_size(image):
    """A transform whose images alternate between two heights: a batch of them cannot be stacked."""
    return np.zeros((3, 8 + next(varying_size.counter) % 2, 8), "float32")


varying_size.counter = itertools.count()


def sizes_that_vary(sample):
    """The same as a traffic transform (on sample dicts)."""
    return dict(sample, images=varying_size(sample["images"]))


def iterate_train(tasks, num_workers, edit=None):
    """Not in `with loader:`: the loader itself must stop its thread and workers when it raises."""
    loader = build_train_loader(tasks, root=ROOTS["mini"], num_workers=num_workers, rank=0, world_size=1)
    if edit is not None:
        edit(loader.datasets)
    for _ in range(4):
        next(loader)
    loader.close()


def test_images(count=8):
    return sorted(glob.glob(os.path.join(ROOTS["mini"], "Market-1501-v15.09.15", "query", "*.jpg")))[:count]


def traffic_eval(num_workers, transform):
    dataset = ClassificationDataset(ROOTS["traffic"], "val", build_transform("fgvc", False, size=[32, 32]))
    dataset.transform = transform
    for _ in traffic_loader.build_eval_loader(dataset, 4, num_workers=num_workers):
        pass


def traffic_train(num_workers, transform):
    tasks = {"fgvc": {"type": "TrafficClassification", "batch_size": 4, "transform": {"size": [32, 32]}}}
    loader = build_train_loader(tasks, root=ROOTS["traffic"], num_workers=num_workers, rank=0, world_size=1)
    loader.datasets["fgvc"].transform = transform
    for _ in range(4):
        next(loader)
    loader.close()


def broken_test_images(num_workers):
    broken = os.path.join(ROOTS["scratch"], "broken.jpg")
    with open(broken, "wb") as f:
        f.write(b"not a jpeg")
    images = test_images(3) + [broken]
    for _ in build_test_loader(images, build_test_transform((16, 16)), 2, num_workers, rank=0, world_size=1,
                               name="test set Market1501"):
        pass


CASES = {
    "train_getitem": lambda nw: iterate_train({"t": {"type": "FailingSet", "batch_size": 4, "fail": "getitem"}}, nw),
    "train_collate": lambda nw: iterate_train({"t": {"type": "FailingSet", "batch_size": 4, "fail": "collate"}}, nw),
    "train_dtype": lambda nw: iterate_train({"t": {"type": "FailingSet", "batch_size": 4, "fail": "dtype"}}, nw),
    "train_sampler": lambda nw: iterate_train({"t": {"type": "FailingSet", "batch_size": 4,
                                                     "sampler": {"name": "FailingSampler"}}}, nw),
    "train_transform": lambda nw: iterate_train(
        {"face": {"datasets": ["MS1MV3"], "batch_size": 4, "transform": SMALL}}, nw,
        edit=lambda datasets: setattr(datasets["face"], "transform", broken_transform)),
    "test_transform": lambda nw: [None for _ in build_test_loader(test_images(), broken_transform, 4, nw, rank=0,
                                                                  world_size=1, name="test set Market1501")],
    "test_collate": lambda nw: [None for _ in build_test_loader(test_images(), varying_size, 4, nw, rank=0,
                                                                world_size=1, name="test set Market1501")],
    "test_unreadable": broken_test_images,
    "traffic_train_transform": lambda nw: traffic_train(nw, broken_transform),
    "traffic_train_collate": lambda nw: traffic_train(nw, sizes_that_vary),
    "traffic_eval_transform": lambda nw: traffic_eval(nw, broken_transform),
    "traffic_eval_collate": lambda nw: traffic_eval(nw, sizes_that_vary),
}


def run(case, num_workers):
    result = {"case": case}
    try:
        CASES[case](num_workers)
    except Exception as err:  # noqa: BLE001  (reported to the test)
        result.update(type=type(err).__name__, classes=[c.__name__ for c in type(err).__mro__], message=str(err),
                      cause=str(err.__cause__) if err.__cause__ is not None else "")
    else:
        result.update(type=None)
    result["workers_alive"] = len(multiprocessing.active_children())
    result["threads_alive"] = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    return result


if __name__ == "__main__":
    workers = int(sys.argv[1])
    ROOTS = {"mini": sys.argv[2], "traffic": sys.argv[3], "scratch": sys.argv[4]}
    for name in sys.argv[5:]:
        print(json.dumps(run(name, workers)), flush=True)
