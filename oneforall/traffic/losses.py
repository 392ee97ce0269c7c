"""Losses of the three traffic tasks: DINO's set loss (sigmoid focal + L1 + GIoU, 12 terms), SETR's ignore-aware
cross-entropy over the main and auxiliary logits, and the classifier's label-smoothed cross-entropy."""
import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn as nn
import paddle.nn.functional as F

from .boxes import cxcywh_to_xyxy, generalized_iou
from .matcher import HungarianMatcher


def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """Element-wise focal loss on sigmoid probabilities (same shape as logits; sum it yourself)."""
    probs = F.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


class DINOLoss(nn.Layer):
    """Set loss of DINO. Terms (all divided by the number of GT boxes, averaged over ranks, at least 1):
    loss_class / loss_bbox / loss_giou of the last decoder layer; the `_aux` sums over the encoder proposals and
    the other decoder layers (each matched on its own); the same six with `_dn` for the denoising queries, whose
    matching is fixed (the i-th positive copy of a GT <-> that GT) and whose count is multiplied by the groups."""

    TERMS = ("class", "bbox", "giou")

    def __init__(self, num_classes=45, class_weight=1.0, bbox_weight=5.0, giou_weight=2.0, alpha=0.25, gamma=2.0,
                 matcher=None):
        super().__init__()
        self.num_classes = num_classes
        self.weights = {"class": class_weight, "bbox": bbox_weight, "giou": giou_weight}
        self.alpha, self.gamma = alpha, gamma
        self.matcher = matcher or HungarianMatcher(alpha=alpha, gamma=gamma)

    def forward(self, outputs, gt_boxes, gt_classes):
        """outputs: the DINOTransformer's training dict; gt_boxes: per-image [n, 4] normalised cxcywh;
        gt_classes: per-image [n] or [n, 1] contiguous labels. Returns {term: scalar}, 12 entries."""
        num_gts = self.num_gts(gt_boxes)
        boxes, logits = outputs["boxes"], outputs["logits"]
        meta = outputs["dn_meta"]
        if meta is not None:
            dn_boxes, boxes = paddle.split(boxes, meta["split"], axis=2)
            dn_logits, logits = paddle.split(logits, meta["split"], axis=2)
        layers_boxes = [outputs["enc_boxes"]] + list(boxes.unbind(0))
        layers_logits = [outputs["enc_logits"]] + list(logits.unbind(0))
        losses = self.layer_losses(layers_boxes[-1], layers_logits[-1], gt_boxes, gt_classes, num_gts, "")
        aux = [self.layer_losses(b, lg, gt_boxes, gt_classes, num_gts, "_aux")
               for b, lg in zip(layers_boxes[:-1], layers_logits[:-1])]
        losses.update({key: paddle.add_n([a[key] for a in aux]) for key in aux[0]})
        if meta is not None:
            matches = self.denoising_matches(gt_boxes, meta)
            dn_num = num_gts * meta["num_groups"]
            per_layer = [self.layer_losses(b, lg, gt_boxes, gt_classes, dn_num, "_dn", matches)
                         for b, lg in zip(dn_boxes.unbind(0), dn_logits.unbind(0))]
            losses.update(per_layer[-1])
            losses.update({key.replace("_dn", "_aux_dn"): paddle.add_n([p[key] for p in per_layer[:-1]])
                           for key in per_layer[-1]})
        else:
            zero = paddle.zeros([], "float32")
            losses.update({f"loss_{term}{suffix}": zero for term in self.TERMS for suffix in ("_dn", "_aux_dn")})
        return losses

    @staticmethod
    def num_gts(gt_boxes):
        count = paddle.to_tensor(float(sum(int(b.shape[0]) for b in gt_boxes)))
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        return float(count.clip(min=1.0))

    @staticmethod
    def denoising_matches(gt_boxes, meta):
        matches = []
        for image, positive in enumerate(meta["positive_index"]):
            count = int(gt_boxes[image].shape[0])
            gt_index = np.tile(np.arange(count), meta["num_groups"]) if count else np.zeros(0, np.int64)
            matches.append((positive.astype(np.int64), gt_index.astype(np.int64)))
        return matches

    def layer_losses(self, boxes, logits, gt_boxes, gt_classes, num_gts, suffix, matches=None):
        """class/bbox/giou losses of one layer's [B, Q, 4] boxes and [B, Q, C] logits."""
        if matches is None:
            matches = self.matcher(boxes, logits, gt_boxes, gt_classes)
        batch, queries = logits.shape[:2]
        target = np.full([batch, queries], self.num_classes, dtype=np.int64)
        src_boxes, tgt_boxes = [], []
        for image, (query_index, gt_index) in enumerate(matches):
            if len(query_index) == 0:
                continue
            labels = gt_classes[image].numpy().reshape([-1])
            target[image, query_index] = labels[gt_index]
            src_boxes.append(paddle.gather(boxes[image], paddle.to_tensor(query_index)))
            tgt_boxes.append(paddle.gather(gt_boxes[image].astype(boxes.dtype), paddle.to_tensor(gt_index)))
        one_hot = F.one_hot(paddle.to_tensor(target), self.num_classes + 1)[..., :-1]
        loss_class = sigmoid_focal_loss(logits, one_hot, self.alpha, self.gamma).sum() / num_gts
        if src_boxes:
            src, tgt = paddle.concat(src_boxes), paddle.concat(tgt_boxes)
            loss_bbox = (src - tgt).abs().sum() / num_gts
            loss_giou = (1 - generalized_iou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(tgt))).sum() / num_gts
        else:  # zero, but in the graph: every rank then has gradients for the same parameters
            loss_bbox = loss_giou = boxes.sum() * 0.0
        return {f"loss_class{suffix}": self.weights["class"] * loss_class,
                f"loss_bbox{suffix}": self.weights["bbox"] * loss_bbox,
                f"loss_giou{suffix}": self.weights["giou"] * loss_giou}


