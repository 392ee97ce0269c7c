"""Errors while loading data reach the training or evaluation loop as one clear exception, never as a hang.

Paddle's DataLoader runs the batch sampler, the dataset's `__getitem__` and the collate function in a read-ahead
thread (no workers) or in worker processes. An exception there hangs the loop (no workers: the thread dies and the
loop waits forever for its next batch), or arrives as an anonymous "Blocking queue is killed" (workers). So the
loaders built here guard all three: an exception becomes a picklable `LoadFailure` record (where, what, the original
type, message and traceback text) that travels to the iterating process as an ordinary batch, and
`raise_load_failure` raises it there as a `DataLoadingError`.

The guards cost one `try` and one tuple per sample and one pass over the collated batch's fields; the samples
themselves are not copied.
"""
import numbers
import os
import threading
import traceback

import numpy as np
import paddle

from .io import ImageReadError

FAILURE_KEY = "__load_failure__"
MAX_KEYS_SHOWN = 8

# numpy dtypes Paddle's loader can turn into tensors; any other array in a batch (strings, objects, uint32/64)
# would kill its queue with an anonymous error, so the guarded collate reports it instead
CARRIED_DTYPES = frozenset(np.dtype(name) for name in (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "int64", "float16", "float32", "float64", "complex64",
    "complex128"))


class DataLoadingError(RuntimeError):
    """Reading a sample, transforming it, collating a batch or drawing the next batch failed; the message names the
    dataset, the samples (index, seed, file) and the original error; `__cause__` holds the original traceback."""

    def __init__(self, failure):
        super().__init__(failure.summary())
        self.failure = failure

    def __reduce__(self):  # pickles (e.g. gathered from another rank) from its record, not from the message
        return type(self), (self.failure,)


class UnreadableImageError(DataLoadingError, ImageReadError):
    """A `DataLoadingError` whose cause is an unreadable image: also an `ImageReadError` (a user error)."""


class LoaderTraceback(Exception):
    """The traceback of the original exception, raised in the loader's thread or worker (text only)."""

    def __str__(self):
        return "\n" + self.args[0]


class LoadFailure:
    """What failed, where: plain strings and numbers, so it pickles out of a worker process whatever the original
    exception was."""

    def __init__(self, dataset, stage, keys, error, items=()):
        self.dataset, self.stage, self.keys, self.items = dataset, stage, list(keys), list(items)
        self.error_type = type(error).__name__
        self.image_unreadable = isinstance(error, ImageReadError)
        self.message = str(error)
        self.traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.origin = origin()

    def samples(self):
        """'sample 11 (seed 26.., /data/a.jpg)' or 'samples [3, 5, 7, ...] (64 samples)'."""
        if len(self.keys) == 1:
            index, seed = split_key(self.keys[0])
            details = [f"seed {seed}"] if seed is not None else []
            details += [item for item in self.items[:1] if item and item not in self.message]
            return f"sample {index}" + (f" ({', '.join(details)})" if details else "")
        indices = [split_key(key)[0] for key in self.keys]
        shown = ", ".join(map(str, indices[:MAX_KEYS_SHOWN])) + (", ..." if len(indices) > MAX_KEYS_SHOWN else "")
        return f"samples [{shown}] ({len(indices)} samples)"

    def summary(self):
        action = {"sample": f"preparing {self.samples()}", "collate": f"collating {self.samples()}",
                  "batch": "drawing the next batch (batch sampler)"}[self.stage]
        return f"{self.dataset}: {action} failed with {self.error_type}: {self.message}"

    def error(self):
        """The exception to raise in the iterating process, chained to the original traceback."""
        kind = UnreadableImageError if self.image_unreadable else DataLoadingError
        error = kind(self)
        error.__cause__ = LoaderTraceback(f"(raised in {self.origin})\n{self.traceback}")
        return error


def origin():
    """Where loading runs: one of the loader's worker processes, or a thread of this process (the loader's
    read-ahead thread; with workers, the batch sampler runs in the iterating thread)."""
    info = paddle.io.get_worker_info()
    if info is None:
        return f"process {os.getpid()}, thread {threading.current_thread().name!r}"
    return f"loader worker {info.id} of {info.num_workers} (process {os.getpid()})"


