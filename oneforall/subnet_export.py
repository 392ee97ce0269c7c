"""A sub-network of the elastic supernet as an ordinary model: allinone's per-layer ViT with the sliced weights.

`subnet_state_dict` slices the supernet's weights exactly as its forward does (q, k, v each keep their first heads,
FFN neurons a prefix, blocks past the depth dropped), and `subnet_backbone_config` gives the `Model.backbone`
section that builds the matching plain ViT; the two together compute the supernet's sub-network bit for bit.
"""
import re

from .elastic import ElasticVisionTransformer, PrefixLinear

BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


def backbone_build_config(vit, patch_embed=None):
    """The plain-ViT constructor arguments that reproduce `vit`'s fixed parts (embedding, head dim, biases,
    attention scale, attention kernel); `patch_embed` for a model with one per task."""
    attn = vit.blocks[0].attn
    patch = patch_embed or vit.patch_embed
    default_scale = attn.head_dim ** -0.5
    return {
        "name": "VisionTransformer",
        "preset": None,
        "img_size": list(vit.img_size),
        "patch_size": patch.patch_size,
        "stride_size": patch.stride_size,
        "in_chans": patch.in_chans,
        "embed_dim": int(vit.embed_dim),
        "head_dim": int(attn.head_dim),
        "qkv_bias": attn.qkv.bias is not None,
        "qk_scale": None if attn.scale == default_scale else float(attn.scale),
        "fused_attention": bool(attn.fused),
    }


def subnet_backbone_config(supernet, arch=None):
    """`Model.backbone` of the plain ViT equal to sub-network `arch` (default: the supernet's current one)."""
    arch = supernet.subnet if arch is None else supernet.as_architecture(arch)
    supernet.check_subnet(arch)
    config = backbone_build_config(supernet)
    config.update(depth=arch.depth, num_heads=[int(h) for h in arch.num_heads],
                  mlp_ratio=[float(r) for r in arch.mlp_ratios])
    return config


def subnet_state_dict(supernet, arch=None):
    """{plain ViT key: tensor} of sub-network `arch` (default: the current one); the supernet's current
    sub-network is restored afterwards. Tensors are copies (safe to save or to load elsewhere)."""
    if not isinstance(supernet, ElasticVisionTransformer):
        raise TypeError(f"expected an ElasticVisionTransformer, got {type(supernet).__name__}")
    previous = supernet.subnet
    arch = supernet.set_subnet(arch) if arch is not None else previous
    try:
        layers = dict(supernet.named_sublayers())
        state = {}
        for key, value in supernet.state_dict().items():
            block = BLOCK_KEY.match(key)
            if block and int(block.group(1)) >= arch.depth:
                continue
            owner, field = key.rsplit(".", 1) if "." in key else ("", key)
            layer = layers.get(owner)
            if isinstance(layer, PrefixLinear):
                value = layer.active_weight() if field == "weight" else layer.active_bias()
            state[key] = value.clone()
        return state
    finally:
        supernet.set_subnet(previous)


__all__ = ["backbone_build_config", "subnet_backbone_config", "subnet_state_dict"]
