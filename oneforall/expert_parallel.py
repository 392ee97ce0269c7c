"""Expert parallelism across processes: each task's specific FFN runs on the ranks that own the task.

Every rank holds a mixed batch (rows of any tasks, `segments` in row order). In every block the rows of task k are
sent to an owner of task k, go through k's gate and expert there, and come back to their rank. Ownership
(`TaskRankMap`): task k gets `n_k` consecutive ranks (in task order, wrapping around the world), and source rank r
sends its task-k rows to the owner `r // (W / n_k)` of k's group; every n_k must divide the world size W (the
original's routing for its 48-rank layout, without its multiple-of-6 world sizes). The row layout of every rank is
exchanged for every batch (never cached).

Transport: `paddle.distributed.all_gather` of every rank's rows and a sum over ranks of the expert outputs, both with
autograd (`GatherRows`, `SumOverRanks`). This works on every backend, including gloo (CPU), which has no all-to-all;
it moves W times more data than an all-to-all would (an NCCL all-to-all transport is not written yet).

All ranks hold all experts here (the state dict is the single-process one); an expert's gradient is non-zero only on
its owners, so a data-parallel gradient sum gives exactly the single-process gradient.
"""
import paddle
import paddle.distributed as dist
from paddle.autograd import PyLayer


class TaskRankMap:
    """Which ranks own each task's expert, and where a source rank's rows of a task go."""

    def __init__(self, tasks, world_size, ranks_per_task=None):
        ranks_per_task = dict(ranks_per_task or {})
        unknown = sorted(set(ranks_per_task) - set(tasks))
        if unknown:
            raise ValueError(f"ranks_per_task names unknown task(s) {unknown}; tasks are {list(tasks)}")
        self.tasks, self.world_size = tuple(tasks), int(world_size)
        self.owners, start = {}, 0
        for task in self.tasks:
            count = int(ranks_per_task.get(task, 1))
            if count < 1 or self.world_size % count:
                raise ValueError(f"task '{task}' has {count} ranks, which does not divide the world size "
                                 f"{self.world_size}")
            self.owners[task] = tuple((start + i) % self.world_size for i in range(count))
            start = (start + count) % self.world_size

    def destination(self, source_rank, task):
        owners = self.owners[task]
        return owners[source_rank // (self.world_size // len(owners))]


class GatherRows(PyLayer):
    """[rows, ...] on every rank -> [W, rows, ...] (all ranks' rows); backward: the summed gradient of a rank's
    slot goes back to that rank."""

    @staticmethod
    def forward(ctx, x, group=None):
        ctx.group = group
        parts = []
        dist.all_gather(parts, x, group=group)
        return paddle.stack(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad[dist.get_rank(ctx.group)]


class SumOverRanks(PyLayer):
    """The element-wise sum over ranks (every rank gets it); backward: the summed gradient."""

    @staticmethod
    def forward(ctx, x, group=None):
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad


class ExpertParallel:
    """Routes the task-MoE FFN rows of a batch to their owners. `plan(segments)` exchanges every rank's row layout
    (once per batch, shared by all blocks); `run(mlp, x)` does one block's FFN."""

    def __init__(self, rank_map, group=None):
        self.rank_map, self.group = rank_map, group
        self.rank = dist.get_rank(group) if group is not None else dist.get_rank()
        self.layouts = None

    def plan(self, segments):
        """Exchange the (task, rows) layout of every rank's batch."""
        layouts = []
        dist.all_gather_object(layouts, [(task, int(rows)) for task, rows in segments], group=self.group)
        self.layouts = [tuple(layout) for layout in layouts]
        return self.layouts

    def run(self, mlp, x):
        """The FFN output of this rank's rows `x` [B, ...], computed by the experts' owners."""
        if self.layouts is None:
            raise RuntimeError("ExpertParallel.run before plan(segments) for this batch")
        sizes = [sum(rows for _, rows in layout) for layout in self.layouts]
        if x.shape[0] != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} has {x.shape[0]} rows but its segments say {sizes[self.rank]}")
        capacity = max(sizes)
        padded = x if x.shape[0] == capacity else paddle.concat(
            [x, paddle.zeros([capacity - x.shape[0]] + list(x.shape[1:]), dtype=x.dtype)])
        every_rank = GatherRows.apply(padded, self.group)  # W, capacity, ...
        slots = []
        for source, layout in enumerate(self.layouts):
            pieces, start = [], 0
            for task, rows in layout:
                if rows and self.rank_map.destination(source, task) == self.rank:
                    pieces.append(mlp.task_forward(task, every_rank[source, start:start + rows]))
                else:
                    pieces.append(paddle.zeros([rows] + list(x.shape[1:]), dtype=x.dtype))
                start += rows
            pieces.append(paddle.zeros([capacity - start] + list(x.shape[1:]), dtype=x.dtype))
            slots.append(paddle.concat([p for p in pieces if p.shape[0]]) if any(p.shape[0] for p in pieces)
                         else pieces[-1])
        mine = SumOverRanks.apply(paddle.stack(slots), self.group)[self.rank]
        return mine[:x.shape[0]]


__all__ = ["ExpertParallel", "GatherRows", "SumOverRanks", "TaskRankMap"]
