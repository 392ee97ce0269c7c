"""Datasets that `paddle.io.DataLoader` iterates: images to evaluate in order, and one task's training images with
merged identity labels; plus the collate function that batches their dicts. (Their exceptions reach the loop
through the loaders' guards, `load_errors`.)
"""
import logging
import numbers

import numpy as np
import paddle

from ..registry import DATASETS, TRAIN_DATASETS
from .io import ImageReadError, image_name, read_image
from .transforms import seeded_global_rngs

logger = logging.getLogger(__name__)


class TestImageDataset(paddle.io.Dataset):
    """`{"images": transform(image), "index": int64}` for every item, in order; an unreadable image raises an error
    naming it (evaluation must not skip). Items are image sources or `(source, pid, camid)` tuples."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, items, transform):
        self.sources = [item[0] if isinstance(item, tuple) else item for item in items]
        self.transform = transform

    def __len__(self):
        return len(self.sources)

    def item_name(self, index):
        return image_name(self.sources[index])

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

    def item_name(self, index):
        return image_name(self.sources[index])

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


def collate(samples):
    """Batch a list of sample dicts: arrays stack on a new axis 0, numbers become int64/float64 arrays, strings
    stay lists (as the original's `fast_batch_collator`)."""
    first = samples[0]
    if isinstance(first, dict):
        batch = {}
        for key in first:
            try:
                values = [sample[key] for sample in samples]
            except KeyError:
                raise KeyError(f"field {key!r} is in the batch's first sample but not in all of them") from None
            try:
                batch[key] = collate(values)
            except (KeyError, TypeError, ValueError) as err:  # name the field (nested: the path of fields)
                raise type(err)(f"field {key!r}: {err.args[0] if err.args else err}") from None
        return batch
    if isinstance(first, np.ndarray):
        try:
            return np.stack(samples)
        except ValueError:
            shapes = sorted({tuple(np.shape(sample)) for sample in samples})
            raise ValueError(f"cannot stack arrays of different shapes {shapes}") from None
    if isinstance(first, numbers.Integral):
        return np.asarray(samples, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return np.asarray(samples, dtype=np.float64)
    if isinstance(first, str):
        return list(samples)
    raise TypeError(f"cannot collate values of type {type(first).__name__}")
