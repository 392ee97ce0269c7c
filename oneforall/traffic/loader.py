"""Loaders of the traffic tasks.

Training uses allinone's multi-task train loader (one batch of every task per iteration, in config order) with the
traffic datasets (`type: TrafficSegmentation | TrafficClassification | TrafficDetection`) and their collates. Each
task's global batch comes from an infinite sampler (shuffled epochs for segmentation and detection, class-aware
draws for classification) and is split between ranks by allinone's `RankBatches`: every rank gets its own share
(the baseline's classification sampler ignored the rank), and each sample's augmentation is seeded by its position
in the task's global stream, so 1 and N processes see the same samples augmented the same way.
"""
import numpy as np

from allinone.data.build import WORKER_SHARED_MEMORY, TestLoader
from allinone.data.load_errors import guarded_loader
from allinone.registry import SAMPLERS

TASK_ORDER = ("segmentation", "fgvc", "trafficsign")


@SAMPLERS.register()
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
            members = self.rng.permutation(self.members[int(cls)])
            if count > len(members):  # every image once, the rest drawn again
                members = np.concatenate([members, self.rng.choice(members, count - len(members))])
            batch.extend(members[:count].tolist())
        self.rng.shuffle(batch)
        return batch

    def state_dict(self):
        return {"rng": self.rng.get_state()}

    def set_state_dict(self, state):
        self.rng.set_state(state["rng"])


def build_eval_loader(dataset, batch_size=1, num_workers=0):
    """Every item of `dataset` once, in order (evaluation and prediction run on one process). A failure to read,
    transform or collate raises a `DataLoadingError` naming the split, the samples and their files."""
    batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    name = f"{type(dataset).__name__} ({dataset.split} split)"
    return TestLoader(guarded_loader(dataset, batches, dataset.collate, name, num_workers, return_list=True,
                                     use_shared_memory=WORKER_SHARED_MEMORY))


__all__ = ["ClassAwareSampler", "TASK_ORDER", "build_eval_loader"]
