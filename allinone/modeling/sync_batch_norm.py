"""Batch normalisation whose training statistics cover the batches of every rank (what SyncBatchNorm does on GPUs).

With data parallelism each rank normalises its own share of the batch; a head trained with small per-rank batches
(the traffic segmentation head: 2 images per GPU) then sees noisier statistics than the recipe's. Paddle's
`nn.SyncBatchNorm` runs on GPUs only, so `synchronise_batch_norm` uses it there and `CrossRankBatchNorm2D` (the same
maths through two all-reduces that carry gradients) on the CPU backend. Keys, parameters and learning-rate
multipliers stay those of the plain layer, so checkpoints are unchanged.
"""
import logging

import paddle
import paddle.distributed as dist
import paddle.nn as nn
from paddle.autograd import PyLayer

logger = logging.getLogger("allinone.modeling")


class AllReduceSum(PyLayer):
    """The element-wise sum over ranks; backward: the sum over ranks of the gradients (every rank's loss depends on
    every rank's inputs through the sum)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CrossRankBatchNorm2D(nn.BatchNorm2D):
    """BatchNorm2D (NCHW) whose training-mode mean and biased variance are those of all ranks' batches together; the
    running statistics follow Paddle's rule (running = momentum * running + (1 - momentum) * batch, biased variance).
    One process or eval mode: the plain layer."""

    def forward(self, x):
        if not self.training or dist.get_world_size() < 2:
            return super().forward(x)
        channels = x.shape[1]
        count = AllReduceSum.apply(paddle.full([1], x.shape[0] * x.shape[2] * x.shape[3], dtype=x.dtype)).detach()
        mean = AllReduceSum.apply(x.sum(axis=[0, 2, 3])) / count  # C
        centred = x - mean.reshape([1, channels, 1, 1])
        variance = AllReduceSum.apply((centred * centred).sum(axis=[0, 2, 3])) / count  # two passes: no cancellation
        with paddle.no_grad():
            self._mean.set_value(self._mean * self._momentum + mean.detach() * (1.0 - self._momentum))
            self._variance.set_value(self._variance * self._momentum + variance.detach() * (1.0 - self._momentum))
        scale = paddle.rsqrt(variance + self._epsilon)
        if self.weight is not None:
            scale = scale * self.weight
        out = centred * scale.reshape([1, channels, 1, 1])
        return out + self.bias.reshape([1, channels, 1, 1]) if self.bias is not None else out


def synchronise_batch_norm(model):
    """`model` with every BatchNorm2D computing its training statistics over all ranks (nothing changes in one
    process): Paddle's SyncBatchNorm on a GPU, CrossRankBatchNorm2D otherwise. The new layers take over the old
    ones' parameters and buffers (same tensors, same names and attributes); a layer registered under several
    names stays one layer."""
    if dist.get_world_size() < 2:
        return model
    if paddle.device.get_device().startswith("gpu"):
        logger.info("BatchNorm layers: paddle SyncBatchNorm over %d ranks", dist.get_world_size())
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    replaced = {}
    for parent in [model, *model.sublayers()]:
        for name, child in list(parent._sub_layers.items()):  # every name, shared layers included
            if type(child) is not nn.BatchNorm2D or child._data_format != "NCHW":
                continue
            if id(child) not in replaced:
                synced = CrossRankBatchNorm2D(child._num_features, momentum=child._momentum, epsilon=child._epsilon)
                synced.weight, synced.bias = child.weight, child.bias
                synced._mean, synced._variance = child._mean, child._variance
                synced.training = child.training
                replaced[id(child)] = synced
            setattr(parent, name, replaced[id(child)])
    logger.info("BatchNorm layers: %d with statistics over %d ranks (CrossRankBatchNorm2D)", len(replaced),
                dist.get_world_size())
    return model


__all__ = ["AllReduceSum", "CrossRankBatchNorm2D", "synchronise_batch_norm"]
