"""The traffic model's ViT-B: windowed and global blocks with decomposed relative position, no class token, no
absolute position embedding, and a simple feature pyramid (strides 8/16/32/64) for the detection and classification
heads. Blocks keep tokens as [B, H, W, C] grids so the windowed blocks can cut windows; the block outputs handed to
the segmentation head are [B, H*W, C] tokens before the final LayerNorm.

The layers subclass allinone's Attention and Block (same parameter names: qkv, proj, norm1, mlp.fc1, ...), so the
baseline's checkpoint keys come out unchanged (docs/traffic.md, "Model").
"""
import functools

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant

from allinone.modeling.vision_transformer import LAYER_NORM_EPS, Attention, Block, init_linear_and_norm
from allinone.registry import BACKBONES


def relative_position_table(table, q_size, k_size):
    """Rows of a [2S-1, d] relative-position table for every (query, key) coordinate pair: [q_size, k_size, d].

    A table built for another size is first resized (1-D linear, align_corners False) to 2*max(q, k) - 1 rows.
    """
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        resized = F.interpolate(table.transpose([1, 0]).unsqueeze(0), size=[length], mode="linear",
                                align_corners=False, data_format="NCW")  # 1, d, length
        table = resized.squeeze(0).transpose([1, 0])
    q_coords = np.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = np.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    index = (q_coords - k_coords + (k_size - 1) * max(q_size / k_size, 1.0)).astype("int64")
    return paddle.gather(table, paddle.to_tensor(index.reshape([-1]))).reshape([q_size, k_size, -1])


class RelPosAttention(Attention):
    """Self-attention over a [B, H, W, C] grid with decomposed relative position (separate row and column tables).

    As in the baseline, q is multiplied by the scale before both q.k and the relative terms (weights depend on it).
    `table_size` is the grid side the tables are built for (window side, or the global grid of `img_size`).
    """

    def __init__(self, dim, num_heads, head_dim=None, qkv_bias=True, qk_scale=None, attn_drop=0.0, proj_drop=0.0,
                 fused=False, *, table_size):
        super().__init__(dim, num_heads, head_dim, qkv_bias, qk_scale, attn_drop, proj_drop, fused=False)
        self.rel_pos_h = self.create_parameter([2 * table_size - 1, self.head_dim], default_initializer=Constant(0.0))
        self.rel_pos_w = self.create_parameter([2 * table_size - 1, self.head_dim], default_initializer=Constant(0.0))

    def forward(self, x, segments=None):
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape([batch, tokens, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv.unbind(axis=0)  # B, heads, N, head_dim each
        q = q * self.scale
        attn = paddle.matmul(q, k, transpose_y=True)  # B, heads, N, N
        attn = attn + self.relative_bias(q, height, width)
        attn = F.softmax(attn, axis=-1)
        out = paddle.matmul(self.attn_drop(attn), v).transpose([0, 2, 1, 3])
        return self.proj_drop(self.proj(out.reshape([batch, height, width, self.inner_dim])))

    def relative_bias(self, q, height, width):
        """q.R_h[i_q, i_k] + q.R_w[j_q, j_k] as a [B, heads, N, N] additive bias."""
        batch_heads = q.shape[0] * q.shape[1]
        table_h = relative_position_table(self.rel_pos_h, height, height)  # H, H, d
        table_w = relative_position_table(self.rel_pos_w, width, width)  # W, W, d
        grid_q = q.reshape([batch_heads, height, width, self.head_dim])
        rel_h = paddle.einsum("bhwc,hkc->bhwk", grid_q, table_h)  # BH, H, W, H_k
        rel_w = paddle.einsum("bhwc,wkc->bhwk", grid_q, table_w)  # BH, H, W, W_k
        bias = rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)  # BH, H, W, H_k, W_k
        return bias.reshape([q.shape[0], q.shape[1], height * width, height * width])


class GridBlock(Block):
    """A pre-norm block on a [B, H, W, C] grid; `window_size` > 0 runs attention inside non-overlapping windows
    (grid zero-padded bottom/right to a multiple of the window, padded tokens unmasked, output cropped back)."""

    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, drop_path, window_size, table_size):
        super().__init__(dim, num_heads, None, int(dim * mlp_ratio), qkv_bias, drop_path=drop_path,
                         attn_layer=functools.partial(RelPosAttention, table_size=table_size))
        self.window_size = window_size

    def forward(self, x, segments=None):
        shortcut = x
        x = self.norm1(x)
        if self.window_size:
            height, width = x.shape[1], x.shape[2]
            windows, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows, segments), self.window_size, padded, (height, width))
        else:
            x = self.attn(x, segments)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x), segments))

    def extra_repr(self):
        return f"window_size={self.window_size}"


