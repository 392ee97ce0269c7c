"""The checkpoint of a task-MoE model whose experts are sharded over processes (each rank holds only the specific
experts and gates of the tasks it owns; `TaskRankMap`): one part per task, written by the rank that holds it.

Model and optimizer states are dicts keyed by name: structured state-dict keys for the model
(`backbone.blocks.<b>.mlp.specific_experts.<task>.*`, `...mlp.gates.<task>`), `<parameter name>_<accumulator>_<n>`
for paddle's optimizers. Every rank builds the same parameter names (non-held experts are built under LazyGuard), so
the optimizer keys of one task's expert are the same whichever rank holds it.

At save (`checkpoint_parts`) each rank splits its own state: rank 0 writes the replicated part (everything that is
not a task's expert or gate, plus the rest of the training checkpoint), and each task's part (`experts.<task>`: its
experts, gates and their optimizer state) is written by that task's source rank (`source_ranks`), from what it holds:
no tensor moves between processes and no rank holds another rank's experts (the folder layout:
allinone.modeling.sharded_checkpoint). At load a rank reads the replicated part and its own tasks' parts
(`parts_of`); a single-file checkpoint of the older layout still loads (`held_part` keeps a rank's entries of it).
"""
import re

TASK_PART_PREFIX = "experts."
NOT_SPLIT = ("LR_Scheduler",)  # nested dicts of an optimizer state that are no per-parameter maps
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


def task_part(task):
    """The name of the checkpoint part holding `task`'s experts, gates and their optimizer state."""
    return f"{TASK_PART_PREFIX}{task}"


def split_by_task(state, task_of):
    """{task or None: {key: value}} of `state` (None: the replicated entries). A nested dict value (the optimizer's
    `master_weights` {parameter name: tensor}) is split by its own keys."""
    split = {}
    for key, value in state.items():
        if isinstance(value, dict) and key not in NOT_SPLIT:
            for inner, tensor in value.items():
                split.setdefault(task_of(inner), {}).setdefault(key, {})[inner] = tensor
        else:
            split.setdefault(task_of(key), {})[key] = value
    return split


def checkpoint_parts(state, model_task_of, optimizer_task_of_key, rank_map, rank):
    """{part name: dict} that `rank` writes of its training checkpoint `state` ("model" and "optimizer": this rank's
    own entries): on rank 0 the replicated part (`MAIN_PART`: every entry besides the tasks' experts); on each task's
    source rank that task's part {"model": ..., "optimizer": ...}."""
    from allinone.modeling.sharded_checkpoint import MAIN_PART

    models, optimizers = split_by_task(state["model"], model_task_of), split_by_task(state["optimizer"],
                                                                                       optimizer_task_of_key)
    parts = {}
    if rank == 0:
        parts[MAIN_PART] = {**state, "model": models.get(None, {}), "optimizer": optimizers.get(None, {})}
    for task, source in source_ranks(rank_map).items():
        if source == rank:
            if task not in models:
                raise RuntimeError(f"rank {rank} is the source of task '{task}' but holds none of its experts")
            parts[task_part(task)] = {"model": models[task], "optimizer": optimizers.get(task, {})}
    return parts


def parts_of(held_tasks, parts):
    """The parts a rank holding `held_tasks` reads of a checkpoint with parts `parts`: the replicated one and its
    tasks'. A held task without a part is an error naming it."""
    from allinone.engine.checkpointer import ResumeError
    from allinone.modeling.sharded_checkpoint import MAIN_PART

    wanted = [MAIN_PART, *(task_part(task) for task in held_tasks)]
    missing = [part for part in wanted if part not in parts]
    if missing:
        raise ResumeError(f"the checkpoint has no part(s) {missing} (it has {sorted(parts)}): was it written by a run "
                          f"with other tasks?")
    return wanted


def held_part(state, task_of, held_tasks):
    """The entries of `state` a rank holding the experts of `held_tasks` loads: replicated ones and its tasks' (a
    nested dict, the optimizer's `master_weights`, filtered by its own keys)."""
    held = set(held_tasks)

    def kept(key):
        task = task_of(key)
        return task is None or task in held

    part = {}
    for key, value in state.items():
        if isinstance(value, dict) and key not in NOT_SPLIT:
            part[key] = {inner: tensor for inner, tensor in value.items() if kept(inner)}
        elif kept(key):
            part[key] = value
    return part


__all__ = ["accumulator_parameter", "checkpoint_parts", "expert_task", "held_part", "optimizer_task_of",
           "parameter_tasks", "parts_of", "source_ranks", "split_by_task", "task_part"]
