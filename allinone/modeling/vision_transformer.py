"""The AllInOne Vision Transformer: overlapping patch embedding, cls token, pre-norm blocks, all tokens out.

Read top to bottom: DropPath, Mlp, Attention, Block, PatchEmbedOverlap, VisionTransformer, resample_pos_embed.
Sizes are one table (`PRESETS`); a config names a preset and may override any of its fields. `num_heads` and
`mlp_ratio` may be one value or one value per layer; `head_dim` may differ from embed_dim / num_heads (the OneForAll
search space: 10-12 heads of 64 in a 768-wide model).

Every layer's forward takes `segments`: the task of each row block of a fused batch, a tuple of
`(task_name, num_rows)` pairs in row order (None: one unnamed task). The plain layers here ignore it; a task-MoE
subclass routes by it. Subclasses of Attention / Mlp / Block are injected through `attn_layer` / `mlp_layer` /
`block_layer` instead of copying these classes.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.distributed.fleet.utils import recompute
from paddle.nn.initializer import Constant, TruncatedNormal

from ..registry import BACKBONES
from .original_arguments import BACKBONE_ARGUMENTS, absorb_original_arguments

# The original's size table (its build_vit_backbone_lazy). `small` scales attention by embed_dim ** -0.5 instead of
# head_dim ** -0.5 (a legacy timm quirk kept for its checkpoints).
PRESETS = {
    "small": dict(embed_dim=768, depth=8, num_heads=8, mlp_ratio=3.0, qkv_bias=False, qk_scale=768 ** -0.5),
    "base": dict(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, qk_scale=None),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0, qkv_bias=True, qk_scale=None),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0, qkv_bias=True, qk_scale=None),
}
ARCH_FIELDS = tuple(PRESETS["base"])
LAYER_NORM_EPS = 1e-6


class DropPath(nn.Layer):
    """Stochastic depth: drop the whole residual branch of a sample with probability `rate` while training."""

    def __init__(self, rate=0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = paddle.floor(keep + paddle.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype))
        return x / keep * mask

    def extra_repr(self):
        return f"rate={self.rate:.4f}"


class Mlp(nn.Layer):
    """fc1 -> exact (erf) GELU -> fc2, dropout after each, as the original."""

    def __init__(self, dim, hidden_dim, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x, segments=None):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Layer):
    """Multi-head self-attention with `num_heads * head_dim` inner width (head_dim defaults to dim / num_heads).

    The qkv output columns are ordered q | k | v, each head-major (the checkpoint layout). `fused` uses paddle's
    scaled_dot_product_attention (same numbers to float32 rounding); otherwise the explicit softmax(q k^T * scale) v
    of the original.
    """

    def __init__(self, dim, num_heads, head_dim=None, qkv_bias=True, qk_scale=None, attn_drop=0.0, proj_drop=0.0,
                 fused=True):
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}; set head_dim")
            head_dim = dim // num_heads
        self.num_heads, self.head_dim = num_heads, head_dim
        self.inner_dim = num_heads * head_dim
        self.scale = qk_scale if qk_scale is not None else head_dim ** -0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * self.inner_dim, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(self.inner_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, segments=None):
        num_tokens = x.shape[1]
        qkv = self.qkv(x).reshape([-1, num_tokens, 3, self.num_heads, self.head_dim])  # B, N, 3, heads, head_dim
        if self.fused:
            q, k, v = qkv.unbind(axis=2)  # B, N, heads, head_dim each
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p, scale=self.scale,
                                               training=self.training)
        else:
            q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(axis=0)  # B, heads, N, head_dim each
            attn = F.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1)
            x = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])  # B, N, heads, head_dim
        return self.proj_drop(self.proj(x.reshape([-1, num_tokens, self.inner_dim])))


class Block(nn.Layer):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, dim, num_heads, head_dim, mlp_hidden, qkv_bias=True, qk_scale=None, drop=0.0, attn_drop=0.0,
                 drop_path=0.0, fused_attention=True, attn_layer=Attention, mlp_layer=Mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=LAYER_NORM_EPS)
        self.attn = attn_layer(dim, num_heads, head_dim, qkv_bias, qk_scale, attn_drop, drop, fused_attention)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, epsilon=LAYER_NORM_EPS)
        self.mlp = mlp_layer(dim, mlp_hidden, drop)

    def forward(self, x, segments=None):
        x = x + self.drop_path(self.attn(self.norm1(x), segments))
        return x + self.drop_path(self.mlp(self.norm2(x), segments))


class PatchEmbedOverlap(nn.Layer):
    """Image to tokens by a strided convolution; patches overlap when stride < patch size."""

    def __init__(self, img_size, patch_size, stride_size, in_chans, embed_dim):
        super().__init__()
        self.img_size = img_size
        # the convolution's geometry, kept for the code that re-creates or measures it (Paddle's Conv2D keeps it
        # only in private attributes)
        self.patch_size, self.stride_size, self.in_chans = int(patch_size), int(stride_size), int(in_chans)
        self.grid_size = tuple((size - patch_size) // stride_size + 1 for size in img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2D(in_chans, embed_dim, kernel_size=patch_size, stride=stride_size)

    def forward(self, x):
        if tuple(x.shape[2:]) != self.img_size:
            raise ValueError(f"input images are {list(x.shape[2:])} (H, W) but the ViT was built for img_size "
                             f"{list(self.img_size)}; resize the images or set Model.backbone.img_size")
        return self.proj(x).flatten(2).transpose([0, 2, 1])  # B, num_patches (row-major), embed_dim


@BACKBONES.register()
class VisionTransformer(nn.Layer):
    """ViT returning all tokens after the final LayerNorm, cls token first: [B, 1 + gh * gw, embed_dim].

    Architecture fields (embed_dim, depth, num_heads, mlp_ratio, qkv_bias, qk_scale) come from `preset`; explicit
    keyword arguments override it; without a preset all six must be given. `num_heads` / `mlp_ratio` are one value or
    a list of `depth` values. `head_dim` (default embed_dim // num_heads) sets the attention width
    num_heads * head_dim independently of embed_dim. `fused_attention` selects paddle's
    scaled_dot_product_attention; `use_recompute` re-runs blocks in the backward pass to save GPU memory. The
    original's constructor arguments that change nothing here are accepted with a warning (docs/model.md).
    """

    # Keys a config may give besides the named parameters (build_model checks config keys against these).
    EXTRA_CONFIG_KEYS = ARCH_FIELDS + tuple(BACKBONE_ARGUMENTS)

    def __init__(self, preset=None, img_size=384, patch_size=16, stride_size=16, in_chans=3, head_dim=None,
                 drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, fused_attention=True, use_recompute=False,
                 attn_layer=Attention, mlp_layer=Mlp, block_layer=Block, **arch):
        super().__init__()
        mapped = absorb_original_arguments(type(self).__name__, arch, BACKBONE_ARGUMENTS)
        arch = resolve_architecture(preset, arch)
        self.img_size = tuple(img_size) if isinstance(img_size, (list, tuple)) else (img_size, img_size)
        if len(self.img_size) != 2:
            raise ValueError(f"img_size must be an int or [H, W], got {img_size}")
        self.embed_dim, self.depth = arch["embed_dim"], arch["depth"]
        self.num_heads = per_layer("num_heads", arch["num_heads"], self.depth)
        self.mlp_ratio = per_layer("mlp_ratio", arch["mlp_ratio"], self.depth)
        self.head_dim = head_dim
        self.use_recompute = use_recompute or mapped.get("use_recompute", False)

        self.patch_embed = PatchEmbedOverlap(self.img_size, patch_size, stride_size, in_chans, self.embed_dim)
        self.cls_token = self.create_parameter([1, 1, self.embed_dim])
        self.pos_embed = self.create_parameter([1, self.patch_embed.num_patches + 1, self.embed_dim])
        self.pos_drop = nn.Dropout(drop_rate)
        drop_path_rates = np.linspace(0, drop_path_rate, self.depth)
        self.blocks = nn.LayerList([
            block_layer(self.embed_dim, heads, head_dim, int(self.embed_dim * ratio), arch["qkv_bias"],
                        arch["qk_scale"], drop_rate, attn_drop_rate, float(rate), fused_attention, attn_layer,
                        mlp_layer)
            for heads, ratio, rate in zip(self.num_heads, self.mlp_ratio, drop_path_rates)])
        self.norm = nn.LayerNorm(self.embed_dim, epsilon=LAYER_NORM_EPS)
        self.init_weights()

    @property
    def grid_size(self):
        """(gh, gw): the patch grid of an img_size input (the layout of pos_embed after the cls position)."""
        return self.patch_embed.grid_size

    def init_weights(self):
        """Training-from-scratch init of the original: truncated normal(.02) for tokens and Linear weights, zero
        biases, unit LayerNorm; the patch conv keeps paddle's default (the original's intended init was a no-op)."""
        trunc_normal = TruncatedNormal(std=0.02)
        trunc_normal(self.cls_token)
        trunc_normal(self.pos_embed)
        init_linear_and_norm(self, skip=self.layers_initialised_elsewhere())

    def layers_initialised_elsewhere(self):
        """Sublayers `init_weights` leaves as they are (a subclass that initialises some layers itself)."""
        return ()

    def embed_tokens(self, x, segments=None):
        """Images [B, 3, H, W] -> [B, 1 + gh * gw, D]: patch embedding, cls token first, plus pos_embed, dropout."""
        x = self.patch_embed(x)
        cls_tokens = self.cls_token.expand([x.shape[0], -1, -1])
        return self.pos_drop(paddle.concat([cls_tokens, x], axis=1) + self.pos_embed)

    def forward_features(self, x, segments=None):
        """(tokens [B, 1 + gh * gw, D] after the final LayerNorm, cls first; grid (gh, gw))."""
        check_segments(segments, x.shape[0])
        x = self.embed_tokens(x, segments)
        for block in self.blocks:
            x = recompute(block, x, segments) if self.use_recompute and self.training else block(x, segments)
        return self.norm(x), self.grid_size

    def forward(self, x, segments=None):
        return self.forward_features(x, segments)[0]


def per_layer(name, value, depth):
    """`value` as a tuple of `depth` values: one value repeated, or a list that must have `depth` entries."""
    if isinstance(value, (list, tuple)):
        if len(value) != depth:
            raise ValueError(f"{name} has {len(value)} per-layer values but depth is {depth}")
        return tuple(value)
    return (value,) * depth


def check_segments(segments, batch_size):
    """Segments must cover the batch's rows exactly (checked in dygraph; a static graph has a free batch size)."""
    if segments is None or not isinstance(batch_size, int) or batch_size < 0:
        return
    rows = sum(count for _, count in segments)
    if rows != batch_size:
        raise ValueError(f"segments {list(segments)} cover {rows} rows but the batch has {batch_size}")