def split_key(key):
    """A sampler key -> (index, seed): training keys are `(index, seed)` pairs, evaluation keys plain indices."""
    if isinstance(key, (tuple, list)) and len(key) == 2 and all(isinstance(k, numbers.Integral) for k in key):
        return int(key[0]), int(key[1])
    return key, None


def item_names(dataset, keys):
    """What the dataset calls these samples (a file path), when it says (`item_name(index)`); never raises."""
    name = getattr(dataset, "item_name", None)
    if name is None:
        return []
    try:
        return [str(name(split_key(key)[0])) for key in keys]
    except Exception:  # noqa: BLE001  (a description must not hide the failure it describes)
        return []


class GuardedDataset(paddle.io.Dataset):
    """`dataset[key]` -> `(key, sample)`, or `(key, LoadFailure)` when reading the sample raised (or the key is a
    batch sampler's failure)."""

    def __init__(self, dataset, name):
        self.dataset, self.name = dataset, name

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, LoadFailure):
            return key, key
        try:
            return key, self.dataset[key]
        except Exception as err:  # noqa: BLE001  (carried to the iterating process, raised there)
            return key, LoadFailure(self.name, "sample", [key], err, item_names(self.dataset, [key]))


class GuardedCollate:
    """Collates the `(key, sample)` pairs of a `GuardedDataset` with `collate_fn`; a failed sample, an exception in
    `collate_fn` or an array Paddle cannot carry gives a failure batch instead."""

    def __init__(self, collate_fn, dataset, name):
        self.collate_fn, self.dataset, self.name = collate_fn, dataset, name

    def __call__(self, pairs):
        keys, samples = zip(*pairs)
        if LoadFailure in map(type, samples):  # (C-level loops: the cost per sample stays negligible)
            return failure_batch(next(sample for sample in samples if type(sample) is LoadFailure))
        try:
            batch = self.collate_fn(list(samples))
            check_carried(batch)
        except Exception as err:  # noqa: BLE001
            return failure_batch(LoadFailure(self.name, "collate", keys, err, item_names(self.dataset, keys)))
        return batch


class GuardedBatches:
    """A batch sampler whose exception becomes a one-key batch holding its `LoadFailure` (the loader then ends)."""

    def __init__(self, batches, name):
        self.batches, self.name = batches, name

    def __iter__(self):
        iterator = iter(self.batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001
                yield [LoadFailure(self.name, "batch", [], err)]
                return
            yield batch

    def __len__(self):
        return len(self.batches)


def check_carried(batch, field="batch"):
    """Raise TypeError naming the field when the batch holds an array Paddle's loader cannot turn into a tensor."""
    if isinstance(batch, np.ndarray):
        if batch.dtype not in CARRIED_DTYPES:
            raise TypeError(f"collate returned {field} as a numpy array of dtype {batch.dtype}, which Paddle's "
                            f"loader cannot carry (numbers and bools only; strings go in lists)")
    elif isinstance(batch, dict):
        for key, value in batch.items():
            check_carried(value, f"{field}[{key!r}]")
    elif isinstance(batch, (list, tuple)):
        for position, value in enumerate(batch):
            check_carried(value, f"{field}[{position}]")


def failure_batch(failure):
    # Paddle's loader drops a batch without any array, hence the marker
    return {FAILURE_KEY: failure, "__load_failure_marker__": np.zeros([1], np.int8)}


def guarded_loader(dataset, batches, collate_fn, name, num_workers=0, **loader_args):
    """A `paddle.io.DataLoader` over `dataset` with `batches` (a batch sampler) and `collate_fn`, all three guarded:
    iterate it through `raise_load_failure`. `name` says in errors which data this is ("train task 'face'
    (TrainImageDataset)")."""
    return paddle.io.DataLoader(GuardedDataset(dataset, name), batch_sampler=GuardedBatches(batches, name),
                                collate_fn=GuardedCollate(collate_fn, dataset, name), num_workers=num_workers,
                                **loader_args)


def raise_load_failure(batch):
    """`batch`, or the `DataLoadingError` it carries raised (in the iterating process)."""
    if isinstance(batch, dict) and FAILURE_KEY in batch:
        raise batch[FAILURE_KEY].error()
    return batch


__all__ = ["DataLoadingError", "LoadFailure", "UnreadableImageError", "guarded_loader", "raise_load_failure"]
