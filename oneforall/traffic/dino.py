"""DINO: a two-stage deformable DETR with contrastive denoising queries (the traffic-sign detector).

Parameter names follow PaddleDetection 2.6's DINOTransformer so the baseline's checkpoint loads: input_proj,
encoder.layers.i, decoder.layers.i, decoder.norm, denoising_class_embed, level_embed, tgt_embed, query_pos_head,
enc_output, enc_score_head, enc_bbox_head, dec_score_head.i, dec_bbox_head.i. How queries, references and the
denoising groups flow is described in docs/traffic.md ("Detection head").
"""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant, Normal, Uniform, XavierUniform

from .boxes import cxcywh_to_xyxy, inverse_sigmoid, xyxy_to_cxcywh
from .deformable import MSDeformableAttention


class MLP(nn.Layer):
    """Linear layers with ReLU between them (`layers.0`, `layers.1`, ...)."""

    def __init__(self, in_dim, hidden_dim, out_dim, num_layers):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.LayerList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MultiHeadAttention(nn.Layer):
    """Standard multi-head attention with one packed input projection (`in_proj_weight` [C, 3C]: q | k | v)."""

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = self.create_parameter([embed_dim, 3 * embed_dim], default_initializer=XavierUniform())
        self.in_proj_bias = self.create_parameter([3 * embed_dim], is_bias=True)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query, key, value, attn_mask=None):
        """attn_mask: [Lq, Lk] bool, True = may attend."""
        weights = self.in_proj_weight.split(3, axis=1)
        biases = self.in_proj_bias.split(3)
        q, k, v = (paddle.matmul(x, w) + b for x, w, b in zip((query, key, value), weights, biases))
        batch = query.shape[0]

        def heads(x):  # B, L, C -> B, heads, L, d
            return x.reshape([batch, -1, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

        scores = paddle.matmul(heads(q), heads(k), transpose_y=True) / math.sqrt(self.head_dim)
        if attn_mask is not None:
            scores = scores + paddle.where(attn_mask, paddle.zeros([], scores.dtype),
                                           paddle.full([], float("-inf"), scores.dtype))
        out = paddle.matmul(F.softmax(scores, axis=-1), heads(v)).transpose([0, 2, 1, 3])
        return self.out_proj(out.reshape([batch, -1, self.embed_dim]))


class EncoderLayer(nn.Layer):
    """Post-norm: deformable self-attention, add, LN; FFN, add, LN."""

    def __init__(self, dim, num_heads, num_levels, num_points, ffn_dim):
        super().__init__()
        self.self_attn = MSDeformableAttention(dim, num_heads, num_levels, num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src, pos, reference_points, spatial_shapes, mask):
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes, mask))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class Encoder(nn.Layer):
    def __init__(self, num_layers, **layer_args):
        super().__init__()
        self.layers = nn.LayerList([EncoderLayer(**layer_args) for _ in range(num_layers)])

    @staticmethod
    def reference_points(spatial_shapes, valid_ratios):
        """Pixel centres of every level, normalised by the valid (unpadded) size: [B, sum(HW), levels, 2]."""
        points = []
        for level, (height, width) in enumerate(spatial_shapes):
            ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
            ys = paddle.to_tensor(ys.reshape([1, -1]), "float32") / (valid_ratios[:, level, 1:2] * height)
            xs = paddle.to_tensor(xs.reshape([1, -1]), "float32") / (valid_ratios[:, level, 0:1] * width)
            points.append(paddle.stack([xs, ys], -1))
        return paddle.concat(points, 1).unsqueeze(2) * valid_ratios.unsqueeze(1)

    def forward(self, src, pos, spatial_shapes, mask, valid_ratios):
        reference_points = self.reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes, mask)
        return src


