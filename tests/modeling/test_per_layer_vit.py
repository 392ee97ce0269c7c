"""A per-layer ViT (heads and MLP ratio per block, head_dim free of embed_dim / num_heads): it builds with the
widths asked for, reloads its own checkpoint strictly, and its tokens equal an independent numpy forward."""
import math

import numpy as np
import paddle
import pytest

from allinone import load_checkpoint
from allinone.modeling.vision_transformer import VisionTransformer

# heads x head_dim = 2*12, 3*12, 4*12 = 24, 36, 48: none equals embed_dim 32
ARCH = dict(img_size=[32, 40], patch_size=16, stride_size=12, embed_dim=32, depth=3, num_heads=[2, 3, 4],
            head_dim=12, mlp_ratio=[1.0, 2.5, 0.5], qkv_bias=True, qk_scale=None)


def per_layer_vit(seed):
    paddle.seed(seed)
    vit = VisionTransformer(**ARCH)
    rng = np.random.RandomState(seed)
    for name, tensor in vit.state_dict().items():  # no unit LayerNorms or zero biases: every term shows
        if "norm" in name or name.endswith("bias"):
            tensor.set_value(rng.uniform(0.5, 1.5, tensor.shape).astype("float32") * (1 if "weight" in name else 0.2))
    vit.eval()
    return vit


def layer_norm(x, weight, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * weight + bias


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_forward(state, images, patch, stride, num_heads, head_dim):
    """Tokens [B, 1 + gh * gw, D] from the state dict (Linear weights stored [in, out], conv [D, C, p, p])."""
    w = {key: value.numpy().astype("float64") for key, value in state.items()}
    batch, _, height, width = images.shape
    gh, gw = (height - patch) // stride + 1, (width - patch) // stride + 1
    patches = np.stack([images[:, :, y * stride:y * stride + patch, x * stride:x * stride + patch]
                        for y in range(gh) for x in range(gw)], axis=1)  # B, gh*gw, C, p, p (row-major)
    x = np.einsum("bncij,dcij->bnd", patches, w["patch_embed.proj.weight"]) + w["patch_embed.proj.bias"]
    x = np.concatenate([np.repeat(w["cls_token"], batch, axis=0), x], axis=1) + w["pos_embed"]
    for i, heads in enumerate(num_heads):
        p = f"blocks.{i}."
        h = layer_norm(x, w[p + "norm1.weight"], w[p + "norm1.bias"])
        qkv = (h @ w[p + "attn.qkv.weight"] + w[p + "attn.qkv.bias"]).reshape(batch, -1, 3, heads, head_dim)
        q, k, v = (qkv[:, :, j].transpose(0, 2, 1, 3) for j in range(3))  # B, heads, N, head_dim
        attention = softmax(q @ k.transpose(0, 1, 3, 2) * head_dim ** -0.5) @ v
        x = x + attention.transpose(0, 2, 1, 3).reshape(batch, -1, heads * head_dim) @ w[p + "attn.proj.weight"] \
            + w[p + "attn.proj.bias"]
        h = layer_norm(x, w[p + "norm2.weight"], w[p + "norm2.bias"])
        x = x + gelu(h @ w[p + "mlp.fc1.weight"] + w[p + "mlp.fc1.bias"]) @ w[p + "mlp.fc2.weight"] \
            + w[p + "mlp.fc2.bias"]
    return layer_norm(x, w["norm.weight"], w["norm.bias"])


def test_layers_have_the_per_layer_widths():
    vit = per_layer_vit(0)
    assert [block.attn.qkv.weight.shape for block in vit.blocks] == [[32, 72], [32, 108], [32, 144]]
    assert [block.attn.proj.weight.shape for block in vit.blocks] == [[24, 32], [36, 32], [48, 32]]
    assert [block.mlp.fc1.weight.shape for block in vit.blocks] == [[32, 32], [32, 80], [32, 16]]
    assert all(block.attn.scale == pytest.approx(12 ** -0.5) for block in vit.blocks)
    assert vit.grid_size == (2, 3) and vit.pos_embed.shape == [1, 7, 32]


def test_a_per_layer_list_of_the_wrong_length_is_an_error_naming_it():
    with pytest.raises(ValueError, match="num_heads has 2 per-layer values but depth is 3"):
        VisionTransformer(**{**ARCH, "num_heads": [2, 3]})


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention", "plain_attention"])
def test_tokens_match_a_numpy_forward(fused):
    vit = per_layer_vit(1)
    for block in vit.blocks:
        block.attn.fused = fused
    images = np.random.RandomState(2).uniform(-1, 1, (2, 3, 32, 40)).astype("float32")
    with paddle.no_grad():
        tokens, grid = vit.forward_features(paddle.to_tensor(images))
    expected = numpy_forward(vit.state_dict(), images.astype("float64"), 16, 12, ARCH["num_heads"], 12)
    assert grid == (2, 3) and tokens.shape == list(expected.shape)
    np.testing.assert_array_less(np.abs(tokens.numpy() - expected).max(), 1e-5 * np.abs(expected).max())


def test_reloads_its_own_checkpoint_strictly_and_gives_the_same_tokens(tmp_path):
    saved = per_layer_vit(3)
    path = str(tmp_path / "per_layer.pdparams")
    paddle.save(saved.state_dict(), path)
    loaded = per_layer_vit(4)
    report = load_checkpoint(loaded, path, strict=True)
    assert report.ok and len(report.loaded) == len(saved.state_dict()) and not report.resampled
    x = paddle.to_tensor(np.random.RandomState(5).uniform(-1, 1, (2, 3, 32, 40)).astype("float32"))
    with paddle.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), saved(x).numpy())
