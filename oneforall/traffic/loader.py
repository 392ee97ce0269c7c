"""Training and evaluation loaders of the traffic tasks.

Training takes one batch of every task per iteration (`TrafficTrainLoader`). Each task's global batch comes from an
infinite sampler (shuffled epochs for segmentation and detection, class-aware draws for classification) and is split
between ranks by allinone's `RankBatches`: every rank gets its own share (the baseline's classification sampler
ignored the rank), and each sample's augmentation is seeded by its position in the task's global stream, so 1 and
N processes see the same samples augmented the same way.
"""
import logging

import numpy as np
import paddle

from allinone.data.common import raise_sample_errors
from allinone.data.samplers import RankBatches, TrainingSampler
from allinone.data.transforms import global_rngs_restored
from allinone.utils.env import get_rank, get_world_size

from .data import DATASETS
from .transforms import build_transform

logger = logging.getLogger(__name__)

TASK_ORDER = ("segmentation", "fgvc", "trafficsign")


class ClassAwareSampler:
    """Infinite class-balanced global batches: `batch_size` class ids drawn uniformly with replacement; a class drawn
    k times contributes k different images (with repeats only if it has fewer than k); the batch is shuffled."""

    def __init__(self, targets, batch_size, world_size=1, seed=0):
        targets = np.asarray(targets)
        self.batch_size = batch_size
        self.classes = np.unique(targets)
        self.members = {c: np.flatnonzero(targets == c) for c in self.classes.tolist()}
        self.rng = np.random.RandomState(seed)

    def next_batch(self):
        drawn = self.rng.choice(self.classes, self.batch_size, replace=True)
        batch = []
        for cls, count in zip(*np.unique(drawn, return_counts=True)):
            members = self.members[int(cls)]
            batch.extend(self.rng.choice(members, count, replace=count > len(members)).tolist())
        self.rng.shuffle(batch)
        return batch

    def state_dict(self):
        return {"rng": self.rng.get_state()}

    def set_state_dict(self, state):
        self.rng.set_state(state["rng"])


SAMPLERS = {"TrainingSampler": TrainingSampler, "ClassAwareSampler": ClassAwareSampler}
DEFAULT_SAMPLER = {"segmentation": "TrainingSampler", "fgvc": "ClassAwareSampler", "trafficsign": "TrainingSampler"}


class TrafficTrainLoader:
    """Infinite iterator of `{task: batch}` with every task each iteration, in `TASK_ORDER`. `state_dict()` holds the
    iteration and every task's sampler state, so a resumed run sees the batches it would have seen."""

    def __init__(self, datasets, batch_sizes, samplers=None, seed=0, num_workers=0, rank=None, world_size=None):
        rank = get_rank() if rank is None else rank
        world_size = get_world_size() if world_size is None else world_size
        self.datasets, self.num_workers = datasets, num_workers
        self.batches = {}
        for position, task in enumerate(datasets):
            name = (samplers or {}).get(task, DEFAULT_SAMPLER.get(task, "TrainingSampler"))
            if name not in SAMPLERS:
                raise KeyError(f"task {task}: unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
            targets = getattr(datasets[task], "targets", np.zeros(len(datasets[task]), np.int64))
            sampler = SAMPLERS[name](targets, int(batch_sizes[task]), world_size=world_size, seed=seed + position)
            self.batches[task] = RankBatches(sampler, rank, world_size, seed=seed, task=position)
        self.iteration = 0
        self.iterators = {}

    @property
    def tasks(self):
        return list(self.datasets)

    def __iter__(self):
        return self

    def __next__(self):
        batch = {task: self.next_batch(task) for task in self.tasks}
        self.iteration += 1
        return batch

    def next_batch(self, task):
        if task not in self.iterators:
            dataset = self.datasets[task]
            with global_rngs_restored():  # Paddle draws its workers' base seed from NumPy's generator
                self.iterators[task] = iter(paddle.io.DataLoader(
                    dataset, batch_sampler=self.batches[task], collate_fn=dataset.collate,
                    num_workers=self.num_workers, return_list=True))
        batch = raise_sample_errors(next(self.iterators[task]))
        self.batches[task].consumed()
        return batch

    def state_dict(self):
        return {"iteration": self.iteration, "tasks": {task: b.state_dict() for task, b in self.batches.items()}}

    def set_state_dict(self, state):
        if sorted(state["tasks"]) != sorted(self.batches):
            raise ValueError(f"loader state is for tasks {sorted(state['tasks'])}; this loader has "
                             f"{sorted(self.batches)}")
        self.iterators = {}
        for task, batches in self.batches.items():
            batches.set_state_dict(state["tasks"][task])
        self.iteration = int(state["iteration"])


def build_train_loader(root, tasks, seed=0, num_workers=0, rank=None, world_size=None):
    """`tasks`: {task: {batch_size, sampler (optional), transform: {kwargs} (optional)}} in any order; the loader
    runs them in TASK_ORDER."""
    unknown = sorted(set(tasks) - set(TASK_ORDER))
    if unknown:
        raise KeyError(f"unknown traffic task(s) {unknown}; tasks: {list(TASK_ORDER)}")
    ordered = [task for task in TASK_ORDER if task in tasks]
    datasets = {task: DATASETS[task](root, "train", build_transform(task, True, **tasks[task].get("transform", {})))
                for task in ordered}
    return TrafficTrainLoader(datasets, {task: tasks[task]["batch_size"] for task in ordered},
                              {task: tasks[task]["sampler"] for task in ordered if "sampler" in tasks[task]},
                              seed=seed, num_workers=num_workers, rank=rank, world_size=world_size)


def build_eval_loader(dataset, batch_size=1, num_workers=0, rank=0, world_size=1):
    """Items of `dataset` in order; with several ranks, rank r takes a contiguous share (no padding duplicates)."""
    per_rank = -(-len(dataset) // world_size)
    indices = list(range(rank * per_rank, min(len(dataset), (rank + 1) * per_rank)))
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    return paddle.io.DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=num_workers,
                                return_list=True)


__all__ = ["ClassAwareSampler", "TASK_ORDER", "TrafficTrainLoader", "build_eval_loader", "build_train_loader"]