def window_partition(x, size):
    """[B, H, W, C] -> ([B * nh * nw, size, size, C], (Hp, Wp)) after zero-padding H, W up to multiples of size."""
    batch, height, width, dim = x.shape
    pad_h, pad_w = (-height) % size, (-width) % size
    if pad_h or pad_w:
        x = F.pad(x, [0, 0, 0, pad_h, 0, pad_w, 0, 0])
    hp, wp = height + pad_h, width + pad_w
    x = x.reshape([batch, hp // size, size, wp // size, size, dim]).transpose([0, 1, 3, 2, 4, 5])
    return x.reshape([-1, size, size, dim]), (hp, wp)


def window_unpartition(windows, size, padded, original):
    """Inverse of window_partition: windows back to [B, H, W, C], padding cropped."""
    hp, wp = padded
    dim = windows.shape[-1]
    x = windows.reshape([-1, hp // size, wp // size, size, size, dim]).transpose([0, 1, 3, 2, 4, 5])
    x = x.reshape([-1, hp, wp, dim])
    return x[:, :original[0], :original[1]]


class ChannelLayerNorm(nn.Layer):
    """LayerNorm over the channels of an NCHW map (the pyramid's stride-4 branch)."""

    def __init__(self, dim):
        super().__init__()
        self.ln = nn.LayerNorm(dim, epsilon=1e-6)

    def forward(self, x):
        return self.ln(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


@BACKBONES.register()
class WindowedViT(nn.Layer):
    """ViT-B of the traffic baseline. `forward(images) -> (pyramid, block_outputs)`:
    pyramid = (P8, P16, P32, P64) NCHW maps of `embed_dim` channels; block_outputs = every block's [B, N, C] tokens.

    Blocks whose (index + 1) is a multiple of `global_every` attend globally (tables sized for img_size /
    patch_size, resized to the actual grid); the others attend in `window_size` windows. `fpn1` (stride 4) is built
    for checkpoint compatibility but not used, as in the baseline.
    """

    def __init__(self, img_size=896, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0, window_size=14, global_every=3):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.patch_embed = nn.Layer()
        self.patch_embed.proj = nn.Conv2D(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        global_side = img_size // patch_size
        rates = np.linspace(0, drop_path_rate, depth)
        self.blocks = nn.LayerList()
        for index in range(depth):
            is_global = (index + 1) % global_every == 0
            self.blocks.append(GridBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, float(rates[index]),
                                         window_size=0 if is_global else window_size,
                                         table_size=global_side if is_global else window_size))
        self.norm = nn.LayerNorm(embed_dim, epsilon=LAYER_NORM_EPS)
        self.fpn1 = nn.Sequential(nn.Conv2DTranspose(embed_dim, embed_dim, 2, stride=2), ChannelLayerNorm(embed_dim),
                                  nn.GELU(), nn.Conv2DTranspose(embed_dim, embed_dim, 2, stride=2))
        self.fpn2 = nn.Sequential(nn.Conv2DTranspose(embed_dim, embed_dim, 2, stride=2))
        self.fpn4 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.extra = nn.MaxPool2D(kernel_size=1, stride=2)
        self.init_weights()

    def init_weights(self):
        init_linear_and_norm(self)

    def forward(self, images, segments=None):
        x = self.patch_embed.proj(images).transpose([0, 2, 3, 1])  # B, gh, gw, C
        batch, grid_h, grid_w, dim = x.shape
        block_outputs = []
        for block in self.blocks:
            x = block(x, segments)
            block_outputs.append(x.reshape([batch, grid_h * grid_w, dim]))
        stride16 = self.norm(x).transpose([0, 3, 1, 2])  # B, C, gh, gw
        stride32 = self.fpn4(stride16)
        pyramid = (self.fpn2(stride16), stride16, stride32, self.extra(stride32))
        return pyramid, block_outputs


__all__ = ["GridBlock", "RelPosAttention", "WindowedViT", "relative_position_table", "window_partition",
           "window_unpartition"]
