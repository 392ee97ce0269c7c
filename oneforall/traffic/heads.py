"""The three task heads of the traffic model. Each takes the backbone's (pyramid, block_outputs) and the task's
batch dict; in training it returns {"losses": {name: scalar}}, in eval its predictions.

* ClassificationHead (fgvc): average pool of the stride-32 map -> Linear -> Linear.
* DetectionHead (trafficsign): DINO on the 4-level pyramid; eval returns the top-k (query, class) pairs.
* SegmentationHead (segmentation): SETR-PUP on block tokens; four auxiliary branches share one set of weights.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from allinone.registry import HEADS

from .boxes import cxcywh_to_xyxy
from .dino import DINOTransformer
from .losses import DINOLoss, setr_loss, smoothed_cross_entropy


@HEADS.register(name="TrafficClassificationHead")
class ClassificationHead(nn.Layer):
    def __init__(self, in_dim=768, hidden_dim=384, num_classes=196, level=2, label_smoothing=0.1):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)
        self.level, self.label_smoothing = level, label_smoothing

    def forward(self, features, batch=None):
        pooled = features[0][self.level].mean(axis=[2, 3])  # B, C
        logits = self.fc2(self.fc1(pooled))
        if not self.training:
            return {"logits": logits}
        return {"logits": logits, "losses": {"loss_ce_cls": smoothed_cross_entropy(logits, batch["targets"],
                                                                                   self.label_smoothing)}}


@HEADS.register(name="TrafficDetectionHead")
class DetectionHead(nn.Layer):
    """DINO + loss + top-k post-processing. Batch keys: images, pad_mask (train), gt_boxes / gt_classes (train: lists
    of normalised cxcywh [n, 4] and contiguous labels [n]), im_shape and scale_factor [B, 2] (eval, (h, w))."""

    def __init__(self, num_classes=45, num_top_queries=50, loss=None, **transformer):
        super().__init__()
        self.transformer = DINOTransformer(num_classes=num_classes, **transformer)
        self.loss = DINOLoss(num_classes=num_classes, **(loss or {}))
        self.num_classes, self.num_top_queries = num_classes, num_top_queries

    def forward(self, features, batch):
        pyramid = features[0]
        if self.training:
            out = self.transformer(pyramid, batch.get("pad_mask"), batch["gt_boxes"], batch["gt_classes"])
            return {"losses": self.loss(out, batch["gt_boxes"], batch["gt_classes"])}
        out = self.transformer(pyramid)
        return self.postprocess(out["boxes"][-1], out["logits"][-1], batch["im_shape"], batch["scale_factor"])

    def postprocess(self, boxes, logits, im_shape, scale_factor):
        """Top `num_top_queries` (query, class) pairs per image by sigmoid score, boxes in original pixels.
        Returns {"bbox": [B, k, 6] rows (label, score, x1, y1, x2, y2), "bbox_num": [B]}."""
        original = paddle.floor(im_shape.astype("float32") / scale_factor.astype("float32") + 0.5)  # B, 2 (h, w)
        scale = paddle.concat([original[:, 1:2], original[:, 0:1]] * 2, -1).unsqueeze(1)  # B, 1, 4
        xyxy = cxcywh_to_xyxy(boxes) * scale
        scores, index = paddle.topk(F.sigmoid(logits).flatten(1), self.num_top_queries, axis=-1)
        labels = index % self.num_classes
        query = index // self.num_classes
        xyxy = paddle.take_along_axis(xyxy, query.unsqueeze(-1).tile([1, 1, 4]), axis=1)
        rows = paddle.concat([labels.astype("float32").unsqueeze(-1), scores.unsqueeze(-1), xyxy], -1)
        return {"bbox": rows, "bbox_num": paddle.full([boxes.shape[0]], self.num_top_queries, "int64")}


class ConvBNReLU(nn.Layer):
    def __init__(self, in_dim, out_dim, kernel_size=3):
        super().__init__()
        self._conv = nn.Conv2D(in_dim, out_dim, kernel_size, padding="same")
        self._batch_norm = nn.BatchNorm2D(out_dim)

    def forward(self, x):
        return F.relu(self._batch_norm(self._conv(x)))


class PUPDecoder(nn.Layer):
    """SETR's progressive upsampling: main branch on the last block (4 conv stages, x2 upsampling between them,
    output stride 2), auxiliary branches (conv, x4, output stride 4) on `aux_indices`, all sharing one module."""

    def __init__(self, embed_dim=768, num_classes=19, channels=256, block_index=11, aux_indices=(5, 7, 9, 11)):
        super().__init__()
        self.block_index, self.aux_indices = block_index, tuple(aux_indices)
        up = dict(scale_factor=2, mode="bilinear")
        self.cls_head_norm = nn.LayerNorm(embed_dim, epsilon=1e-6)
        self.cls_head = nn.Sequential(
            ConvBNReLU(embed_dim, channels), nn.Upsample(**up), ConvBNReLU(channels, channels), nn.Upsample(**up),
            ConvBNReLU(channels, channels), nn.Upsample(**up), ConvBNReLU(channels, channels),
            nn.Conv2D(channels, num_classes, 1))
        aux_norm = nn.LayerNorm(embed_dim, epsilon=1e-6)
        aux_head = nn.Sequential(ConvBNReLU(embed_dim, channels), nn.Upsample(scale_factor=4, mode="bilinear"),
                                 nn.Conv2D(channels, num_classes, 1))
        # One module registered under every aux name: the baseline's checkpoints list the shared weights 4 times.
        self.aux_head_norms = nn.LayerList([aux_norm] * len(self.aux_indices))
        self.aux_heads = nn.LayerList([aux_head] * len(self.aux_indices))

    @staticmethod
    def to_map(tokens, norm, grid):
        batch, _, dim = tokens.shape
        return norm(tokens).transpose([0, 2, 1]).reshape([batch, dim, grid[0], grid[1]])

    def forward(self, block_outputs, grid):
        logits = [self.cls_head(self.to_map(block_outputs[self.block_index], self.cls_head_norm, grid))]
        if self.training:
            for norm, head, index in zip(self.aux_head_norms, self.aux_heads, self.aux_indices):
                logits.append(head(self.to_map(block_outputs[index], norm, grid)))
        return logits


@HEADS.register(name="TrafficSegmentationHead")
class SegmentationHead(nn.Layer):
    """SETR-PUP with the loss; every logit map is resized to the input (bilinear, align_corners=True).
    Batch keys: images, targets [B, H, W] int64 (train). Eval returns {"logits": [B, K, H, W]}."""

    def __init__(self, patch_size=16, loss_coefficients=(1.0, 0.4, 0.4, 0.4, 0.4), ignore_index=255, **decoder):
        super().__init__()
        self.head = PUPDecoder(**decoder)
        self.patch_size, self.loss_coefficients, self.ignore_index = patch_size, tuple(loss_coefficients), \
            ignore_index

    def forward(self, features, batch):
        size = batch["images"].shape[2:]
        grid = (size[0] // self.patch_size, size[1] // self.patch_size)
        logits = [F.interpolate(lg, size=size, mode="bilinear", align_corners=True)
                  for lg in self.head(features[1], grid)]
        if not self.training:
            return {"logits": logits[0]}
        loss = setr_loss(logits, batch["targets"], self.loss_coefficients, self.ignore_index)
        return {"logits": logits[0], "losses": {"seg_setr_loss": loss}}


__all__ = ["ClassificationHead", "ConvBNReLU", "DetectionHead", "PUPDecoder", "SegmentationHead"]
