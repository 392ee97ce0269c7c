"""The elastic ViT supernet: allinone's ViT whose sub-networks share the largest network's weights as prefixes.

A sub-network (`oneforall.search_space.Architecture`) chooses the depth (a prefix of the blocks), per layer the head
count (a prefix of the heads at a fixed head dim: q, k and v each keep their first h x head_dim columns) and the
FFN hidden width int(embed_dim x mlp_ratio) (a prefix of the neurons). The embedding width is not elastic (neither
in the original: patch embedding, tokens and LayerNorms are not sliced).

The layers subclass allinone's: the elastic linear layers slice their weights at every forward (no copies when
switching), so the inherited forward passes run unchanged and the state-dict keys are exactly the plain ViT's.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from allinone.modeling import config_keys
from allinone.modeling.vision_transformer import Attention, Block, Mlp, VisionTransformer
from allinone.registry import BACKBONES

from .arch_code import parse_arch_code
from .search_space import Architecture, SearchSpace


class SubnetError(ValueError):
    """A sub-network the supernet cannot run; the message names the layer and the field."""


class PrefixLinear(nn.Linear):
    """nn.Linear that uses the first `active_in` rows and `active_out` columns of its [in, out] weight."""

    def __init__(self, in_features, out_features, weight_attr=None, bias_attr=None):
        super().__init__(in_features, out_features, weight_attr=weight_attr, bias_attr=bias_attr)
        self.max_in, self.max_out = in_features, out_features
        self.active_in, self.active_out = in_features, out_features

    def set_active(self, in_features=None, out_features=None):
        self.active_in = self.max_in if in_features is None else in_features
        self.active_out = self.max_out if out_features is None else out_features

    @property
    def is_full(self):
        return self.active_in == self.max_in and self.active_out == self.max_out

    def active_weight(self):
        return self.weight if self.is_full else self.weight[:self.active_in, :self.active_out]

    def active_bias(self):
        if self.bias is None or self.active_out == self.max_out:
            return self.bias
        return self.bias[:self.active_out]

    def forward(self, x):
        return F.linear(x, self.active_weight(), self.active_bias())

    def extra_repr(self):
        return f"in={self.active_in}/{self.max_in}, out={self.active_out}/{self.max_out}"


class QkvPrefixLinear(PrefixLinear):
    """The fused q|k|v projection: `active_out` = 3 x width keeps the first `width` columns of each of the three
    blocks (so q, k and v each keep their first heads)."""

    def _columns(self, tensor):
        block, width = self.max_out // 3, self.active_out // 3
        return paddle.concat([tensor[..., i * block:i * block + width] for i in range(3)], axis=-1)

    def active_weight(self):
        if self.is_full:
            return self.weight
        return self._columns(self.weight[:self.active_in])

    def active_bias(self):
        if self.bias is None or self.active_out == self.max_out:
            return self.bias
        return self._columns(self.bias)


class ElasticMlp(Mlp):
    """Mlp whose hidden width is a prefix of its neurons (`set_hidden`)."""

    def __init__(self, dim, hidden_dim, drop=0.0):
        super().__init__(dim, hidden_dim, drop)
        # elastic versions of the plain layers, same shapes and names (the inherited forward runs unchanged)
        self.fc1 = PrefixLinear(dim, hidden_dim)
        self.fc2 = PrefixLinear(hidden_dim, dim)
        self.max_hidden = hidden_dim

    @property
    def hidden(self):
        return self.fc1.active_out

    def set_hidden(self, hidden):
        self.fc1.set_active(out_features=hidden)
        self.fc2.set_active(in_features=hidden)


class ElasticAttention(Attention):
    """Attention whose head count is a prefix of its heads at a fixed head dim (`set_heads`).

    The scale is `qk_scale` when given, else head_dim ** -0.5, exactly as in the plain ViT, so an extracted
    sub-network computes the same numbers (the original supernets ignored qk_scale: docs/oneforall.md).
    """

    def __init__(self, dim, num_heads, head_dim=None, qkv_bias=True, qk_scale=None, attn_drop=0.0, proj_drop=0.0,
                 fused=True):
        super().__init__(dim, num_heads, head_dim, qkv_bias, qk_scale, attn_drop, proj_drop, fused)
        self.max_heads = num_heads
        # elastic versions of the plain projections, same shapes and names (the inherited forward runs unchanged)
        self.qkv = QkvPrefixLinear(dim, 3 * self.inner_dim, bias_attr=None if qkv_bias else False)
        self.proj = PrefixLinear(self.inner_dim, dim)

    def set_heads(self, heads):
        self.num_heads = heads
        self.inner_dim = heads * self.head_dim
        self.qkv.set_active(out_features=3 * self.inner_dim)
        self.proj.set_active(in_features=self.inner_dim)


class ElasticBlock(Block):
    """A block that can be switched off (`active = False`) when the sub-network is shallower.

    A switched-off block is the identity in eval; in training it adds 0 x (sum of its parameters) so that every
    parameter stays in the autograd graph with a zero gradient (what distributed data parallel expects) without
    running the block, which the original did (x + 0 * block(x)) at the full cost of the block.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.active = True

    def forward(self, x, segments=None):
        if self.active:
            return super().forward(x, segments)
        if not self.training:
            return x
        trainable = [p.sum() for p in self.parameters() if not p.stop_gradient]
        return x + 0.0 * paddle.add_n(trainable) if trainable else x


