"""Cross-entropy on soft targets (Mixup / CutMix batches), registered in allinone's LOSSES."""
import paddle
import paddle.nn.functional as F

from allinone.engine.losses import CrossEntropyLoss, cross_entropy_loss
from allinone.registry import LOSSES


def soft_target_cross_entropy(logits, targets):
    """-(targets * log_softmax(logits)).sum per sample; the sum over samples divided by the number of non-zero
    per-sample losses (at least 1), the original's normalisation for hard and soft targets alike."""
    per_sample = -(targets.astype(logits.dtype) * F.log_softmax(logits, axis=1)).sum(axis=1)
    nonzero = (per_sample.detach() != 0).astype(per_sample.dtype).sum().clip(min=1.0)
    return per_sample.sum() / nonzero


@LOSSES.register()
class SoftTargetCrossEntropyLoss(CrossEntropyLoss):
    """`loss_cls` on the head's `logits`: soft targets [b, C] (a mixed batch) as they are, integer targets [b] as
    CrossEntropyLoss (label smoothing `eps`)."""

    def __call__(self, outputs, task_batch):
        targets = task_batch["targets"]
        if targets.ndim == 2:
            return soft_target_cross_entropy(outputs["logits"], targets) * self.scale
        return cross_entropy_loss(outputs["logits"], targets, self.eps) * self.scale