def init_linear_and_norm(model, skip=()):
    """The ViT family's init of every sublayer: truncated normal(.02) Linear weights, zero biases, unit LayerNorm.
    The layers in `skip` and their sublayers keep their values (they are initialised elsewhere)."""
    trunc_normal, zeros, ones = TruncatedNormal(std=0.02), Constant(0.0), Constant(1.0)
    kept = {id(layer) for outer in skip for layer in outer.sublayers(include_self=True)}
    for layer in model.sublayers():
        if id(layer) in kept:
            continue
        if isinstance(layer, nn.Linear):
            trunc_normal(layer.weight)
            if layer.bias is not None:
                zeros(layer.bias)
        elif isinstance(layer, nn.LayerNorm):
            ones(layer.weight)
            zeros(layer.bias)


def resolve_architecture(preset, overrides):
    """The six architecture fields: the preset's values with explicit overrides on top."""
    unknown = sorted(set(overrides) - set(ARCH_FIELDS))
    if unknown:
        raise TypeError(f"VisionTransformer got unknown argument(s) {unknown}; architecture fields are "
                        f"{list(ARCH_FIELDS)}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown ViT preset '{preset}'; choose one of {sorted(PRESETS)}")
    arch = {**PRESETS.get(preset, {}), **overrides}
    missing = [field for field in ARCH_FIELDS if field not in arch]
    if missing:
        raise ValueError(f"VisionTransformer without a preset needs {missing} (or set preset: "
                         f"{'|'.join(PRESETS)})")
    return arch


