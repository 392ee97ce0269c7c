"""Training the task-MoE supernet in allinone's engine: one step class (`TaskMoEStep`, registry STEPS) and the gate
pictures it logs. Everything else (loader, losses, optimizer and its parameter groups, checkpoints, resume, hooks)
is the engine's, configured by `configs/oneforall/*taskmoe*.yaml` (docs/oneforall.md, "Training").

Why a step of its own: with the experts spread over the processes (`expert_parallel`), a rank computes only the
experts it owns and every rank runs collective calls inside the forward and backward passes. paddle.DataParallel
would all-reduce gradient buckets while those calls are still in flight, in an order that differs between ranks.
So this step runs without DataParallel (`data_parallel = False`) and, after the backward pass, all-reduces every
gradient itself in a fixed order and divides by the world size: every gradient is the global mean over ranks of
the per-rank loss sums, as in the original's MoE trainer. Parameters a rank did not use (other tasks' experts) take
part with a zero gradient (a zero-weighted term of the loss puts them in the graph). The step also broadcasts rank
0's parameters at the first step and can initialise the backbone from a plain ViT (`init_checkpoint`).
"""
import io
import logging

import numpy as np
import paddle
import paddle.distributed as dist

from allinone.engine.steps import SimpleStep, count_images
from allinone.registry import STEPS

from . import gate as gates
from . import heads as _heads  # noqa: F401  (registers ClassificationHead)
from . import losses as _losses  # noqa: F401  (registers SoftTargetCrossEntropyLoss)
from . import task_moe as _task_moe  # noqa: F401  (registers TaskMoEVisionTransformer)
from .data import classification as _classification  # noqa: F401  (registers ClassificationTrainDataset)

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
    (above 0.5: the task uses its own FFN in that block; exactly 0.5, the start, also picks specific)."""
    table = np.zeros([len(backbone.tasks), len(backbone.blocks)], dtype=np.float32)
    with paddle.no_grad():
        for b, block in enumerate(backbone.blocks):
            for t, task in enumerate(backbone.tasks):
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


def reduce_gradients_mean(params, world_size, group=None):
    """Replace every parameter's gradient by its mean over the ranks, in buckets, in the order of `params`."""
    grads = [param.grad for param in params]
    missing = [param.name for param, grad in zip(params, grads) if grad is None]
    if missing:
        raise RuntimeError(f"parameters without gradient after backward (not in the graph): {missing[:5]}")
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


def broadcast_state(model):
    """Every parameter and buffer of rank 0 to all ranks (what paddle.DataParallel does at construction), so the
    ranks start equal whatever each one's initialisation drew. Called at the first step (after a resume too: the
    ranks then already agree)."""
    with paddle.no_grad():
        for _, tensor in sorted(model.state_dict().items()):
            dist.broadcast(tensor, src=0)


@STEPS.register()
class TaskMoEStep(SimpleStep):
    """One update of the task-MoE model on a heterogeneous batch of every task (SimpleStep's order), with the
    gradients averaged over ranks by this step (see the module doc).

    `ranks_per_task` ({task: n}, default 1 each): with more than one process, task k's expert runs on n_k ranks
    (`TaskRankMap`; every n_k must divide the world size). `expert_parallel: false` keeps every expert on every rank
    (plain data parallel, for comparison). `gate_log_period` (0 = off): every that many iterations, and at the
    first, the storage gets scalars `gate/<task>/block<b>` (P(specific)) and an image `gates` (a heat map).
    """

    data_parallel = False  # allinone.engine.build: do not wrap the model in paddle.DataParallel

    def __init__(self, ranks_per_task=None, expert_parallel=True, gate_log_period=100, init_checkpoint=None):
        self.ranks_per_task, self.init_checkpoint = dict(ranks_per_task or {}), init_checkpoint
        self.expert_parallel, self.gate_log_period = bool(expert_parallel), int(gate_log_period)
        self.ready = False

    def setup(self, trainer):
        backbone = task_moe_backbone(trainer.module)
        unknown = sorted(set(self.ranks_per_task) - set(backbone.tasks))
        if unknown:
            raise ValueError(f"Train.step.ranks_per_task names unknown task(s) {unknown}; tasks: {list(backbone.tasks)}")
        if self.init_checkpoint and trainer.iter == 0:
            from .moe_checkpoint import load_task_moe_checkpoint

            report = load_task_moe_checkpoint(backbone, self.init_checkpoint)
            logger.info("backbone initialised from %s: %d tensors", self.init_checkpoint, len(report.loaded))
        self.world_size = dist.get_world_size()
        if self.world_size > 1:
            broadcast_state(trainer.module)
            if self.expert_parallel:
                backbone.enable_expert_parallel(self.ranks_per_task)
        self.params = [param for param in trainer.module.parameters() if not param.stop_gradient]
        self.ready = True

    def run_step(self, trainer):
        if not self.ready:
            self.setup(trainer)
        batch = trainer.next_batch()
        losses = trainer.forward_losses(batch)
        averaged = trainer.check_losses(losses)
        if self.world_size > 1:  # every parameter in the graph, so each rank has a gradient to all-reduce
            anchor = paddle.add_n([param.sum() for param in self.params]) * 0.0
            trainer.backward({**losses, ("", "zero_anchor"): anchor})
            reduce_gradients_mean(self.params, self.world_size)
        else:
            trainer.backward(losses)
        trainer.update()
        trainer.record_losses(averaged, count_images(batch))
        if self.gate_log_period and trainer.iter % self.gate_log_period == 0:
            self.log_gates(trainer)

    def log_gates(self, trainer):
        backbone = task_moe_backbone(trainer.module)
        table = gate_table(backbone)
        for t, task in enumerate(backbone.tasks):
            for b in range(table.shape[1]):
                trainer.storage.put_scalar(f"gate/{task}/block{b}", table[t, b])
        if dist.get_rank() == 0:
            trainer.storage.put_image("gates", gate_heatmap(table, backbone.tasks))
