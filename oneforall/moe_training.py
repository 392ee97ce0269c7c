"""Training the task-MoE supernet in allinone's engine: one step class (`TaskMoEStep`, registry STEPS) and the gate
pictures it logs. Everything else (loader, losses, optimizer and its parameter groups, checkpoints, resume, hooks)
is the engine's, configured by `configs/oneforall/*taskmoe*.yaml` (docs/oneforall.md, "Training").

Why a step of its own: with the experts spread over the processes (`expert_parallel`), a rank computes only the
experts it owns and every rank runs collective calls inside the forward and backward passes. paddle.DataParallel
would all-reduce gradient buckets while those calls are still in flight, in an order that differs between ranks.
So this step runs without DataParallel (`data_parallel = False`) and, after the backward pass, all-reduces every
gradient itself in a fixed order and divides by the world size: every gradient is the global mean over ranks of
the per-rank loss sums, as in the original's MoE trainer. The step also broadcasts rank 0's replicated parameters at
the first step and can initialise the backbone from a plain ViT (`init_checkpoint`).

Every trainable parameter a rank holds gets a gradient tensor at every update, zeros if it was not used (an expert
none of the rows picked): the original's formula multiplied an unpicked expert by 0, which gave it a zero gradient,
so its weight decay applied; Paddle's optimizer skips a parameter whose gradient is None. `num_passes` > 1
accumulates: the batch is cut into that many sub-batches (each task's rows in order), one forward/backward each with
the losses weighted 1 / num_passes, one gradient reduction and one update at the end.

With expert parallelism over several processes the model is sharded (`build_model`): a rank holds the specific
experts and gates of only its own tasks. Their gradients are averaged over the task's owners only (divided by the
world size, as every gradient); a checkpoint is a folder in which rank 0 writes the replicated part and each task's
part is written by one of its owners, and a resumed rank reads only the replicated part and its own tasks' parts
(oneforall.expert_shards).
"""
import copy
import io
import logging

import numpy as np
import paddle
import paddle.distributed as dist

from allinone.config import ConfigError
from allinone.engine.checkpointer import ResumeError
from allinone.engine.hooks import EvalHook
from allinone.engine.steps import SimpleStep, accumulate_passes, count_images, split_batch
from allinone.registry import STEPS

from . import gate as gates
from . import heads as _heads  # noqa: F401  (registers ClassificationHead)
from . import losses as _losses  # noqa: F401  (registers SoftTargetCrossEntropyLoss)
from . import task_moe as _task_moe  # noqa: F401  (registers TaskMoEVisionTransformer)
from .data import classification as _classification  # noqa: F401  (registers ClassificationTrainDataset)
from .expert_parallel import TaskRankMap, owner_groups
from .expert_shards import checkpoint_parts, expert_task, held_part, optimizer_task_of, parts_of, source_ranks

logger = logging.getLogger("oneforall.moe_training")
BUCKET_ELEMENTS = 1 << 25  # gradients are all-reduced in buckets of up to 32M values (bounded extra memory)


def task_moe_backbone(model):
    """The TaskMoEVisionTransformer of a MultiTaskModel (or the model itself)."""
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "tasks") or not hasattr(backbone.blocks[0].mlp, "gates"):
        raise TypeError(f"TaskMoEStep needs a task-MoE backbone (TaskMoEVisionTransformer), got "
                        f"{type(backbone).__name__}")
    return backbone


def gate_table(backbone):
    """[num tasks, num blocks] float32: the eval probability of the specific expert, softmax(logits / tau)[1]
    (above 0.5: the task uses its own FFN in that block; exactly 0.5, the start, also picks specific). NaN for the
    tasks whose gates this process does not hold (a sharded model)."""
    table = np.full([len(backbone.tasks), len(backbone.blocks)], np.nan, dtype=np.float32)
    with paddle.no_grad():
        for b, block in enumerate(backbone.blocks):
            for t, task in enumerate(backbone.tasks):
                if task not in block.mlp.gates:
                    continue
                logits = block.mlp.gates[task].astype("float32").reshape([-1]) / block.mlp.tau
                table[t, b] = float(paddle.nn.functional.softmax(logits)[gates.SPECIFIC])
    return table


