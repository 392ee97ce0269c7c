"""Which images go into which batch on which rank.

Evaluation: `InferenceSampler` gives each rank a contiguous slice, and `restore_order` puts gathered features back
in data-set order (the original's interleaved split plus batch-major gather permuted ReID features on multi-GPU).
Training: samplers produce *global* batches from a private, seeded RNG, so every rank computes the same sequence;
`RankBatches` hands each rank its contiguous share, each index with the sample's augmentation seed. Their
`state_dict()` (RNG state at the start of the current epoch + position in it) resumes the exact sequence.
"""
import collections
import math
import threading

import numpy as np

from ..registry import SAMPLERS


class InferenceSampler:
    """Indices `rank * s ... min((rank + 1) * s, n) - 1` with `s = ceil(n / world_size)`: in order, no duplicates."""

    def __init__(self, num_items, rank=0, world_size=1):
        shard = math.ceil(num_items / world_size)
        self.indices = range(min(rank * shard, num_items), min((rank + 1) * shard, num_items))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def restore_order(indices, values, num_items):
    """Rows of `values` (gathered from all ranks, in any order) sorted back by their data-set `indices`.

    Every index in 0..num_items-1 must appear exactly once: a lost or repeated image is an error, not a shifted
    query/gallery split.
    """
    indices = np.asarray(indices).reshape(-1)
    counts = np.bincount(indices, minlength=num_items) if len(indices) else np.zeros(num_items, dtype=np.int64)
    if len(counts) != num_items or not (counts == 1).all():
        missing = np.flatnonzero(counts[:num_items] == 0)[:5].tolist()
        repeated = np.flatnonzero(counts > 1)[:5].tolist()
        raise ValueError(f"gathered indices do not cover 0..{num_items - 1} once each: missing {missing}, "
                         f"repeated {repeated}, out of range {int((indices >= num_items).sum())}")
    return np.asarray(values)[np.argsort(indices, kind="stable")]


class EpochResume:
    """Resume protocol of the epoch-based training samplers: the RNG state at the start of the current epoch plus
    the position in it; restoring replays the epoch's draw. Subclasses set `rng`, `epoch_rng_state` and `position`
    in `start_epoch()`."""

    def state_dict(self):
        return {"rng": self.epoch_rng_state, "position": self.position}

    def set_state_dict(self, state):
        self.rng.set_state(state["rng"])
        self.start_epoch()
        self.position = int(state["position"])


@SAMPLERS.register()
class TrainingSampler(EpochResume):
    """Shuffled epochs one after another; global batches of `batch_size` consecutive indices, which may straddle
    two epochs. On one rank with seed 0 this is the original's stream (`np.random.seed(0)`, then permutations).
    `world_size` is accepted for the common sampler signature; `RankBatches` splits the batch."""

    def __init__(self, targets, batch_size, world_size=1, seed=0):
        self.num_items, self.batch_size = len(targets), batch_size
        self.rng = np.random.RandomState(seed)
        self.start_epoch()

    def start_epoch(self):
        self.epoch_rng_state = self.rng.get_state()
        self.order, self.position = self.rng.permutation(self.num_items), 0

    def next_batch(self):
        batch = []
        while len(batch) < self.batch_size:
            if self.position == self.num_items:
                self.start_epoch()
            take = self.order[self.position:self.position + self.batch_size - len(batch)]
            batch.extend(take.tolist())
            self.position += len(take)
        return batch


