"""resample_pos_embed is bilinear interpolation of the patch grid with half-pixel centres (align_corners=False,
no antialiasing: the original's pretrained loader), cls position kept; load_checkpoint uses it for a checkpoint
of another grid and says so in its report."""
import numpy as np
import paddle
import pytest
from PIL import Image

from allinone import load_checkpoint
from allinone.modeling.vision_transformer import VisionTransformer, resample_pos_embed


def bilinear_half_pixel(grid, new_h, new_w):
    """numpy reference: output pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped to the edges."""
    def axis_weights(old, new):
        src = np.maximum((np.arange(new) + 0.5) * old / new - 0.5, 0.0)
        low = np.minimum(np.floor(src).astype(int), old - 1)
        high = np.minimum(low + 1, old - 1)
        matrix = np.zeros((new, old))
        matrix[np.arange(new), low] += 1.0 - (src - low)
        matrix[np.arange(new), high] += src - low
        return matrix

    rows, cols = axis_weights(grid.shape[0], new_h), axis_weights(grid.shape[1], new_w)
    return np.einsum("ij,jkd,lk->ild", rows, grid, cols)  # new_h, new_w, D


def random_pos_embed(grid, dim, seed=0):
    return np.random.RandomState(seed).normal(size=(1, 1 + grid[0] * grid[1], dim)).astype("float32")


@pytest.mark.parametrize("old_grid, new_grid", [((2, 3), (5, 4)), ((6, 6), (4, 3)), ((4, 4), (4, 4))],
                         ids=["upsample", "downsample", "same"])
def test_grid_part_is_bilinear_with_half_pixel_centres_and_cls_is_kept(old_grid, new_grid):
    pos_embed = random_pos_embed(old_grid, 8)
    out = resample_pos_embed(paddle.to_tensor(pos_embed), old_grid, new_grid).numpy()
    assert out.shape == (1, 1 + new_grid[0] * new_grid[1], 8)
    np.testing.assert_array_equal(out[0, 0], pos_embed[0, 0])
    expected = bilinear_half_pixel(pos_embed[0, 1:].reshape(*old_grid, 8).astype("float64"), *new_grid)
    np.testing.assert_allclose(out[0, 1:].reshape(*new_grid, 8), expected, rtol=1e-5, atol=1e-6)


def test_upsampling_equals_pil_bilinear_on_each_channel():
    """PIL's bilinear filter on float images (no antialiasing when enlarging): an independent implementation."""
    old_grid, new_grid = (3, 4), (7, 9)
    pos_embed = random_pos_embed(old_grid, 4, seed=1)
    out = resample_pos_embed(pos_embed, old_grid, new_grid).numpy()[0, 1:].reshape(*new_grid, 4)
    for channel in range(4):
        image = Image.fromarray(pos_embed[0, 1:, channel].reshape(old_grid), mode="F")
        expected = np.asarray(image.resize(new_grid[::-1], Image.BILINEAR))
        np.testing.assert_allclose(out[..., channel], expected, rtol=1e-5, atol=1e-5)


def test_a_pos_embed_that_does_not_fit_the_old_grid_is_an_error():
    with pytest.raises(ValueError, match=r"does not fit a 3x3 grid; expected \[1, 10, D\]"):
        resample_pos_embed(random_pos_embed((2, 2), 4), (3, 3), (4, 4))


def vit(img_size, seed):
    paddle.seed(seed)
    model = VisionTransformer(img_size=img_size, patch_size=16, stride_size=16, embed_dim=16, depth=1, num_heads=2,
                              mlp_ratio=2.0, qkv_bias=True, qk_scale=None)
    model.eval()
    return model


def test_load_checkpoint_resamples_a_checkpoint_of_another_grid_and_reports_it(tmp_path):
    small = vit(32, 0)  # 2x2 grid
    path = str(tmp_path / "small.pdparams")
    paddle.save(small.state_dict(), path)
    large = vit([48, 64], 1)  # 3x4 grid
    report = load_checkpoint(large, path, strict=True)
    assert report.ok and report.resampled == [("pos_embed", (2, 2), (3, 4))]
    assert "resampled pos_embed from a 2x2 to a 3x4 grid" in str(report)
    expected = resample_pos_embed(small.pos_embed, (2, 2), (3, 4)).numpy()
    np.testing.assert_array_equal(large.pos_embed.numpy(), expected)
    np.testing.assert_array_equal(large.blocks[0].attn.qkv.weight.numpy(), small.blocks[0].attn.qkv.weight.numpy())
