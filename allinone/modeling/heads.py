"""Embedding head: cls-token pooling, a BatchNorm neck and, for training only, a classifier layer.

At eval a head returns the post-BN feature [B, D], not L2-normalised, exactly as the original. Classifier
parameters exist only when `num_classes > 0` and live under `classifier.` so eval checkpoints are unchanged.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Normal

from ..registry import HEADS
from .original_arguments import HEAD_ARGUMENTS, absorb_original_arguments


class CosSoftmax(nn.Layer):
    """CosFace logits: scale * (cos(feature, class centre) - margin on the target class)."""

    def __init__(self, in_dim, num_classes, scale, margin):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.weight = self.create_parameter([in_dim, num_classes], default_initializer=Normal(std=0.001))

    def forward(self, features, targets):
        cosine = paddle.matmul(F.normalize(features, axis=1), F.normalize(self.weight, axis=0))
        margin = self.margin * F.one_hot(targets, cosine.shape[1])
        return {"logits": self.scale * (cosine - margin), "pred_logits": self.scale * cosine}


class LinearSoftmax(nn.Layer):
    """Plain linear logits (no bias) times `scale`; the margin is not used."""

    def __init__(self, in_dim, num_classes, scale, margin):
        super().__init__()
        self.scale = scale
        self.weight = self.create_parameter([in_dim, num_classes], default_initializer=Normal(std=0.001))

    def forward(self, features, targets):
        logits = self.scale * paddle.matmul(features, self.weight)
        return {"logits": logits, "pred_logits": logits}


CLASSIFIERS = {"CosSoftmax": CosSoftmax, "Linear": LinearSoftmax}


@HEADS.register()
class EmbeddingHead(nn.Layer):
    """cls token -> BN neck -> (training) classifier. Input: backbone tokens [B, N, in_dim], cls token first.

    `in_dim` is the backbone's width (build_model passes it). Eval: Tensor [B, in_dim] (the neck output).
    Training: a dict with `features` (the triplet-loss feature: pre-BN for neck_feat='before', post-BN for
    'after'), `neck_features` (post-BN) and, with a classifier, `logits` (margin applied and scaled: what
    cross-entropy consumes) and `pred_logits` (no margin, for accuracy); the targets are `task_batch["targets"]`.
    """

    EXTRA_CONFIG_KEYS = tuple(HEAD_ARGUMENTS)

    def __init__(self, in_dim, num_classes=0, cls_type="CosSoftmax", scale=1.0, margin=0.0, with_bnneck=True,
                 neck_feat="before", **original):
        super().__init__()
        absorb_original_arguments(type(self).__name__, original, HEAD_ARGUMENTS)
        if original:
            raise TypeError(f"{type(self).__name__} got unknown argument(s) {sorted(original)}")
        if neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got '{neck_feat}'")
        if cls_type not in CLASSIFIERS:
            raise ValueError(f"unknown cls_type '{cls_type}'; choose one of {sorted(CLASSIFIERS)}")
        self.neck_feat = neck_feat
        # Paddle's momentum weights the old running value: 0.9 here is torch's 0.1. Weight 1, bias 0, bias frozen:
        # the intended neck (the original swapped the init and froze the weight instead; docs/model.md).
        self.bottleneck = nn.Sequential(nn.BatchNorm1D(in_dim, momentum=0.9, epsilon=1e-5)) if with_bnneck \
            else nn.Sequential()
        if with_bnneck:
            self.bottleneck[0].bias.stop_gradient = True
        if num_classes > 0:
            self.classifier = CLASSIFIERS[cls_type](in_dim, num_classes, scale, margin)
        else:
            self.classifier = None

    def forward(self, tokens, task_batch=None):
        pooled = tokens[:, 0]  # B, D: the cls token
        neck = self.bottleneck(pooled)
        if not self.training:
            return neck
        outputs = {"features": pooled if self.neck_feat == "before" else neck, "neck_features": neck}
        if self.classifier is not None:
            targets = task_batch.get("targets") if isinstance(task_batch, dict) else None
            if targets is None:
                raise ValueError("training a head with a classifier needs targets (inputs[task]['targets'])")
            outputs.update(self.classifier(neck, targets))
        return outputs