@SAMPLERS.register()
class IdentitySampler(EpochResume):
    """P identities x K instances per rank (for the triplet loss), as fast-reid's NaiveIdentitySampler.

    Each epoch: shuffle every identity's images (sampling K with replacement when it has fewer); repeatedly draw
    P identities without replacement among those with K images left and take K of each; `world_size` such P x K
    blocks form a global batch, rank r gets block r. The epoch ends when fewer than P identities remain.
    """

    def __init__(self, targets, batch_size, num_instances=4, world_size=1, seed=0):
        per_rank = batch_size // world_size
        if per_rank * world_size != batch_size or per_rank % num_instances:
            raise ValueError(f"IdentitySampler: batch {batch_size} must split into {world_size} rank(s) of "
                             f"P x K with K = num_instances = {num_instances}")
        self.batch_size, self.num_instances = batch_size, num_instances
        self.pids_per_block = per_rank // num_instances
        self.pid_indices = collections.defaultdict(list)
        for index, pid in enumerate(np.asarray(targets).tolist()):
            self.pid_indices[pid].append(index)
        self.pids = sorted(self.pid_indices)
        if len(self.pids) < self.pids_per_block:
            raise ValueError(f"IdentitySampler: {len(self.pids)} identities, fewer than P = {self.pids_per_block} "
                             f"per batch")
        self.rng = np.random.RandomState(seed)
        self.start_epoch()

    def start_epoch(self):
        self.epoch_rng_state = self.rng.get_state()
        self.batches, self.position = self.epoch_batches(), 0
        if not self.batches:
            raise ValueError(f"IdentitySampler: one epoch yields no full batch of {self.batch_size} "
                             f"({len(self.pids)} identities, K = {self.num_instances})")

    def epoch_batches(self):
        rng, k = self.rng, self.num_instances
        pool = {}
        for pid in self.pids:
            indices = self.pid_indices[pid]
            indices = rng.choice(indices, k, replace=True).tolist() if len(indices) < k else list(indices)
            rng.shuffle(indices)
            pool[pid] = indices
        available, batches, batch = list(self.pids), [], []
        while len(available) >= self.pids_per_block:
            for choice in sorted(rng.choice(len(available), self.pids_per_block, replace=False), reverse=True):
                pid = available[choice]
                batch.extend(pool[pid][-k:])
                del pool[pid][-k:]
                if len(pool[pid]) < k:
                    del available[choice]
            if len(batch) == self.batch_size:
                batches.append(batch)
                batch = []
        return batches

    def next_batch(self):
        if self.position == len(self.batches):
            self.start_epoch()
        self.position += 1
        return self.batches[self.position - 1]


class RankBatches:
    """The per-rank batch sampler handed to `paddle.io.DataLoader`: rank r's contiguous share of each global batch,
    as `(index, seed)` pairs.

    `seed` drives the sample's random augmentation. It is a function of the loader seed, the task and the sample's
    position in the task's global stream (global batch number x global batch + place in it) only, so a sample's
    augmentation does not depend on which thread or worker prepares it, on a resume, or (for the TrainingSampler,
    whose global batches do not) on the number of ranks.

    The loader reads ahead, so the state (sampler state + global batch number) is recorded before each batch is
    produced; `consumed()` reports how many recorded batches the training loop has taken, and `state_dict()` is the
    state before the next batch the loop will see. `set_state_dict()` also ends the iterators already handed out (a
    loader thread may still be reading ahead from one), so nothing but the new iterator advances the restored sampler.
    """

    def __init__(self, sampler, rank=0, world_size=1, seed=0, task=0):
        if sampler.batch_size % world_size:
            raise ValueError(f"global batch {sampler.batch_size} does not split over {world_size} ranks")
        self.sampler, self.per_rank = sampler, sampler.batch_size // world_size
        self.start = rank * self.per_rank
        self.seed, self.task = seed, task
        self.batch_number = 0
        self.pending = collections.deque()
        self.lock = threading.Lock()
        self.generation = 0

    def __iter__(self):
        generation = self.generation
        while True:
            with self.lock:
                if generation != self.generation:
                    return
                self.pending.append(self.current_state())
                batch = self.sampler.next_batch()[self.start:self.start + self.per_rank]
                first = self.batch_number * self.sampler.batch_size + self.start
                self.batch_number += 1
            yield [(index, self.sample_seed(first + offset)) for offset, index in enumerate(batch)]

    def sample_seed(self, position):
        """The augmentation seed of the sample at `position` in the task's global stream (a 64-bit int)."""
        sequence = np.random.SeedSequence(self.seed, spawn_key=(self.task, position))
        return int(sequence.generate_state(1, np.uint64)[0])

    def current_state(self):
        return {"sampler": self.sampler.state_dict(), "batch_number": self.batch_number}

    def consumed(self):
        self.pending.popleft()

    def state_dict(self):
        with self.lock:
            return self.pending[0] if self.pending else self.current_state()

    def set_state_dict(self, state):
        if sorted(state) != ["batch_number", "sampler"]:
            raise ValueError(f"batch sampler state needs keys ['batch_number', 'sampler'], got {sorted(state)} (a "
                             f"checkpoint written before augmentation seeds were part of the state cannot resume)")
        with self.lock:
            self.generation += 1
            self.pending.clear()
            self.sampler.set_state_dict(state["sampler"])
            self.batch_number = int(state["batch_number"])