@BACKBONES.register()
class ElasticVisionTransformer(VisionTransformer):
    """The elastic supernet (the original's `vision_transformer_super`): allinone's ViT with elastic layers.

    Constructor: the plain ViT's arguments (the maximal network; `num_heads` / `mlp_ratio` may be per-layer lists),
    plus `choices` (the sampling space: the original's dict {depth, num_heads, mlp_ratio, embed_dim, img_size};
    default: only the maximal network). `head_dim` defaults to embed_dim // max(num_heads) and stays fixed.
    It starts at the largest sub-network, so a forward works before any `set_subnet`.
    """

    # the plain ViT's constructor arguments, which reach it through **kwargs
    EXTRA_CONFIG_KEYS = tuple(sorted(config_keys(VisionTransformer)))

    def __init__(self, preset=None, head_dim=None, choices=None, **kwargs):
        kwargs.setdefault("attn_layer", ElasticAttention)
        kwargs.setdefault("mlp_layer", ElasticMlp)
        kwargs.setdefault("block_layer", ElasticBlock)
        super().__init__(preset=preset, head_dim=head_dim, **kwargs)
        self.head_dim = self.blocks[0].attn.head_dim
        if choices is None:
            choices = dict(depth=[self.depth], num_heads=[max(self.num_heads)], mlp_ratio=[max(self.mlp_ratio)],
                           embed_dim=[self.embed_dim])
        self.search_space = choices if isinstance(choices, SearchSpace) else SearchSpace.from_choices(choices)
        self.subnet = None
        self.set_subnet(self.largest_subnet())

    # -- sub-networks --------------------------------------------------------------------------------------
    def largest_subnet(self):
        """The whole supernet as an Architecture (every block, every head, every FFN neuron)."""
        return Architecture(self.depth, self.num_heads, self.mlp_ratio, (self.embed_dim,) * self.depth, space=None)

    def as_architecture(self, subnet):
        """An Architecture from an Architecture, the original's sub-config dict or a 37-character code."""
        if isinstance(subnet, Architecture):
            return subnet
        if isinstance(subnet, str):
            return parse_arch_code(subnet)
        if isinstance(subnet, dict):
            try:
                return Architecture.from_config(subnet, space=None)
            except ValueError as err:
                raise SubnetError(str(err)) from None
        raise SubnetError(f"a sub-network is an Architecture, a sub-config dict or an architecture code, got "
                          f"{type(subnet).__name__}")

    def check_subnet(self, arch):
        """Raise SubnetError naming the layer and field of the first value this supernet cannot run."""
        if arch.depth > self.depth:
            raise SubnetError(f"sub-network depth {arch.depth} exceeds the supernet's {self.depth} blocks")
        for layer in range(arch.depth):
            block = self.blocks[layer]
            embed, heads = arch.embed_dims[layer], arch.num_heads[layer]
            if embed != self.embed_dim:
                raise SubnetError(f"layer {layer}: embed_dim = {embed}, but the embedding width is fixed at "
                                  f"{self.embed_dim} (elastic embedding width is not supported)")
            if isinstance(heads, bool) or not isinstance(heads, int) or not 1 <= heads <= block.attn.max_heads:
                raise SubnetError(f"layer {layer}: num_heads = {heads!r}, expected an int in "
                                  f"1..{block.attn.max_heads} (the supernet's heads in block {layer})")
            self._check_ffn(arch, layer, block)

    def _check_ffn(self, arch, layer, block):
        self._check_hidden(layer, "mlp_ratio", arch.mlp_ratios[layer], block.mlp.max_hidden)

    def _check_hidden(self, layer, field, ratio, max_hidden):
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise SubnetError(f"layer {layer}: {field} = {ratio!r} is not a number")
        hidden = int(self.embed_dim * ratio)
        if not 1 <= hidden <= max_hidden:
            raise SubnetError(f"layer {layer}: {field} = {ratio} gives an FFN hidden width of int({self.embed_dim} "
                              f"x {ratio}) = {hidden}, expected 1..{max_hidden} (block {layer}'s largest)")
        return hidden

    def set_subnet(self, subnet):
        """Switch to a sub-network (checked first: a bad one raises SubnetError and changes nothing)."""
        arch = self.as_architecture(subnet)
        self.check_subnet(arch)
        for layer, block in enumerate(self.blocks):
            block.active = layer < arch.depth
            if block.active:
                self._configure_block(block, arch, layer)
        self.subnet = arch
        return arch

    def _configure_block(self, block, arch, layer):
        block.attn.set_heads(arch.num_heads[layer])
        block.mlp.set_hidden(int(self.embed_dim * arch.mlp_ratios[layer]))

    def sample_subnet(self, step):
        """The step's sub-network drawn from `search_space` (the original's per-step draw), switched to."""
        return self.set_subnet(self.search_space.sample(step))


__all__ = ["ElasticAttention", "ElasticBlock", "ElasticMlp", "ElasticVisionTransformer", "PrefixLinear",
           "QkvPrefixLinear", "SubnetError"]
