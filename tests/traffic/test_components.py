"""Numerical checks of the traffic model's building blocks against direct numpy/scipy references."""
import numpy as np
import paddle
import pytest
from scipy.optimize import linear_sum_assignment

from oneforall.traffic.backbone import RelPosAttention, window_partition, window_unpartition
from oneforall.traffic.deformable import deformable_sampling
from oneforall.traffic.losses import sigmoid_focal_loss, smoothed_cross_entropy
from oneforall.traffic.matcher import linear_assignment


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (7, 12), (12, 7), (30, 40), (3, 0)])
def test_linear_assignment_equals_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(5):
        cost = rng.normal(size=shape) * 10.0 ** rng.integers(-2, 3)
        if trial == 4:
            cost = np.round(cost)  # ties
        rows, cols = linear_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        assert len(rows) == len(ref_rows) == min(shape)
        assert np.array_equal(rows, np.sort(rows)) and len(set(cols)) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), rel=1e-9, abs=1e-9)


def test_linear_assignment_rejects_nan():
    with pytest.raises(ValueError, match="NaN or infinite"):
        linear_assignment(np.array([[1.0, np.nan]]))


def numpy_bilinear(image, x, y):
    """image [d, H, W]; (x, y) normalised in [0, 1] with pixel centres at (i + 0.5) / size; zeros outside."""
    d, height, width = image.shape
    px, py = x * width - 0.5, y * height - 0.5
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(d)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < height and 0 <= xx < width:
                out += image[:, yy, xx] * (1 - abs(px - xx)) * (1 - abs(py - yy))
    return out


def test_deformable_sampling_equals_direct_numpy_sampling():
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (3, 3), (2, 1)]
    batch, queries, heads, dim, points = 2, 3, 2, 4, 3
    value = rng.normal(size=[batch, sum(h * w for h, w in shapes), heads, dim]).astype("float32")
    locations = rng.uniform(-0.2, 1.2, size=[batch, queries, heads, len(shapes), points, 2]).astype("float32")
    weights = rng.uniform(size=[batch, queries, heads, len(shapes), points]).astype("float32")
    out = deformable_sampling(paddle.to_tensor(value), shapes, paddle.to_tensor(locations),
                              paddle.to_tensor(weights)).numpy()
    expected = np.zeros([batch, queries, heads, dim])
    starts = np.cumsum([0] + [h * w for h, w in shapes])
    for b in range(batch):
        for h in range(heads):
            for level, (height, width) in enumerate(shapes):
                image = value[b, starts[level]:starts[level + 1], h].T.reshape([dim, height, width])
                for q in range(queries):
                    for p in range(points):
                        x, y = locations[b, q, h, level, p]
                        expected[b, q, h] += weights[b, q, h, level, p] * numpy_bilinear(image, x, y)
    np.testing.assert_allclose(out, expected.reshape([batch, queries, heads * dim]), rtol=1e-5, atol=1e-5)


def test_sigmoid_focal_loss_equals_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=[3, 5, 4]).astype("float32") * 3
    targets = (rng.uniform(size=[3, 5, 4]) > 0.7).astype("float32")
    p = 1 / (1 + np.exp(-logits))
    ce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = 0.25 * targets + 0.75 * (1 - targets)
    expected = alpha_t * ce * (1 - p_t) ** 2
    out = sigmoid_focal_loss(paddle.to_tensor(logits), paddle.to_tensor(targets)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_smoothed_cross_entropy_equals_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=[4, 6]).astype("float32")
    labels = np.array([0, 5, 2, 2])
    target = np.full([4, 6], 0.1 / 5)
    target[np.arange(4), labels] = 0.9
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(target * log_softmax).sum() / 4
    out = float(smoothed_cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels)))
    assert out == pytest.approx(expected, rel=1e-5)


