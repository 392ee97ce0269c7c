"""The ViT backbone: presets and overrides, patch grid, cls-token output, stochastic depth, attention variants."""
import numpy as np
import paddle
import pytest

from allinone.modeling.vision_transformer import PRESETS, DropPath, VisionTransformer

TINY_ARCH = dict(embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0, qkv_bias=True, qk_scale=None)


def lazy_vit(**kwargs):
    with paddle.LazyGuard():
        return VisionTransformer(**kwargs)


def test_presets_are_the_original_depth_table():
    assert PRESETS["large"] == dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0, qkv_bias=True,
                                    qk_scale=None)
    assert PRESETS["small"]["qk_scale"] == pytest.approx(768 ** -0.5)
    assert not PRESETS["small"]["qkv_bias"]


def test_preset_fills_the_architecture_and_explicit_keys_win():
    vit = lazy_vit(preset="small", img_size=32, depth=2, qk_scale=None)
    assert vit.embed_dim == 768 and len(vit.blocks) == 2
    attn = vit.blocks[0].attn
    assert attn.num_heads == 8 and attn.qkv.bias is None
    assert attn.scale == pytest.approx((768 // 8) ** -0.5)  # explicit null beats the preset's 768 ** -0.5
    assert vit.blocks[0].mlp.fc1.weight.shape == [768, 2304]


def test_small_preset_scales_attention_by_embed_dim():
    vit = lazy_vit(preset="small", img_size=32, depth=1)
    assert vit.blocks[0].attn.scale == pytest.approx(768 ** -0.5)


def test_without_a_preset_missing_architecture_fields_are_named():
    with pytest.raises(ValueError, match=r"\['num_heads'"):
        VisionTransformer(img_size=32, embed_dim=32, depth=1, mlp_ratio=2.0, qkv_bias=True, qk_scale=None)


def test_unknown_preset_and_unknown_argument_are_rejected():
    with pytest.raises(ValueError, match="unknown ViT preset 'gigantic'"):
        VisionTransformer(preset="gigantic")
    with pytest.raises(TypeError, match="sie_xishu_typo"):
        VisionTransformer(preset="base", sie_xishu_typo=3.0)


def test_int_img_size_means_a_square_image():
    vit = lazy_vit(img_size=32, **TINY_ARCH)
    assert vit.img_size == (32, 32) and vit.patch_embed.grid_size == (2, 2)
    assert vit.pos_embed.shape == [1, 5, 32]


def test_stride_below_patch_size_gives_an_overlapping_grid():
    vit = lazy_vit(img_size=[40, 64], patch_size=16, stride_size=12, **TINY_ARCH)
    assert vit.patch_embed.grid_size == (3, 5)  # (40 - 16) // 12 + 1, (64 - 16) // 12 + 1
    assert vit.pos_embed.shape == [1, 1 + 15, 32]


def test_output_is_every_final_norm_token_with_the_patch_grid():
    paddle.seed(0)
    vit = VisionTransformer(img_size=[32, 48], **TINY_ARCH)
    vit.eval()
    normed = []
    vit.norm.register_forward_post_hook(lambda layer, inputs, output: normed.append(output))
    x = paddle.randn([2, 3, 32, 48])
    tokens, grid = vit.forward_features(x)
    assert grid == (2, 3) and tokens.shape == [2, 1 + 6, 32]
    np.testing.assert_array_equal(tokens.numpy(), normed[0].numpy())
    np.testing.assert_array_equal(vit(x).numpy(), tokens.numpy())


def test_images_of_another_size_are_an_error_naming_both_sizes():
    vit = VisionTransformer(img_size=[32, 48], **TINY_ARCH)
    with pytest.raises(ValueError, match=r"\[32, 32\].*\[32, 48\]"):
        vit(paddle.zeros([1, 3, 32, 32]))


def test_drop_path_rates_rise_linearly_from_zero_over_the_blocks():
    vit = lazy_vit(img_size=32, drop_path_rate=0.2, **{**TINY_ARCH, "depth": 5})
    assert isinstance(vit.blocks[0].drop_path, paddle.nn.Identity)
    rates = [block.drop_path.rate for block in vit.blocks[1:]]
    np.testing.assert_allclose(rates, np.linspace(0, 0.2, 5)[1:])


def test_drop_path_drops_whole_samples_in_training_only():
    drop = DropPath(0.5)
    x = paddle.ones([64, 5, 8])
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    drop.train()
    per_sample = drop(x).numpy().reshape(64, -1)
    assert set(np.unique(per_sample)) == {0.0, 2.0}  # kept samples are rescaled by 1 / keep
    assert all(len(np.unique(row)) == 1 for row in per_sample)


def test_fused_and_plain_attention_give_the_same_features():
    paddle.seed(1)
    vit = VisionTransformer(img_size=32, **TINY_ARCH)
    vit.eval()
    x = paddle.randn([3, 3, 32, 32])
    fused = vit(x).numpy()
    for block in vit.blocks:
        block.attn.fused = False
    np.testing.assert_allclose(vit(x).numpy(), fused, rtol=1e-5, atol=1e-6)


def test_recompute_reruns_blocks_in_backward_with_the_same_gradients():
    paddle.seed(2)
    vit = VisionTransformer(img_size=32, **TINY_ARCH)
    vit.train()
    x = paddle.randn([2, 3, 32, 32])
    calls = []
    vit.blocks[0].register_forward_post_hook(lambda *args: calls.append(1))
    gradients = []
    for use_recompute in (False, True):
        vit.use_recompute = use_recompute
        vit.clear_gradients()
        calls.clear()
        vit(x).sum().backward()
        gradients.append([p.grad.numpy().copy() for p in vit.parameters()])
        assert len(calls) == (2 if use_recompute else 1)
    for plain, recomputed in zip(*gradients):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-6, atol=1e-7)


def test_init_is_truncated_normal_002_for_tokens_and_linear_weights_with_zero_biases():
    paddle.seed(3)
    vit = VisionTransformer(img_size=32, **{**TINY_ARCH, "embed_dim": 128, "depth": 1})
    block = vit.blocks[0]
    for weights in (block.attn.qkv.weight, block.mlp.fc1.weight, vit.pos_embed):
        assert abs(weights.numpy().std() - 0.02) < 0.002
    for bias in (block.attn.qkv.bias, block.attn.proj.bias, block.mlp.fc2.bias, block.norm1.bias):
        np.testing.assert_array_equal(bias.numpy(), 0.0)
    np.testing.assert_array_equal(vit.norm.weight.numpy(), 1.0)