class DecoderLayer(nn.Layer):
    """Post-norm: self-attention (denoising mask), add, LN; deformable cross-attention, add, LN; FFN, add, LN."""

    def __init__(self, dim, num_heads, num_levels, num_points, ffn_dim):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, num_heads, num_levels, num_points)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tgt, query_pos, reference_points, memory, spatial_shapes, memory_mask, attn_mask):
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt, attn_mask))
        tgt = self.norm2(tgt + self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes,
                                               memory_mask))
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Decoder(nn.Layer):
    def __init__(self, num_layers, dim, **layer_args):
        super().__init__()
        self.layers = nn.LayerList([DecoderLayer(dim, **layer_args) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(dim)


def sine_embedding(values, num_feats=128, temperature=10000):
    """Sine/cos embedding of each coordinate in [0, 1] (scale 2 pi), coordinates in the order (y, x, w, h)."""
    dim_t = 2 * (np.arange(num_feats) // 2)
    dim_t = paddle.to_tensor(2 * math.pi / temperature ** (dim_t / num_feats), "float32")
    parts = []
    for coordinate in values.unbind(-1):
        x = coordinate.unsqueeze(-1) * dim_t
        parts.append(paddle.stack([x[..., 0::2].sin(), x[..., 1::2].cos()], axis=-1).flatten(-2))
    parts[0], parts[1] = parts[1], parts[0]
    return paddle.concat(parts, -1)


def mask_position_embedding(mask, num_feats=128, temperature=10000, offset=-0.5, eps=1e-6):
    """Sine embedding of a [B, H, W] valid-pixel mask (cumulative sums along rows and columns): [B, 256, H, W]."""
    mask = mask.astype("float32")
    y = mask.cumsum(1)
    x = mask.cumsum(2)
    y = (y + offset) / (y[:, -1:, :] + eps) * 2 * math.pi
    x = (x + offset) / (x[:, :, -1:] + eps) * 2 * math.pi
    dim_t = paddle.to_tensor(temperature ** (2 * (np.arange(num_feats) // 2) / num_feats), "float32")
    pos_x = x.unsqueeze(-1) / dim_t
    pos_y = y.unsqueeze(-1) / dim_t
    pos_x = paddle.stack([pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()], axis=4).flatten(3)
    pos_y = paddle.stack([pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()], axis=4).flatten(3)
    return paddle.concat([pos_y, pos_x], axis=3).transpose([0, 3, 1, 2])


class InputProjection(nn.Sequential):
    def __init__(self, in_dim, dim):
        super().__init__()
        self.conv = nn.Conv2D(in_dim, dim, 1)
        self.norm = nn.GroupNorm(32, dim)
        XavierUniform()(self.conv.weight)
        Constant(0.0)(self.conv.bias)


class DINOTransformer(nn.Layer):
    """Encoder + two-stage query selection + decoder with iterative box refinement.

    forward(features, pad_mask=None, targets=None) returns a dict: `boxes` [layers, B, Q', 4] (sigmoid cxcywh) and
    `logits` [layers, B, Q', classes] of the decoder layers, `enc_boxes`/`enc_logits` [B, Q, ...] of the selected
    encoder proposals, and `dn_meta` (None without denoising) describing the Q' = denoising + Q query split.
    """

    def __init__(self, num_classes=45, hidden_dim=256, num_queries=900, in_channels=(768, 768, 768, 768),
                 num_heads=8, num_points=4, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0, eps=1e-2, anchor_size=0.05):
        super().__init__()
        self.num_classes, self.hidden_dim, self.num_queries = num_classes, hidden_dim, num_queries
        self.num_levels = len(in_channels)
        self.num_denoising, self.label_noise_ratio, self.box_noise_scale = num_denoising, label_noise_ratio, \
            box_noise_scale
        self.eps, self.anchor_size = eps, anchor_size
        layer_args = dict(num_heads=num_heads, num_levels=self.num_levels, num_points=num_points,
                          ffn_dim=dim_feedforward)
        self.input_proj = nn.LayerList([InputProjection(c, hidden_dim) for c in in_channels])
        self.encoder = Encoder(num_encoder_layers, dim=hidden_dim, **layer_args)
        self.decoder = Decoder(num_decoder_layers, hidden_dim, **layer_args)
        self.denoising_class_embed = nn.Embedding(num_classes, hidden_dim)
        self.level_embed = nn.Embedding(self.num_levels, hidden_dim)
        self.tgt_embed = nn.Embedding(num_queries, hidden_dim)
        self.query_pos_head = MLP(2 * hidden_dim, hidden_dim, hidden_dim, 2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_score_head = nn.LayerList([nn.Linear(hidden_dim, num_classes) for _ in range(num_decoder_layers)])
        self.dec_bbox_head = nn.LayerList([MLP(hidden_dim, hidden_dim, 4, 3) for _ in range(num_decoder_layers)])
        self.reset_parameters()

    def reset_parameters(self):
        """PaddleDetection's initialisation: score heads uniform(+-1/sqrt(fan_in)) with the bias of a 0.01 prior,
        last box-MLP layers zero, Xavier for the query and position projections, normal level embeddings."""
        prior_bias = Constant(-math.log((1 - 0.01) / 0.01))
        bound = 1 / math.sqrt(self.hidden_dim)
        for head in [self.enc_score_head, *self.dec_score_head]:
            Uniform(-bound, bound)(head.weight)
            prior_bias(head.bias)
        for mlp in [self.enc_bbox_head, *self.dec_bbox_head]:
            Constant(0.0)(mlp.layers[-1].weight)
            Constant(0.0)(mlp.layers[-1].bias)
        XavierUniform()(self.enc_output[0].weight)
        Uniform(-bound, bound)(self.enc_output[0].bias)
        XavierUniform()(self.tgt_embed.weight)
        Normal()(self.level_embed.weight)
        for layer in self.query_pos_head.layers:
            XavierUniform()(layer.weight)

    # ---- encoder input ------------------------------------------------------------------------------------
    def flatten_levels(self, features, pad_mask):
        """Projected levels flattened to [B, sum(HW), C], with position embeddings, masks and valid ratios."""
        tokens, positions, masks, ratios, shapes = [], [], [], [], []
        for level, feature in enumerate(features):
            feature = self.input_proj[level](feature)
            batch, _, height, width = feature.shape
            if pad_mask is None:
                mask = paddle.ones([batch, height, width], "float32")
            else:
                mask = F.interpolate(pad_mask.astype("float32").unsqueeze(1), size=[height, width]).squeeze(1)
            ratios.append(paddle.stack([mask[:, 0, :].sum(1) / width, mask[:, :, 0].sum(1) / height], -1))
            position = mask_position_embedding(mask, self.hidden_dim // 2).flatten(2).transpose([0, 2, 1])
            positions.append(position + self.level_embed.weight[level])
            tokens.append(feature.flatten(2).transpose([0, 2, 1]))
            masks.append(mask.flatten(1))
            shapes.append((height, width))
        return (paddle.concat(tokens, 1), paddle.concat(positions, 1), paddle.concat(masks, 1),
                paddle.stack(ratios, 1), shapes)

    # ---- two-stage query selection ----------------------------------------------------------------------
    def anchors(self, spatial_shapes, memory_mask):
        """Logit-space anchors at every level position ([B, sum(HW), 4]) and which of them are valid."""
        anchors, start = [], 0
        for level, (height, width) in enumerate(spatial_shapes):
            ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
            grid = paddle.to_tensor(np.stack([xs, ys], -1).astype("float32")).unsqueeze(0)  # 1, H, W, 2
            level_mask = memory_mask[:, start:start + height * width].reshape([-1, height, width])
            valid_wh = paddle.stack([level_mask[:, 0, :].sum(1), level_mask[:, :, 0].sum(1)], -1)
            grid = (grid + 0.5) / valid_wh.reshape([-1, 1, 1, 2])
            wh = paddle.ones_like(grid) * self.anchor_size * (2.0 ** level)
            anchors.append(paddle.concat([grid, wh], -1).reshape([-1, height * width, 4]))
            start += height * width
        anchors = paddle.concat(anchors, 1)
        valid = ((anchors > self.eps) & (anchors < 1 - self.eps)).all(-1, keepdim=True)
        valid = valid & (memory_mask.unsqueeze(-1) > 0)
        anchors = paddle.log(anchors / (1 - anchors))
        return paddle.where(valid, anchors, paddle.full([], float("inf"))), valid

    def select_queries(self, memory, spatial_shapes, memory_mask):
        anchors, valid = self.anchors(spatial_shapes, memory_mask)
        memory = paddle.where(valid, memory, paddle.zeros([], memory.dtype))
        output_memory = self.enc_output(memory)
        logits = self.enc_score_head(output_memory)
        boxes_unact = self.enc_bbox_head(output_memory) + anchors
        top = paddle.topk(logits.max(-1), self.num_queries, axis=1)[1]  # B, Q
        top_boxes_unact = paddle.take_along_axis(boxes_unact, top.unsqueeze(-1).tile([1, 1, 4]), axis=1)
        top_logits = paddle.take_along_axis(logits, top.unsqueeze(-1).tile([1, 1, self.num_classes]), axis=1)
        return top_boxes_unact, top_logits

    # ---- contrastive denoising --------------------------------------------------------------------------
    def denoising_queries(self, gt_boxes, gt_classes):
        """Noised positive/negative copies of the ground truth as extra queries, or None when there is no GT.

        Returns (class embeddings [B, D, C], unactivated boxes [B, D, 4], attention mask [D+Q, D+Q] (True = may
        attend), dn_meta {positive_index: per-image arrays, num_groups, split: [D, Q]}).
        """
        counts = [int(boxes.shape[0]) for boxes in gt_boxes]
        max_gt = max(counts) if counts else 0
        if self.num_denoising <= 0 or max_gt == 0:
            return None
        groups = max(1, self.num_denoising // max_gt)
        batch = len(counts)
        labels = np.full([batch, max_gt], self.num_classes, dtype=np.int64)
        boxes = np.zeros([batch, max_gt, 4], dtype=np.float32)
        real = np.zeros([batch, max_gt], dtype=np.float32)
        for image, count in enumerate(counts):
            if count:
                labels[image, :count] = gt_classes[image].numpy().reshape([-1])
                boxes[image, :count] = gt_boxes[image].numpy()
                real[image, :count] = 1
        labels, boxes, real = np.tile(labels, [1, 2 * groups]), np.tile(boxes, [1, 2 * groups, 1]), \
            np.tile(real, [1, 2 * groups])
        negative = np.tile(np.concatenate([np.zeros([max_gt, 1]), np.ones([max_gt, 1])]), [groups, 1])[None]
        negative = negative.astype(np.float32)  # 1, D, 1
        positive_index = [np.nonzero((1 - negative[0, :, 0]) * real[image])[0] for image in range(batch)]
        num_dn = 2 * groups * max_gt
        labels = paddle.to_tensor(labels)
        boxes = paddle.to_tensor(boxes)
        real_t = paddle.to_tensor(real)
        if self.label_noise_ratio > 0:
            flip = (paddle.rand(labels.shape) < self.label_noise_ratio * 0.5).astype("float32") * real_t
            random_labels = paddle.randint(0, self.num_classes, labels.shape, dtype="int64")
            labels = paddle.where(flip > 0, random_labels, labels)
        if self.box_noise_scale > 0:
            corners = cxcywh_to_xyxy(boxes)
            half_wh = paddle.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * self.box_noise_scale
            sign = paddle.randint(0, 2, boxes.shape).astype("float32") * 2.0 - 1.0
            magnitude = paddle.rand(boxes.shape)
            negative_t = paddle.to_tensor(negative)
            magnitude = (magnitude + 1.0) * negative_t + magnitude * (1 - negative_t)
            corners = (corners + magnitude * sign * half_wh).clip(0.0, 1.0)
            boxes = inverse_sigmoid(xyxy_to_cxcywh(corners))
        else:
            boxes = inverse_sigmoid(boxes)
        table = paddle.concat([self.denoising_class_embed.weight, paddle.zeros([1, self.hidden_dim])])
        queries = paddle.gather(table, labels.flatten()).reshape([batch, num_dn, self.hidden_dim])
        size = num_dn + self.num_queries
        blocked = np.zeros([size, size], dtype=bool)
        blocked[num_dn:, :num_dn] = True  # matching queries cannot see the denoising ones
        for group in range(groups):  # denoising groups cannot see each other
            rows = slice(2 * max_gt * group, 2 * max_gt * (group + 1))
            blocked[rows, 2 * max_gt * (group + 1):num_dn] = True
            blocked[rows, :2 * max_gt * group] = True
        meta = {"positive_index": positive_index, "num_groups": groups, "split": [num_dn, self.num_queries]}
        return queries, boxes, paddle.to_tensor(~blocked), meta

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, features, pad_mask=None, gt_boxes=None, gt_classes=None):
        src, pos, memory_mask, valid_ratios, shapes = self.flatten_levels(features, pad_mask)
        memory = self.encoder(src, pos, shapes, memory_mask, valid_ratios)
        denoising = None
        if self.training and gt_boxes is not None:
            denoising = self.denoising_queries(gt_boxes, gt_classes)
        enc_boxes_unact, enc_logits = self.select_queries(memory, shapes, memory_mask)
        batch = memory.shape[0]
        reference_unact = enc_boxes_unact
        target = self.tgt_embed.weight.unsqueeze(0).tile([batch, 1, 1])
        attn_mask = dn_meta = None
        if denoising is None and self.training:  # keep the denoising embedding in the graph (zero gradient)
            target = target + 0.0 * self.denoising_class_embed.weight.sum()
        if denoising is not None:
            dn_queries, dn_boxes, attn_mask, dn_meta = denoising
            reference_unact = paddle.concat([dn_boxes, reference_unact], 1)
            target = paddle.concat([dn_queries, target], 1)
        reference_unact = reference_unact.detach()
        boxes, logits = self.decode(target, reference_unact, memory, shapes, memory_mask, valid_ratios, attn_mask)
        return {"boxes": boxes, "logits": logits, "enc_boxes": F.sigmoid(enc_boxes_unact), "enc_logits": enc_logits,
                "dn_meta": dn_meta}

    def decode(self, target, reference_unact, memory, shapes, memory_mask, valid_ratios, attn_mask):
        """Decoder with iterative refinement. Each layer's reference is refined from the un-normalised output and
        detached before the next layer; the reported boxes of layer i add the normalised output's offsets to layer
        i-1's refined (not detached) reference, so layer i's box loss also trains layer i-1's box head."""
        output = target
        initial_reference = reference_unact
        ratios4 = valid_ratios.tile([1, 1, 2]).unsqueeze(1)  # B, 1, levels, 4
        refined = []
        normalised = []
        for index, layer in enumerate(self.decoder.layers):
            reference_input = F.sigmoid(reference_unact).unsqueeze(2) * ratios4  # B, Q, levels, 4
            query_pos = self.query_pos_head(sine_embedding(reference_input[:, :, 0, :], self.hidden_dim // 2))
            output = layer(output, query_pos, reference_input, memory, shapes, memory_mask, attn_mask)
            new_reference = self.dec_bbox_head[index](output) + reference_unact
            normalised.append(self.decoder.norm(output))
            refined.append(new_reference)
            reference_unact = new_reference.detach()
        boxes, logits = [], []
        for index, out in enumerate(normalised):
            logits.append(self.dec_score_head[index](out))
            base = initial_reference if index == 0 else refined[index - 1]
            boxes.append(F.sigmoid(self.dec_bbox_head[index](out) + base))
        return paddle.stack(boxes), paddle.stack(logits)


__all__ = ["DINOTransformer", "MLP", "MultiHeadAttention", "mask_position_embedding", "sine_embedding"]