def ignore_cross_entropy(logits, labels, ignore_index=255):
    """Pixel CE averaged over non-ignored pixels: logits [B, K, H, W], labels [B, H, W] int64."""
    mask = (labels != ignore_index).astype(logits.dtype)
    safe = paddle.where(labels == ignore_index, paddle.zeros_like(labels), labels)
    loss = F.cross_entropy(logits.transpose([0, 2, 3, 1]), safe.unsqueeze(-1), reduction="none").squeeze(-1)
    return (loss * mask).mean() / (mask.mean() + 1e-8)


def setr_loss(logits_list, labels, coefficients=(1.0, 0.4, 0.4, 0.4, 0.4), ignore_index=255):
    """Weighted sum of ignore-aware CE over [main, aux...] logits."""
    if len(logits_list) != len(coefficients):
        raise ValueError(f"setr_loss: {len(logits_list)} logits for {len(coefficients)} coefficients")
    return paddle.add_n([c * ignore_cross_entropy(lg, labels, ignore_index)
                         for c, lg in zip(coefficients, logits_list)])


def smoothed_cross_entropy(logits, labels, epsilon=0.1):
    """Label-smoothed CE (true class 1 - eps, every other eps / (K - 1)), summed over samples and divided by the
    number of non-zero per-sample losses."""
    num_classes = logits.shape[-1]
    target = F.one_hot(labels.reshape([-1]), num_classes)
    target = target * (1 - epsilon) + (1 - target) * (epsilon / (num_classes - 1))
    per_sample = -(target * F.log_softmax(logits, axis=-1)).sum(-1)
    nonzero = (per_sample > 0).astype("float32").sum().clip(min=1.0)
    return per_sample.sum() / nonzero


__all__ = ["DINOLoss", "ignore_cross_entropy", "setr_loss", "sigmoid_focal_loss", "smoothed_cross_entropy"]
