"""Embedding head: global pooling, a BatchNorm neck and, for training only, a classifier layer.

At eval a head returns the post-BN feature [B, D], not L2-normalised, exactly as the original. Classifier
parameters exist only when `num_classes > 0` and live under `classifier.` so eval checkpoints are unchanged.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Normal

from ..registry import HEADS


class CosSoftmax(nn.Layer):
    """CosFace logits: scale * (cos(feature, class centre) - margin on the target class)."""

    def __init__(self, feat_dim, num_classes, scale, margin):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.weight = self.create_parameter([feat_dim, num_classes], default_initializer=Normal(std=0.001))

    def forward(self, features, targets):
        cosine = paddle.matmul(F.normalize(features, axis=1), F.normalize(self.weight, axis=0))
        margin = self.margin * F.one_hot(targets, cosine.shape[1])
        return {"logits": self.scale * (cosine - margin), "pred_logits": self.scale * cosine}


class LinearSoftmax(nn.Layer):
    """Plain linear logits (no bias) times `scale`; the margin is not used."""

    def __init__(self, feat_dim, num_classes, scale, margin):
        super().__init__()
        self.scale = scale
        self.weight = self.create_parameter([feat_dim, num_classes], default_initializer=Normal(std=0.001))

    def forward(self, features, targets):
        logits = self.scale * paddle.matmul(features, self.weight)
        return {"logits": logits, "pred_logits": logits}


CLASSIFIERS = {"CosSoftmax": CosSoftmax, "Linear": LinearSoftmax}


@HEADS.register()
class EmbeddingHead(nn.Layer):
    """Pool -> BN neck -> (training) classifier. Input [B, feat_dim, H, W] (the ViT gives H = W = 1).

    Eval: Tensor [B, feat_dim] (the neck output). Training: a dict with `features` (the triplet-loss feature:
    pre-BN for neck_feat='before', post-BN for 'after'), `neck_features` (post-BN) and, with a classifier,
    `logits` (margin applied and scaled: what cross-entropy consumes) and `pred_logits` (no margin, for accuracy).
    """

    def __init__(self, feat_dim, num_classes=0, cls_type="CosSoftmax", scale=1.0, margin=0.0, with_bnneck=True,
                 neck_feat="before"):
        super().__init__()
        if neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got '{neck_feat}'")
        if cls_type not in CLASSIFIERS:
            raise ValueError(f"unknown cls_type '{cls_type}'; choose one of {sorted(CLASSIFIERS)}")
        self.neck_feat = neck_feat
        # Paddle's momentum weights the old running value: 0.9 here is torch's 0.1. Bias frozen, weight 1, bias 0
        # (the original swapped the init and froze the wrong parameter: spec allinone.md 7.3 #20).
        self.bottleneck = nn.Sequential(nn.BatchNorm2D(feat_dim, momentum=0.9, epsilon=1e-5)) if with_bnneck \
            else nn.Sequential()
        if with_bnneck:
            self.bottleneck[0].bias.stop_gradient = True
        if num_classes > 0:
            self.classifier = CLASSIFIERS[cls_type](feat_dim, num_classes, scale, margin)
        else:
            self.classifier = None

    def forward(self, features, targets=None):
        pooled = features.mean(axis=[2, 3], keepdim=True)
        neck = self.bottleneck(pooled)[:, :, 0, 0]
        if not self.training:
            return neck
        outputs = {"features": pooled[:, :, 0, 0] if self.neck_feat == "before" else neck, "neck_features": neck}
        if self.classifier is not None:
            if targets is None:
                raise ValueError("training a head with a classifier needs targets (inputs[task]['targets'])")
            outputs.update(self.classifier(neck, targets))
        return outputs
