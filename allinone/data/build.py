"""Loaders: the evaluation loader (every image once, in order) and the multi-task training loader."""
import logging
from typing import NamedTuple

import numpy as np
import paddle

from ..registry import SAMPLERS, TRAIN_DATASETS
from ..utils.env import get_rank, get_world_size
from .common import TestImageDataset, collate
from .load_errors import guarded_loader, raise_load_failure
from .samplers import InferenceSampler, RankBatches, restore_order
from .transforms import TestTransform, global_rngs_restored

logger = logging.getLogger(__name__)

MODES = ("heterogeneous", "homogeneous")


# Workers send numpy batches through a pipe instead of building Paddle tensors in shared memory. A worker is forked
# while other loaders' reader threads in the parent are allocating tensors; a worker that then touches Paddle's
# allocator can block forever on the lock it inherited mid-use (seen as hung test runs with several task loaders).
# With numpy batches the workers never call the allocator; the parent turns them into tensors.
WORKER_SHARED_MEMORY = False
LOADER_KEYS = ("type", "batch_size", "sampler", "num_workers")  # the rest of a task's spec goes to its dataset type
DEFAULT_TYPE = "TrainImageDataset"


class TaskLoader(NamedTuple):
    """What the multi-task loader keeps per task: a training dataset (see `build_train_loader` for its protocol),
    this rank's batches of (index, seed) pairs and the number of worker processes."""

    dataset: paddle.io.Dataset
    batches: RankBatches
    num_workers: int


def build_test_loader(items, transform, batch_size=8, num_workers=0, rank=None, world_size=None,
                      name="evaluation images"):
    """Batches `{"images": Tensor[b, 3, H, W], "index": Tensor[b]}` of this rank's contiguous share of `items`
    (image sources or `(source, pid, camid)`), in order. An unreadable image raises an `UnreadableImageError` (an
    `ImageReadError`) naming it, any other failure a `DataLoadingError`; `name` says which images in those errors.

    With a `TestTransform` the dataset yields uint8 images and the batches are normalised after the loader (4x less
    to copy out of the workers and to the device); any other transform runs whole in the dataset.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    sampler = InferenceSampler(len(items), rank, world_size)
    split = isinstance(transform, TestTransform)
    dataset = TestImageDataset(items, transform.to_uint8 if split else transform)
    batches = paddle.io.BatchSampler(sampler=sampler, batch_size=batch_size)
    return TestLoader(guarded_loader(dataset, batches, collate, f"{name} ({type(dataset).__name__})", num_workers,
                                     use_shared_memory=WORKER_SHARED_MEMORY),
                      transform.normalize if split else None)


class TestLoader:
    """A guarded `paddle.io.DataLoader` (`load_errors.guarded_loader`) whose failures are raised here, and whose
    batches are normalised by `normalize`, when given, where they arrive. Its thread and workers stop when the
    iteration ends, fails or is abandoned."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, loader, normalize=None):
        self.loader, self.normalize = loader, normalize

    def __iter__(self):
        iterator = iter(self.loader)
        try:
            for batch in iterator:
                batch = raise_load_failure(batch)
                if self.normalize is not None:
                    batch["images"] = self.normalize(batch["images"])
                yield batch
        finally:
            close_iterator(iterator)

    def __len__(self):
        return len(self.loader)


def gather_in_order(values, indices, num_items):
    """The rows of every rank (with their data-set `indices`) in data-set order; single process: only reorders."""
    values, indices = np.asarray(values), np.asarray(indices)
    if get_world_size() > 1:
        parts = []
        paddle.distributed.all_gather_object(parts, (indices, values))
        indices = np.concatenate([part[0] for part in parts])
        values = np.concatenate([part[1] for part in parts])
    return restore_order(indices, values, num_items)


