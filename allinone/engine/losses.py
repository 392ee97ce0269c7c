"""Per-task training losses of the original's meta-architecture (see docs/training.md, "Losses").

A task's loss list comes from the config (`Loss.<task>: [{name: CrossEntropyLoss, ...}, ...]`). Each loss reads its
input from the head's training output dict and the task's batch, and is keyed `(task, name)` with the original's
names (`loss_cls`, `loss_triplet`; logged as `{task}_{name}`); the trainer sums every term of every task,
unweighted (each term has its own `scale`).
"""
import paddle
import paddle.nn.functional as F

from ..config import ConfigError
from ..registry import LOSSES

SOFT_MARGIN_FALLBACK = 0.3  # the original's margin when log(1 + exp(-gap)) overflows to inf


def cross_entropy_loss(logits, targets, eps=0.0):
    """Label-smoothed cross-entropy: 1 - eps on the target, eps / (C - 1) elsewhere; the summed per-sample losses
    divided by the number of non-zero ones (at least 1), as fast-reid's `cross_entropy_loss`."""
    num_classes = logits.shape[1]
    log_probs = F.log_softmax(logits, axis=1)
    with paddle.no_grad():
        one_hot = F.one_hot(targets, num_classes).astype(log_probs.dtype)
        smoothed = one_hot * (1.0 - eps) + (1.0 - one_hot) * (eps / max(num_classes - 1, 1))
    per_sample = -(smoothed * log_probs).sum(axis=1)
    nonzero = (per_sample.detach() != 0).astype(per_sample.dtype).sum().clip(min=1.0)
    return per_sample.sum() / nonzero


def pairwise_distance(embeddings, cosine=False):
    """[N, N] euclidean distances, sqrt(clip(|x|^2 + |y|^2 - 2xy, 1e-12)), or the cosine distance 2 - 2cos."""
    if cosine:
        normed = F.normalize(embeddings, axis=1)
        return 2.0 - 2.0 * paddle.matmul(normed, normed, transpose_y=True)
    squared = (embeddings * embeddings).sum(axis=1, keepdim=True)
    dist = squared + squared.t() - 2.0 * paddle.matmul(embeddings, embeddings, transpose_y=True)
    return dist.clip(min=1e-12).sqrt()


def triplet_loss(embeddings, targets, margin=0.0, norm_feat=False):
    """Batch-hard triplet loss. The hardest positive may be the anchor itself (as the original); margin 0 means the
    soft margin mean(log(1 + exp(-(d_an - d_ap)))), falling back to margin 0.3 when that overflows."""
    dist = pairwise_distance(embeddings, cosine=norm_feat)
    same = (targets.unsqueeze(1) == targets.unsqueeze(0)).astype(dist.dtype)
    hardest_positive = (dist * same).max(axis=1)
    hardest_negative = (dist * (1.0 - same) + same * 1e9).min(axis=1)
    gap = hardest_negative - hardest_positive
    ranking = F.relu(-gap + (margin if margin > 0 else SOFT_MARGIN_FALLBACK)).mean()
    if margin > 0:
        return ranking
    soft = F.softplus(-gap).mean()
    with paddle.no_grad():  # the original's naive log(1 + exp(x)) is inf exactly when exp overflows
        overflow = paddle.isinf(paddle.exp(-gap)).any()
    return paddle.where(overflow, ranking, soft)


@LOSSES.register()
class CrossEntropyLoss:
    """CE on the head's `logits` (CosFace margin and scale already applied by the head)."""
    name = "loss_cls"

    def __init__(self, eps=0.0, scale=1.0):
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"CrossEntropyLoss eps must be in [0, 1), got {eps}")
        self.eps, self.scale = float(eps), float(scale)

    def __call__(self, outputs, task_batch):
        if "logits" not in outputs:
            raise KeyError("CrossEntropyLoss needs head output 'logits': give the head num_classes > 0")
        return cross_entropy_loss(outputs["logits"], task_batch["targets"], self.eps) * self.scale


@LOSSES.register()
class TripletLoss:
    """Batch-hard triplet on the head's `features` (pre-BN with neck_feat='before')."""
    name = "loss_triplet"

    def __init__(self, margin=0.0, norm_feat=False, hard_mining=True, scale=1.0):
        if not hard_mining:
            raise ValueError("TripletLoss supports hard_mining: true only (the original's weighted mining is buggy "
                             "and unused)")
        self.margin, self.norm_feat, self.scale = float(margin), bool(norm_feat), float(scale)

    def __call__(self, outputs, task_batch):
        return triplet_loss(outputs["features"], task_batch["targets"], self.margin, self.norm_feat) * self.scale


class MultiTaskLoss:
    """`Loss` config section -> {task: [loss, ...]}; called on the model's per-task outputs and the batch, returns
    `{(task, loss name): scalar Tensor}` for the tasks present in the outputs. A loss sees the whole task batch."""

    def __init__(self, loss_cfg, tasks):
        missing = sorted(set(tasks) - set(loss_cfg))
        if missing:
            raise ConfigError(f"section 'Loss' has no entry for task(s) {missing} (tasks: {sorted(tasks)})")
        unknown = sorted(set(loss_cfg) - set(tasks))
        if unknown:
            raise ConfigError(f"section 'Loss' names unknown task(s) {unknown}; training tasks: {sorted(tasks)}")
        self.task_losses = {}
        for task in tasks:
            entries = loss_cfg[task]
            if not isinstance(entries, list) or not entries:
                raise ConfigError(f"Loss.{task} must be a non-empty list of {{name: ..., ...}} entries")
            try:
                self.task_losses[task] = [LOSSES.build(entry) for entry in entries]
            except (KeyError, TypeError, ValueError) as err:
                raise ConfigError(f"Loss.{task}: {err}") from None
            names = [loss.name for loss in self.task_losses[task]]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ConfigError(f"Loss.{task} has two losses named {repeated}: give each loss of a task its own")

    def __call__(self, outputs, batch):
        losses = {}
        for task, task_outputs in outputs.items():
            for loss in self.task_losses[task]:
                losses[(task, loss.name)] = loss(task_outputs, batch[task])
        return losses
