"""Expert parallelism across processes: each task's specific FFN runs on the ranks that own the task.

Every rank holds a mixed batch (rows of any tasks, `segments` in row order). In every block the rows of task k are
sent to an owner of task k, go through k's gate and expert there, and come back to their rank. Ownership
(`TaskRankMap`): task k gets `n_k` consecutive ranks (in task order, wrapping around the world), and source rank r
sends its task-k rows to the owner `r // (W / n_k)` of k's group; every n_k must divide the world size W (the
original's routing for its 48-rank layout, without its multiple-of-6 world sizes). The row layout of every rank is
exchanged for every batch (never cached).

Transports (chosen by the process group's backend, or by `transport=`):
* "alltoall" (NCCL and other backends that have it): `paddle.distributed.alltoall_single` sends each row only to its
  owner and the outputs back (`AllToAll`, autograd by the reverse exchange), following a `RoutePlan`;
* "allgather" (gloo, the CPU backend, has no all-to-all): an all_gather of every rank's rows and a sum over ranks of
  the expert outputs, both with autograd (`GatherRows`, `SumOverRanks`); it moves W times the data.

A rank holds the experts and gates of only the tasks it owns (`TaskRankMap.tasks_of`, the model's `held_tasks`):
both transports call a task's expert only on its owners. Gradients (oneforall.moe_training): replicated weights are
averaged over all ranks, a task's expert and gate over its owners (`owner_groups`), both divided by the world size.
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

    def tasks_of(self, rank):
        """The tasks whose expert `rank` owns, in task order."""
        return tuple(task for task in self.tasks if rank in self.owners[task])

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


class RoutePlan:
    """One rank's all-to-all exchange, from every rank's (task, rows) layout: the order in which its rows leave
    (grouped by destination rank, `send_order`, `send_splits`), and what arrives from each source rank (`receive`:
    its (task, rows) segments in the source's row order, `receive_splits`)."""

    def __init__(self, rank_map, layouts, rank):
        world = len(layouts)
        rows_to = [[] for _ in range(world)]
        start = 0
        for task, rows in layouts[rank]:
            if rows:
                rows_to[rank_map.destination(rank, task)].extend(range(start, start + rows))
            start += rows
        self.num_rows = start
        self.send_order = [row for rows in rows_to for row in rows]
        self.send_splits = [len(rows) for rows in rows_to]
        self.receive = [[(task, rows) for task, rows in layouts[source]
                         if rows and rank_map.destination(source, task) == rank] for source in range(world)]
        self.receive_splits = [sum(rows for _, rows in segments) for segments in self.receive]
        inverse = [0] * start
        for position, row in enumerate(self.send_order):
            inverse[row] = position
        self.return_order = inverse  # row i of this rank comes back at position inverse[i]


class AllToAll(PyLayer):
    """Rows [n, F] split by `send_splits` to the ranks -> the rows received, split by `receive_splits`; backward:
    the same exchange in reverse."""

    @staticmethod
    def forward(ctx, x, send_splits, receive_splits, group=None):
        ctx.splits, ctx.group = (send_splits, receive_splits), group
        out = paddle.empty([sum(receive_splits)] + list(x.shape[1:]), dtype=x.dtype)
        dist.alltoall_single(out, x, send_splits, receive_splits, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        send_splits, receive_splits = ctx.splits
        out = paddle.empty([sum(send_splits)] + list(grad.shape[1:]), dtype=grad.dtype)
        dist.alltoall_single(out, grad.contiguous(), receive_splits, send_splits, group=ctx.group)
        return out


def owner_groups(rank_map, group=None):
    """{task: process group of its owners} for the tasks with several owners (None: the owners are all ranks of
    `group`). A collective call: every rank creates them in task order, as paddle requires of new_group. For NCCL;
    with gloo (Paddle 3.3.1, 4 CPU processes) creating two disjoint sub-groups during training failed or hung now
    and then ("connection refused", timeouts), so the CPU path of TaskMoEStep does without them."""
    members = list(group.ranks) if group is not None else list(range(rank_map.world_size))
    groups, made = {}, {}
    for task in rank_map.tasks:
        owners = rank_map.owners[task]
        if len(owners) == 1:
            continue
        if len(owners) == rank_map.world_size:
            groups[task] = group
            continue
        ranks = tuple(sorted(members[owner] for owner in owners))
        if ranks not in made:
            made[ranks] = dist.new_group(list(ranks))
        groups[task] = made[ranks]
    return groups


class ExpertParallel:
    """Routes the task-MoE FFN rows of a batch to their owners. `plan(segments)` exchanges every rank's row layout
    (once per batch, shared by all blocks); `run(mlp, x)` does one block's FFN."""

    TRANSPORTS = ("alltoall", "allgather")

    def __init__(self, rank_map, group=None, transport=None):
        self.rank_map, self.group = rank_map, group
        self.rank = dist.get_rank(group) if group is not None else dist.get_rank()
        if transport is None:
            transport = "allgather" if dist.get_backend(group).lower() == "gloo" else "alltoall"
        if transport not in self.TRANSPORTS:
            raise ValueError(f"transport must be one of {self.TRANSPORTS}, got '{transport}'")
        self.transport = transport
        self.layouts = self.route = None

    def plan(self, segments):
        """Exchange the (task, rows) layout of every rank's batch."""
        layouts = []
        dist.all_gather_object(layouts, [(task, int(rows)) for task, rows in segments], group=self.group)
        self.layouts = [tuple(layout) for layout in layouts]
        self.route = RoutePlan(self.rank_map, self.layouts, self.rank)
        return self.layouts

    def run(self, mlp, x):
        """The FFN output of this rank's rows `x` [B, ...], computed by the experts' owners."""
        if self.layouts is None:
            raise RuntimeError("ExpertParallel.run before plan(segments) for this batch")
        sizes = [sum(rows for _, rows in layout) for layout in self.layouts]
        if x.shape[0] != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} has {x.shape[0]} rows but its segments say {sizes[self.rank]}")
        if self.transport == "alltoall":
            return self._run_alltoall(mlp, x)
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

    def _run_alltoall(self, mlp, x):
        route, row_shape = self.route, list(x.shape[1:])
        outgoing = paddle.gather(x.reshape([x.shape[0], -1]), paddle.to_tensor(route.send_order, dtype="int64"))
        arrived = AllToAll.apply(outgoing, route.send_splits, route.receive_splits, self.group)
        arrived = arrived.reshape([arrived.shape[0]] + row_shape)
        outputs, start = [], 0
        for segments in route.receive:
            for task, rows in segments:
                outputs.append(mlp.task_forward(task, arrived[start:start + rows]))
                start += rows
        computed = paddle.concat(outputs) if outputs else arrived
        back = AllToAll.apply(computed.reshape([computed.shape[0], -1]), route.receive_splits, route.send_splits,
                              self.group)
        return paddle.gather(back, paddle.to_tensor(route.return_order, dtype="int64")).reshape([-1] + row_shape)


__all__ = ["AllToAll", "ExpertParallel", "GatherRows", "RoutePlan", "SumOverRanks", "TaskRankMap", "owner_groups"]