def gate_heatmap(table, tasks, title="P(specific expert)"):
    """An HWC uint8 picture of `gate_table` (rows: tasks, columns: blocks), drawn with matplotlib's Agg backend
    (the original's `canvas.tostring_rgb` is gone from matplotlib; a PNG round trip works in every version)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from PIL import Image

    figure = Figure(figsize=(2.8 + 0.3 * table.shape[1], 1.2 + 0.25 * table.shape[0]), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(table, vmin=0.0, vmax=1.0, cmap="coolwarm", aspect="auto")
    axes.set_yticks(range(len(tasks)), labels=list(tasks), fontsize=7)
    axes.set_xticks(range(table.shape[1]), labels=[str(b) for b in range(table.shape[1])], fontsize=7)
    axes.set_xlabel("block", fontsize=8)
    axes.set_title(title, fontsize=8)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def reduce_gradients_mean(params, world_size, group=None, alone=False):
    """Replace every parameter's gradient by its sum over the ranks of `group` (default all) divided by
    `world_size`, in buckets, in the order of `params`; `alone`: this rank is the only holder (no exchange)."""
    grads = [param.grad for param in params]
    missing = [param.name for param, grad in zip(params, grads) if grad is None]
    if missing:
        raise RuntimeError(f"parameters without gradient after backward (not in the graph): {missing[:5]}")
    if alone:
        for grad in grads:
            grad.set_value(grad / world_size)
        return
    start = 0
    while start < len(grads):
        stop, size = start, 0
        while stop < len(grads) and (size == 0 or size + grads[stop].size <= BUCKET_ELEMENTS):
            size += grads[stop].size
            stop += 1
        bucket = paddle.concat([grad.reshape([-1]) for grad in grads[start:stop]])
        dist.all_reduce(bucket, group=group)
        bucket = bucket / world_size
        offset = 0
        for grad in grads[start:stop]:
            grad.set_value(bucket[offset:offset + grad.size].reshape(grad.shape))
            offset += grad.size
        start = stop


def sum_task_over_world(params, size, dtype, world_size):
    """The gradients of one task's parameters (`params` on its owners, [] elsewhere) summed over all ranks, the
    ranks without them adding zeros, divided by `world_size`: the owner-group mean without a sub-group, in chunks
    of BUCKET_ELEMENTS (`size` values of `dtype` in all)."""
    grads = [param.grad for param in params]
    flat = paddle.concat([grad.reshape([-1]) for grad in grads]) if grads else None
    summed = []
    for start in range(0, size, BUCKET_ELEMENTS):
        stop = min(size, start + BUCKET_ELEMENTS)
        chunk = flat[start:stop].clone() if flat is not None else paddle.zeros([stop - start],
                                                                               dtype=dtype.replace("paddle.", ""))
        dist.all_reduce(chunk)
        summed.append(chunk / world_size)
    if flat is not None:
        flat, offset = paddle.concat(summed), 0
        for grad in grads:
            grad.set_value(flat[offset:offset + grad.size].reshape(grad.shape))
            offset += grad.size


def give_zero_gradients(params):
    """A zero gradient tensor for every parameter of `params` that has none (not in this update's graph), so the
    optimizer applies its weight decay to it as to every other parameter."""
    for param in params:
        if param.grad is None:
            param.grad = paddle.zeros_like(param)


def broadcast_state(model, replicated_only=False):
    """Every parameter and buffer of rank 0 to all ranks (what paddle.DataParallel does at construction), so the
    ranks start equal whatever each one's initialisation drew. Called at the first step (after a resume too: the
    ranks then already agree). `replicated_only`: not the specific experts and gates (a sharded model: their
    owners drew them from the same seeds)."""
    with paddle.no_grad():
        for key, tensor in sorted(model.state_dict().items()):
            if not (replicated_only and expert_task(key)):
                dist.broadcast(tensor, src=0)


@STEPS.register()
class TaskMoEStep(SimpleStep):
    """One update of the task-MoE model on a heterogeneous batch of every task (SimpleStep's order), with the
    gradients averaged over ranks by this step (see the module doc).

    `ranks_per_task` ({task: n}, default 1 each): with more than one process, task k's expert runs on n_k ranks
    (`TaskRankMap`; every n_k must divide the world size). `expert_parallel: false` keeps every expert on every rank
    (plain data parallel, for comparison). `gate_log_period` (0 = off): every that many iterations, and at the
    first, the storage gets scalars `gate/<task>/block<b>` (P(specific)) and an image `gates` (a heat map).
    `num_passes` (default 1): forward/backward passes per update, each on a slice of every task's rows (gradient
    accumulation; the same update as one pass for per-sample-mean losses when every task's rows split evenly).
    """

    data_parallel = False  # allinone.engine.build: do not wrap the model in paddle.DataParallel

    def __init__(self, ranks_per_task=None, expert_parallel=True, gate_log_period=100, init_checkpoint=None,
                 num_passes=1):
        self.ranks_per_task, self.init_checkpoint = dict(ranks_per_task or {}), init_checkpoint
        self.expert_parallel, self.gate_log_period = bool(expert_parallel), int(gate_log_period)
        if isinstance(num_passes, bool) or int(num_passes) != num_passes or num_passes < 1:
            raise ValueError(f"Train.step.num_passes must be a positive integer, got {num_passes!r}")
        self.num_passes = int(num_passes)
        self.ready = False
        self.rank_map = None  # a TaskRankMap when the model is sharded over the processes
        self.reads_own_parts = False  # resuming from a sharded checkpoint folder: only this rank's parts were read
        self.owner_groups = {}  # {task: process group of its owners} (oneforall.expert_parallel.owner_groups)

    def build_model(self, cfg):
        """The model with its specific experts initialised from `Global.seed` (every process draws the same
        values); with expert parallelism over several processes, holding only this rank's tasks' experts."""
        from allinone.modeling import build_model

        cfg = copy.deepcopy(cfg)  # the run's config (dumped next to the checkpoints) stays the unsharded one
        backbone = cfg.Model.backbone
        if "tasks" not in backbone:
            raise TypeError(f"TaskMoEStep needs a task-MoE backbone (Model.backbone.name: TaskMoEVisionTransformer), "
                            f"got {backbone.get('name')}")
        if backbone.get("expert_seed") is None:
            backbone["expert_seed"] = int(cfg.Global.get("seed") or 0)
        if self.expert_parallel and dist.get_world_size() > 1:
            try:
                self.rank_map = TaskRankMap(backbone["tasks"], dist.get_world_size(), self.ranks_per_task)
            except ValueError as err:
                raise ValueError(f"Train.step.ranks_per_task: {err}") from None
            backbone["held_tasks"] = list(self.rank_map.tasks_of(dist.get_rank()))
            # the optimizer is built from this config (allinone.engine.solver): a global norm over a part of the
            # experts would differ from rank to rank
            if cfg.get_path("Optimizer.grad_clip_global_norm"):
                raise ConfigError("Optimizer.grad_clip_global_norm needs every parameter on every process; with the "
                                 "experts sharded use grad_clip_norm (per tensor, the recipe's) or "
                                 "Train.step.expert_parallel: false")
            # gloo: sub-groups were unreliable here (see expert_parallel.owner_groups), so a task with several
            # (not all) owners is summed over all ranks, the others adding zeros (`sum_task_over_world`)
            self.owner_groups = None if dist.get_backend().lower() == "gloo" else owner_groups(self.rank_map)
        return build_model(cfg)

    @property
    def sharded(self):
        return self.rank_map is not None

    def setup(self, trainer):
        backbone = task_moe_backbone(trainer.module)
        unknown = sorted(set(self.ranks_per_task) - set(backbone.tasks))
        if unknown:
            raise ValueError(f"Train.step.ranks_per_task names unknown task(s) {unknown}; tasks: {list(backbone.tasks)}")
        if self.expert_parallel and dist.get_world_size() > 1 and any(isinstance(hook, EvalHook)
                                                                     for hook in trainer.hooks):
            raise ValueError("Train.eval_period > 0 with experts spread over processes: the evaluation runs on rank 0 "
                             "alone, which neither holds nor can reach the other ranks' experts; set "
                             "Train.eval_period=0 and evaluate the checkpoint (tools/train.py --eval-only --resume "
                             "CKPT, or extract the tasks: docs/oneforall.md)")
        if self.init_checkpoint and trainer.iter == 0:
            from .moe_checkpoint import load_task_moe_checkpoint

            report = load_task_moe_checkpoint(backbone, self.init_checkpoint)
            logger.info("backbone initialised from %s: %d tensors", self.init_checkpoint, len(report.loaded))
        self.world_size = dist.get_world_size()
        if self.world_size > 1:
            broadcast_state(trainer.module, replicated_only=self.sharded)
            if self.expert_parallel:
                backbone.enable_expert_parallel(self.ranks_per_task)
        trainable = [(key, param) for key, param in trainer.module.named_parameters() if not param.stop_gradient]
        self.params = [param for _, param in trainable]
        # the gradient exchanges of an update: replicated parameters over all ranks, then each task's over its owners
        tasks = {key: expert_task(key) if self.sharded else None for key, _ in trainable}
        self.exchanges = [(None, [param for key, param in trainable if tasks[key] is None])]
        for task in backbone.tasks if self.sharded else ():
            owners = self.rank_map.owners[task]
            through_world = self.owner_groups is None and 1 < len(owners) < self.world_size
            if task in backbone.held_tasks or through_world:
                self.exchanges.append((task, [param for key, param in trainable if tasks[key] == task]))
        if self.sharded and self.owner_groups is None:  # each task's gradient size, for the ranks adding zeros
            sizes = []
            dist.all_gather_object(sizes, {task: (sum(p.size for p in params), str(params[0].dtype))
                                           for task, params in self.exchanges if task and params})
            self.task_sizes = {task: size for rank_sizes in sizes for task, size in rank_sizes.items()}
        self.ready = True

    def reduce_gradients(self, trainer):
        """Every gradient becomes its sum over the ranks that hold the parameter, divided by the world size: the
        replicated ones over all ranks, a task's expert and gate over the task's owners (no exchange when it has
        one), in task order on every rank."""
        if self.world_size == 1:
            return
        for task, params in self.exchanges:
            owners = self.rank_map.owners[task] if task else ()
            if task is None or len(owners) == self.world_size:
                reduce_gradients_mean(params, self.world_size)
            elif len(owners) == 1:
                reduce_gradients_mean(params, self.world_size, alone=True)
            elif self.owner_groups is not None:
                reduce_gradients_mean(params, self.world_size, self.owner_groups[task])
            else:
                sum_task_over_world(params, *self.task_sizes[task], self.world_size)

    # -- checkpoints: a folder with one part per task, each written and read by a holder of it -----------------
    def checkpoint_parts(self, trainer, state):
        """Sharded: the replicated part (rank 0) and the parts of the tasks this rank is the source of
        (oneforall.expert_shards.checkpoint_parts); otherwise None (one file, by rank 0)."""
        if not self.sharded:
            return None
        return checkpoint_parts(state, expert_task, optimizer_task_of(trainer.module), self.rank_map, dist.get_rank())

    def parts_to_read(self, trainer, parts):
        """Sharded: the replicated part and this rank's tasks' parts; otherwise all (one process reads every task's
        file)."""
        if not self.sharded:
            return list(parts)
        self.reads_own_parts = True  # what is read must then be exactly this rank's state (load_model_state)
        return parts_of(task_moe_backbone(trainer.module).held_tasks, parts)

    def load_model_state(self, trainer, state):
        if self.sharded and not self.reads_own_parts:  # a single file of the older layout: every task's entries
            state = held_part(state, expert_task, task_moe_backbone(trainer.module).held_tasks)
        expected = trainer.module.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ResumeError(f"the checkpoint does not fit this process's model: missing {missing[:5]} "
                              f"({len(missing)} entries), unexpected {unexpected[:5]} ({len(unexpected)} entries)")
        trainer.module.set_state_dict(state)

    def load_optimizer_state(self, trainer, state):
        if self.sharded:
            state = held_part(state, optimizer_task_of(trainer.module), task_moe_backbone(trainer.module).held_tasks)
        trainer.optimizer.set_state_dict(state)

    def run_step(self, trainer):
        if not self.ready:
            self.setup(trainer)
        batch = trainer.next_batch()
        parts = split_batch(batch, self.num_passes) if self.num_passes > 1 else [batch]
        averaged = accumulate_passes(trainer, parts)
        give_zero_gradients(self.params)
        self.reduce_gradients(trainer)
        trainer.update()
        trainer.record_losses(averaged, count_images(batch))
        if self.gate_log_period and trainer.iter % self.gate_log_period == 0:
            self.log_gates(trainer)

    def log_gates(self, trainer):
        backbone = task_moe_backbone(trainer.module)
        table = gate_table(backbone)
        if self.sharded:  # each task's row from one of its owners
            sources = source_ranks(self.rank_map)
            mine = [sources[task] == dist.get_rank() for task in backbone.tasks]
            table = paddle.to_tensor(np.where(np.array(mine)[:, None], table, 0.0).astype(np.float32))
            dist.all_reduce(table)
            table = table.numpy()
        for t, task in enumerate(backbone.tasks):
            for b in range(table.shape[1]):
                trainer.storage.put_scalar(f"gate/{task}/block{b}", table[t, b])
        if dist.get_rank() == 0:
            trainer.storage.put_image("gates", gate_heatmap(table, backbone.tasks))