def build_train_loader(tasks, mode="heterogeneous", seed=0, num_workers=0, root=None, rank=None, world_size=None):
    """A `MultiTaskTrainLoader` from a mapping task -> {type, batch_size, sampler, num_workers, **dataset args}.

    `type` names a TRAIN_DATASETS class (default TrainImageDataset: `datasets` and `transform`, identity-labelled
    images); it is built with `from_config(task, root, **dataset args)`. Any class works that has `__len__`,
    `__getitem__((index, seed))` returning a sample dict (all its randomness drawn from `seed`), `targets` (one label
    per item, for the samplers), `num_classes`, and optionally `collate(samples)` (default: `common.collate`, which
    stacks arrays; a detection set keeps ragged boxes as lists), `check_rank_batch(rows)` (raises when its collate
    cannot take batches of that many rows per rank) and `item_name(index)` (what errors call an item, e.g. its file).
    `batch_size` is the task's global batch; `sampler` a SAMPLERS entry (default TrainingSampler); task k shuffles
    with its own RNG seeded `seed + k`, and augments each sample from a seed of (`seed`, k, the sample's position in
    the task's stream), see `RankBatches`. An exception in the sampler, the dataset or the collate is raised by
    `next(loader)` as a `DataLoadingError` naming the task, the samples and the cause (`load_errors`).
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    loaders = {}
    for position, (task, spec) in enumerate(tasks.items()):
        if "batch_size" not in spec:
            raise KeyError(f"train task '{task}': needs 'batch_size' (and the arguments of its dataset type); got keys "
                           f"{sorted(spec)}")
        kind = TRAIN_DATASETS.get(spec.get("type", DEFAULT_TYPE))
        try:
            dataset = kind.from_config(task, root, **{key: value for key, value in spec.items()
                                                      if key not in LOADER_KEYS})
        except TypeError as err:
            raise KeyError(f"train task '{task}' ({kind.__name__}): {err}; loader keys: {list(LOADER_KEYS)}") from None
        sampler = SAMPLERS.build(dict(spec.get("sampler", {"name": "TrainingSampler"})), targets=dataset.targets,
                                 batch_size=int(spec["batch_size"]), world_size=world_size, seed=seed + position)
        batches = RankBatches(sampler, rank, world_size, seed=seed, task=position)
        if hasattr(dataset, "check_rank_batch"):  # an error now, before the model is built, not at the first batch
            dataset.check_rank_batch(batches.per_rank)
        loaders[task] = TaskLoader(dataset, batches, spec.get("num_workers", num_workers))
    return MultiTaskTrainLoader(loaders, mode)


class MultiTaskTrainLoader:
    """Infinite iterator of `{task: batch}`: every task each iteration ('heterogeneous', the published recipe), or
    one task per iteration in round robin ('homogeneous', the published ablation).

    A batch is what the task's dataset collates; for TrainImageDataset `{"images", "targets", "camids", "task",
    "dataset_name"}`. `state_dict()` / `set_state_dict()` hold the iteration count and each task's sampler state, so
    a resumed run sees the batches it would have seen, augmented the same to the bit. Loading leaves Python's and
    NumPy's global generators as they were. `close()` (or `with loader:`) stops the worker processes.
    """

    def __init__(self, loaders, mode="heterogeneous"):
        if mode not in MODES:
            raise ValueError(f"train loader mode must be one of {MODES}, got {mode!r}")
        self.mode, self.loaders = mode, loaders
        self.iteration = 0
        self.skipped = {task: 0 for task in loaders}
        self.iterators = {}

    @property
    def tasks(self):
        return list(self.loaders)

    @property
    def num_classes(self):
        return {task: loader.dataset.num_classes for task, loader in self.loaders.items()}

    @property
    def datasets(self):
        return {task: loader.dataset for task, loader in self.loaders.items()}

    def __iter__(self):
        return self

    def __next__(self):
        tasks = self.tasks if self.mode == "heterogeneous" else [self.tasks[self.iteration % len(self.tasks)]]
        batch = {task: self.next_batch(task) for task in tasks}
        self.iteration += 1
        return batch

    def next_batch(self, task):
        loader = self.loaders[task]
        if task not in self.iterators:
            with global_rngs_restored():  # Paddle draws its workers' base seed from NumPy's generator
                name = f"train task '{task}' ({type(loader.dataset).__name__})"
                self.iterators[task] = iter(guarded_loader(loader.dataset, loader.batches,
                                                           getattr(loader.dataset, "collate", collate), name,
                                                           loader.num_workers, use_shared_memory=WORKER_SHARED_MEMORY))
        batch = next(self.iterators[task])
        try:
            raise_load_failure(batch)
        except Exception:
            self.close()  # the failed task's loader has ended; stop every thread and worker before the error leaves
            raise
        loader.batches.consumed()
        skipped = int(np.asarray(batch.pop("skipped", 0)).sum())
        if skipped:
            self.skipped[task] += skipped
            logger.warning("task %s: %d unreadable training image(s) skipped so far", task, self.skipped[task])
        return batch

    def state_dict(self):
        return {"iteration": self.iteration, "mode": self.mode,
                "tasks": {task: loader.batches.state_dict() for task, loader in self.loaders.items()}}

    def set_state_dict(self, state):
        if sorted(state["tasks"]) != sorted(self.loaders) or state["mode"] != self.mode:
            raise ValueError(f"loader state is for tasks {sorted(state['tasks'])} in mode {state['mode']!r}; this "
                             f"loader has tasks {sorted(self.loaders)} in mode {self.mode!r}")
        self.close()  # drop read-ahead batches; workers restart from the restored samplers
        for task, loader in self.loaders.items():
            loader.batches.set_state_dict(state["tasks"][task])
        self.iteration = int(state["iteration"])

    def close(self):
        """Stop every task's read-ahead thread and worker processes now (rather than whenever the garbage collector
        gets to them, which at interpreter exit makes Paddle report "DataLoader workers exit unexpectedly")."""
        for iterator in self.iterators.values():
            close_iterator(iterator)
        self.iterators = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def close_iterator(iterator):
    """Stop a Paddle loader iterator's read-ahead thread and worker processes now."""
    stop_read_ahead_thread(iterator)
    shutdown = getattr(iterator, "_try_shutdown_all", None)  # what the iterator's own __del__ calls
    if shutdown is not None:
        shutdown()


def stop_read_ahead_thread(iterator):
    """Stop a Paddle loader iterator's read-ahead thread and wait just until it has ended. Paddle's own shutdown of
    a loader without workers sleeps in whole seconds while that thread winds down (1-3 s per task per close), which
    added up to tens of seconds in the tests; after this, it finds the thread gone and returns at once."""
    thread = getattr(iterator, "_thread", None)
    if hasattr(iterator, "_workers") or thread is None or not thread.is_alive():
        return  # with worker processes Paddle's shutdown does not sleep; this would only add a wait
    iterator._thread_done_event.set()
    queue = getattr(iterator, "_blocking_queue", None)
    if queue is not None:
        queue.close()  # a thread blocked pushing a batch into a full queue returns
    thread.join(timeout=30)