def test_rel_pos_attention_equals_numpy():
    paddle.seed(3)
    dim, heads, height, width = 8, 2, 3, 4
    attn = RelPosAttention(dim, heads, table_size=4)
    rng = np.random.default_rng(3)
    for table in (attn.rel_pos_h, attn.rel_pos_w):
        table.set_value(rng.normal(size=table.shape).astype("float32"))
    x = rng.normal(size=[1, height, width, dim]).astype("float32")
    out = attn(paddle.to_tensor(x)).numpy()
    w_qkv, b_qkv = attn.qkv.weight.numpy(), attn.qkv.bias.numpy()
    qkv = (x.reshape([-1, dim]) @ w_qkv + b_qkv).reshape([height * width, 3, heads, dim // heads])
    scale = (dim // heads) ** -0.5
    # the tables have 7 rows (side 4); the 3-row height resizes them to 5 rows by linear interpolation
    rows_h = np.array([np.interp((np.arange(5) + 0.5) * 7 / 5 - 0.5, np.arange(7), attn.rel_pos_h.numpy()[:, c])
                       for c in range(dim // heads)]).T
    rows_w = attn.rel_pos_w.numpy()
    coords = [(i, j) for i in range(height) for j in range(width)]
    outputs = []
    for h in range(heads):
        q, k, v = qkv[:, 0, h] * scale, qkv[:, 1, h], qkv[:, 2, h]
        logits = q @ k.T
        for a, (ia, ja) in enumerate(coords):
            for b, (ib, jb) in enumerate(coords):
                logits[a, b] += q[a] @ rows_h[ia - ib + height - 1] + q[a] @ rows_w[ja - jb + width - 1]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        outputs.append((probs / probs.sum(1, keepdims=True)) @ v)
    merged = np.concatenate(outputs, axis=1)
    expected = merged @ attn.proj.weight.numpy() + attn.proj.bias.numpy()
    np.testing.assert_allclose(out.reshape([-1, dim]), expected, rtol=1e-4, atol=1e-5)


def test_window_partition_round_trip_pads_and_crops():
    x = paddle.arange(2 * 5 * 7 * 3, dtype="float32").reshape([2, 5, 7, 3])
    windows, padded = window_partition(x, 3)
    assert padded == (6, 9) and windows.shape == [2 * 2 * 3, 3, 3, 3]
    np.testing.assert_array_equal(windows[1].numpy(), x[0, 0:3, 3:6].numpy())  # row-major window order
    assert float(windows[-1][-1].abs().sum()) == 0  # bottom-right padding is zeros
    assert paddle.equal_all(window_unpartition(windows, 3, padded, (5, 7)), x)


def test_joint_forward_backward_reaches_every_used_parameter(tiny_model):
    tiny_model.train()
    batch = {
        "segmentation": {"images": paddle.randn([2, 3, 48, 40]), "targets": paddle.randint(0, 5, [2, 48, 40])},
        "fgvc": {"images": paddle.randn([2, 3, 64, 64]), "targets": paddle.to_tensor([1, 3])},
        "trafficsign": {"images": paddle.randn([2, 3, 64, 56]), "pad_mask": paddle.ones([2, 64, 56]),
                        "gt_boxes": [paddle.to_tensor([[0.5, 0.5, 0.2, 0.3], [0.2, 0.3, 0.1, 0.1]]),
                                     paddle.to_tensor([[0.4, 0.6, 0.3, 0.3]])],
                        "gt_classes": [paddle.to_tensor([1, 2]), paddle.to_tensor([3])]},
    }
    out = tiny_model(batch)
    assert len(out["trafficsign"]["losses"]) == 12
    losses = [v for task in out.values() for v in task["losses"].values()]
    assert all(np.isfinite(float(v)) for v in losses)
    paddle.add_n(losses).backward()
    no_grad = [n for n, p in tiny_model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert no_grad and all(n.startswith("backbone.fpn1.") for n in no_grad)  # the unused stride-4 branch only


def test_setr_loss_averages_ce_over_valid_pixels_with_aux_weights():
    from oneforall.traffic.losses import setr_loss

    rng = np.random.default_rng(5)
    logits = [rng.normal(size=[2, 4, 3, 5]).astype("float32") for _ in range(3)]
    labels = rng.integers(0, 4, size=[2, 3, 5])
    labels[0, 0] = 255
    valid = labels != 255

    def ce(lg):
        log_p = lg - np.log(np.exp(lg).sum(1, keepdims=True))
        picked = np.take_along_axis(log_p, np.where(valid, labels, 0)[:, None], 1)[:, 0]
        return -(picked * valid).sum() / valid.sum()

    expected = ce(logits[0]) + 0.4 * ce(logits[1]) + 0.4 * ce(logits[2])
    out = setr_loss([paddle.to_tensor(lg) for lg in logits], paddle.to_tensor(labels), (1.0, 0.4, 0.4))
    assert float(out) == pytest.approx(expected, rel=1e-5)


def test_mask_position_embedding_of_a_padded_map():
    from oneforall.traffic.dino import mask_position_embedding

    mask = np.zeros([1, 3, 4], "float32")
    mask[0, :2, :3] = 1
    out = mask_position_embedding(paddle.to_tensor(mask), num_feats=4).numpy()[0]  # 8, 3, 4
    y = (np.cumsum(mask[0], 0) - 0.5) / (np.cumsum(mask[0], 0)[-1:] + 1e-6) * 2 * np.pi
    x = (np.cumsum(mask[0], 1) - 0.5) / (np.cumsum(mask[0], 1)[:, -1:] + 1e-6) * 2 * np.pi
    dim_t = 10000 ** (2 * (np.arange(4) // 2) / 4)

    def embed(v):
        e = v[..., None] / dim_t
        return np.stack([np.sin(e[..., 0::2]), np.cos(e[..., 1::2])], -1).reshape(3, 4, 4)

    expected = np.concatenate([embed(y), embed(x)], -1).transpose(2, 0, 1)
    valid = mask[0] > 0  # (a fully padded row divides by ~0: huge angles whose sine float32 cannot reproduce)
    np.testing.assert_allclose(out[:, valid], expected[:, valid], rtol=1e-5, atol=1e-5)
