"""Multi-scale deformable attention (Deformable DETR), in plain Paddle: every query reads a few bilinearly sampled
points per head and level around its reference point and mixes them with softmax weights.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Assign, Constant, XavierUniform


def deformable_sampling(value, spatial_shapes, locations, weights):
    """The core of deformable attention.

    value: [B, sum(H*W), heads, d] (levels concatenated, row-major); spatial_shapes: list of (H, W);
    locations: [B, Lq, heads, levels, points, 2] as (x, y) in [0, 1] (pixel centres at (i + 0.5) / size);
    weights: [B, Lq, heads, levels, points]. Bilinear sampling with zero padding outside the map.
    Returns [B, Lq, heads * d].
    """
    batch, _, heads, head_dim = value.shape
    num_queries, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    sizes = [int(h) * int(w) for h, w in spatial_shapes]
    grids = 2 * locations - 1  # grid_sample's [-1, 1]
    sampled = []
    for level, (value_l, (height, width)) in enumerate(zip(value.split(sizes, axis=1), spatial_shapes)):
        value_l = value_l.transpose([0, 2, 3, 1]).reshape([batch * heads, head_dim, int(height), int(width)])
        grid_l = grids[:, :, :, level].transpose([0, 2, 1, 3, 4]).reshape([batch * heads, num_queries, points, 2])
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # B*heads, d, Lq, points
    sampled = paddle.stack(sampled, axis=-2).flatten(-2)  # B*heads, d, Lq, levels*points
    weights = weights.transpose([0, 2, 1, 3, 4]).reshape([batch * heads, 1, num_queries, levels * points])
    out = (sampled * weights).sum(-1).reshape([batch, heads * head_dim, num_queries])
    return out.transpose([0, 2, 1])


class MSDeformableAttention(nn.Layer):
    """Deformable attention over `num_levels` maps. Reference points are (x, y) points or (cx, cy, w, h) boxes;
    for boxes the offsets are scaled by half the box size over the number of points."""

    def __init__(self, embed_dim=256, num_heads=8, num_levels=4, num_points=4):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(f"deformable attention: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self):
        """Offsets start as `num_heads` unit directions (scaled by the point index), attention uniform."""
        Constant(0.0)(self.sampling_offsets.weight)
        angles = paddle.arange(self.num_heads, dtype="float32") * (2.0 * math.pi / self.num_heads)
        directions = paddle.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True)
        bias = directions.reshape([self.num_heads, 1, 1, 2]).tile([1, self.num_levels, self.num_points, 1])
        bias = bias * paddle.arange(1, self.num_points + 1, dtype="float32").reshape([1, 1, -1, 1])
        Assign(bias.flatten())(self.sampling_offsets.bias)
        Constant(0.0)(self.attention_weights.weight)
        Constant(0.0)(self.attention_weights.bias)
        XavierUniform()(self.value_proj.weight)
        Constant(0.0)(self.value_proj.bias)
        XavierUniform()(self.output_proj.weight)
        Constant(0.0)(self.output_proj.bias)

    def forward(self, query, reference_points, value, spatial_shapes, value_mask=None):
        """query [B, Lq, C]; reference_points [B, Lq, levels, 2 or 4]; value [B, Lv, C]; value_mask [B, Lv]
        (1 = real pixel) or None. Returns [B, Lq, C]."""
        batch, num_queries = query.shape[:2]
        value = self.value_proj(value)
        if value_mask is not None:
            value = value * value_mask.astype(value.dtype).unsqueeze(-1)
        value = value.reshape([batch, value.shape[1], self.num_heads, self.head_dim])
        shape = [batch, num_queries, self.num_heads, self.num_levels, self.num_points]
        offsets = self.sampling_offsets(query).reshape(shape + [2])
        weights = F.softmax(self.attention_weights(query).reshape(shape[:3] + [-1]), axis=-1).reshape(shape)
        if reference_points.shape[-1] == 2:
            normaliser = paddle.to_tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype)  # levels, (W, H)
            locations = (reference_points.reshape([batch, num_queries, 1, self.num_levels, 1, 2])
                         + offsets / normaliser.reshape([1, 1, 1, self.num_levels, 1, 2]))
        elif reference_points.shape[-1] == 4:
            centre = reference_points[..., :2].reshape([batch, num_queries, 1, self.num_levels, 1, 2])
            size = reference_points[..., 2:].reshape([batch, num_queries, 1, self.num_levels, 1, 2])
            locations = centre + offsets / self.num_points * size * 0.5
        else:
            raise ValueError(f"reference_points must end in 2 (x, y) or 4 (cx, cy, w, h), got "
                             f"{list(reference_points.shape)}")
        return self.output_proj(deformable_sampling(value, spatial_shapes, locations, weights))


__all__ = ["MSDeformableAttention", "deformable_sampling"]
