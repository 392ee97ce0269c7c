"""Datasets that `paddle.io.DataLoader` iterates: images to evaluate in order, and one task's training images with
merged identity labels; plus the collate function that batches their dicts.

Paddle's DataLoader loses an exception raised inside a dataset (it dies in a reader thread: a hang with 0 workers,
an anonymous "blocking queue is killed" with workers). So a failing sample is returned as `{"error": ...}`, the
batch carries it to the calling process, and `raise_sample_errors` raises it there with its message.
"""
import functools
import logging
import numbers
import traceback

import numpy as np
import paddle

from ..registry import DATASETS, TRAIN_DATASETS
from .io import ImageReadError, image_name, read_image
from .transforms import seeded_global_rngs

logger = logging.getLogger(__name__)


def errors_as_samples(getitem):
    """Wrap `__getitem__` so an exception becomes an `{"error", "error_type"}` sample (see the module doc)."""

    @functools.wraps(getitem)
    def wrapper(self, index):
        try:
            return getitem(self, index)
        except ImageReadError as err:
            return {"error": str(err), "error_type": "ImageReadError"}
        except Exception as err:
            return {"error": f"sample {index}: {traceback.format_exc()}", "error_type": type(err).__name__}

    return wrapper


def raise_sample_errors(batch):
    """Raise, in the calling process, the first error a batch carries (`ImageReadError` for unreadable images)."""
    if "error" in batch:
        message, kind = batch["error"][0], batch["error_type"][0]
        raise (ImageReadError if kind == "ImageReadError" else RuntimeError)(message)
    return batch


class TestImageDataset(paddle.io.Dataset):
    """`{"images": transform(image), "index": int64}` for every item, in order; an unreadable image raises an error
    naming it (evaluation must not skip). Items are image sources or `(source, pid, camid)` tuples."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, items, transform):
        self.sources = [item[0] if isinstance(item, tuple) else item for item in items]
        self.transform = transform

    def __len__(self):
        return len(self.sources)

    @errors_as_samples
    def __getitem__(self, index):
        return {"images": self.transform(read_image(self.sources[index])), "index": np.int64(index)}


@TRAIN_DATASETS.register()
class TrainImageDataset(paddle.io.Dataset):
    """The training images of one task, gathered from one or more data sets.

    Identities are relabelled here, and only here: `targets` = position of `"<dataset_name>_<pid>"` among the
    sorted labels of all the task's sets (so sets merge without collisions, as the original); cameras likewise.
    Items are read as `dataset[(index, seed)]` (what `RankBatches` yields): the transform's randomness comes from
    `seed` alone. An unreadable image is skipped: the next item is used instead, a warning names the file, and the
    sample's `skipped` field counts the replaced images so the loader can total them across workers.
    """

    MAX_SKIPS = 10

    def __init__(self, datasets, transform, task):
        """`datasets`: list of `(dataset_name, items)` with items `(source, pid, camid)`."""
        self.task, self.transform = task, transform
        self.dataset_names = [name for name, _ in datasets]
        self.sources = [source for _, items in datasets for source, _, _ in items]
        if not self.sources:
            raise ValueError(f"task '{task}' has no training images (data sets: {self.dataset_names})")
        # labels per data set first, so millions of items need dict look-ups, not millions of prefixed strings
        self.pid_labels = label_index((name, pid) for name, items in datasets for pid in {item[1] for item in items})
        self.cam_labels = label_index((name, cam) for name, items in datasets for cam in {item[2] for item in items})
        self.targets = np.array([self.pid_labels[f"{name}_{pid}"] for name, items in datasets
                                 for _, pid, _ in items], dtype=np.int64)
        self.camids = np.array([self.cam_labels[f"{name}_{cam}"] for name, items in datasets
                                for _, _, cam in items], dtype=np.int64)
        self.dataset_ids = np.repeat(np.arange(len(datasets), dtype=np.int32), [len(items) for _, items in datasets])

    @classmethod
    def from_config(cls, task, root, datasets, transform=None):
        """The task spec's `datasets` (DATASETS names or `{name: ..., **args}`; their `train` splits merge) and
        `transform` (build_train_transform arguments)."""
        from .transforms import build_train_transform

        sets = [DATASETS.build({"root": root, **({"name": entry} if isinstance(entry, str) else entry)})
                for entry in datasets]
        return cls([(s.dataset_name, s.train) for s in sets], build_train_transform(transform or {}), task)

    @property
    def num_classes(self):
        return len(self.pid_labels)

    @property
    def num_cameras(self):
        return len(self.cam_labels)

    def __len__(self):
        return len(self.sources)

    @errors_as_samples
    def __getitem__(self, index_and_seed):
        index, seed = index_and_seed
        for skipped in range(self.MAX_SKIPS + 1):
            item = (index + skipped) % len(self.sources)
            try:
                image = read_image(self.sources[item])
            except ImageReadError as err:
                logger.warning("task %s: skipping unreadable training image (%s)", self.task, err)
                continue
            with seeded_global_rngs(seed):
                image = self.transform(image)
            return {"images": image, "targets": self.targets[item], "camids": self.camids[item],
                    "task": self.task, "dataset_name": self.dataset_names[self.dataset_ids[item]],
                    "skipped": np.int64(skipped)}
        raise ImageReadError(f"task {self.task}: {self.MAX_SKIPS + 1} unreadable images in a row from "
                             f"{image_name(self.sources[index])}; is the data set readable?")


def label_index(name_and_ids):
    """{"<dataset_name>_<id>": position among the sorted labels}: the original's merged, lexicographic label space."""
    return {label: i for i, label in enumerate(sorted({f"{name}_{value}" for name, value in name_and_ids}))}


def collate_with_errors(collate_fn):
    """`collate_fn` for batches without failed samples; a batch with one becomes their errors (see the module doc),
    so a dataset's own collate never sees an error sample."""

    @functools.wraps(collate_fn)
    def wrapper(samples):
        if any(isinstance(sample, dict) and "error" in sample for sample in samples):
            return collate(samples)
        return collate_fn(samples)

    return wrapper


def collate(samples):
    """Batch a list of sample dicts: arrays stack on a new axis 0, numbers become int64/float64 arrays, strings
    stay lists (as the original's `fast_batch_collator`). A batch with failed samples becomes their errors."""
    failed = [sample for sample in samples if isinstance(sample, dict) and "error" in sample]
    if failed:  # (Paddle's loader drops a batch without any array, hence "num_errors")
        return {"error": [sample["error"] for sample in failed],
                "error_type": [sample["error_type"] for sample in failed],
                "num_errors": np.array([len(failed)], dtype=np.int64)}
    first = samples[0]
    if isinstance(first, dict):
        return {key: collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, np.ndarray):
        return np.stack(samples)
    if isinstance(first, numbers.Integral):
        return np.asarray(samples, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return np.asarray(samples, dtype=np.float64)
    if isinstance(first, str):
        return list(samples)
    raise TypeError(f"cannot collate values of type {type(first).__name__}")
