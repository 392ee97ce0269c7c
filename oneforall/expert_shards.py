"""The state of a task-MoE model whose experts are sharded over processes (each rank holds only the specific experts
and gates of the tasks it owns; `TaskRankMap`), as one checkpoint file.

Model and optimizer states are dicts keyed by name: structured state-dict keys for the model
(`backbone.blocks.<b>.mlp.specific_experts.<task>.*`, `...mlp.gates.<task>`), `<parameter name>_<accumulator>_<n>`
for paddle's optimizers. Every rank builds the same parameter names (non-held experts are built under LazyGuard), so
the optimizer keys of one task's expert are the same whichever rank holds it.

At save (`gather_to_rank0`) rank 0 receives, tensor by tensor, the entries of the tasks it does not hold from one
owner each (`source_ranks`); rank 0 then has the state of a single-process model, and no rank ever holds more than
one foreign tensor at a time (rank 0 keeps what it received in host memory, to write the file). At load
(`held_part`) a rank keeps the replicated entries and those of its own tasks.
"""
import re

import paddle
import paddle.distributed as dist

EXPERT_KEY = re.compile(r"\.mlp\.(?:specific_experts|gates)\.([^.]+)(?:\.|$)")


def expert_task(key):
    """The task whose specific expert or gate the model state key belongs to, or None (a replicated entry)."""
    match = EXPERT_KEY.search(key)
    return match.group(1) if match else None


def source_ranks(rank_map):
    """{task: the rank that contributes the task's entries to the checkpoint}: rank 0 when it owns the task (it
    has them already), else the task's first owner."""
    return {task: 0 if 0 in owners else owners[0] for task, owners in rank_map.owners.items()}


def parameter_tasks(model):
    """{parameter name: task} for every task's specific-expert and gate parameters, held or not (the names of the
    others were drawn when the model was built: TaskMoEMlp.unheld_parameter_names)."""
    tasks = {param.name: task for key, param in model.named_parameters() if (task := expert_task(key)) is not None}
    for layer in model.sublayers():
        tasks.update(getattr(layer, "unheld_parameter_names", {}))
    return tasks


def accumulator_parameter(key, names):
    """The parameter name an optimizer state key `<name>_<accumulator>_<n>` belongs to (None if not in `names`)."""
    parts = key.split("_")
    for cut in range(len(parts) - 1, 0, -1):
        name = "_".join(parts[:cut])
        if name in names:
            return name
    return None


def optimizer_task_of(model):
    """A function: optimizer state key -> the task of the expert parameter it belongs to, or None."""
    tasks = parameter_tasks(model)
    return lambda key: tasks.get(accumulator_parameter(key, tasks))


def gather_to_rank0(local, task_of, rank_map):
    """Rank 0: `local` plus every entry of the tasks it does not hold, received from their source ranks (in the
    source's order), on the host; other ranks: {}. A collective call (all ranks, same order)."""
    rank = dist.get_rank()
    sources = source_ranks(rank_map)
    offered = {key: (list(value.shape), str(value.dtype).replace("paddle.", ""))
               for key, value in local.items()
               if isinstance(value, paddle.Tensor) and (task := task_of(key)) is not None
               and sources[task] == rank != 0}
    offers = []
    dist.all_gather_object(offers, offered)
    gathered = dict(local) if rank == 0 else {}
    for source, keys in enumerate(offers):
        for key, (shape, dtype) in keys.items():
            tensor = local[key] if rank == source else paddle.empty(shape, dtype=dtype)
            dist.broadcast(tensor, src=source)
            if rank == 0:
                gathered[key] = tensor.cpu()
    return gathered


def held_part(state, task_of, held_tasks):
    """The entries of `state` a rank holding the experts of `held_tasks` loads: replicated ones and its tasks'."""
    held = set(held_tasks)
    return {key: value for key, value in state.items() if (task := task_of(key)) is None or task in held}


__all__ = ["accumulator_parameter", "expert_task", "gather_to_rank0", "held_part", "optimizer_task_of",
           "parameter_tasks", "source_ranks"]