def resample_pos_embed(pos_embed, old_grid, new_grid):
    """Position embeddings [1, 1 + oh * ow, D] of an (oh, ow) patch grid -> [1, 1 + nh * nw, D] for (nh, nw).

    The cls position is kept; the grid part is resized bilinearly with half-pixel centres and no antialiasing
    (align_corners=False, as the original's pretrained loader). Accepts a paddle Tensor or a numpy array.
    """
    pos_embed = pos_embed if isinstance(pos_embed, paddle.Tensor) else paddle.to_tensor(pos_embed)
    (old_h, old_w), (new_h, new_w) = old_grid, new_grid
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or pos_embed.shape[1] != 1 + old_h * old_w:
        raise ValueError(f"pos_embed of shape {list(pos_embed.shape)} does not fit a {old_h}x{old_w} grid; "
                         f"expected [1, {1 + old_h * old_w}, D]")
    dim = pos_embed.shape[2]
    grid = pos_embed[:, 1:].reshape([1, old_h, old_w, dim]).transpose([0, 3, 1, 2])  # 1, D, oh, ow
    grid = F.interpolate(grid.astype("float32"), size=[new_h, new_w], mode="bilinear", align_corners=False)
    grid = grid.transpose([0, 2, 3, 1]).reshape([1, new_h * new_w, dim]).astype(pos_embed.dtype)  # 1, nh*nw, D
    return paddle.concat([pos_embed[:, :1], grid], axis=1)
