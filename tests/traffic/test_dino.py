"""DINO pieces: the contrastive denoising groups and their attention mask, top-k post-processing, the 12 loss terms
and their normalisation."""
import numpy as np
import paddle

from oneforall.traffic.dino import DINOTransformer
from oneforall.traffic.heads import DetectionHead
from oneforall.traffic.losses import DINOLoss


def tiny_transformer(**kwargs):
    paddle.seed(0)
    args = dict(num_classes=4, hidden_dim=32, num_queries=6, in_channels=(16, 16), num_heads=4,
                num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=32, num_denoising=9)
    args.update(kwargs)
    return DINOTransformer(**args)


def test_denoising_groups_and_attention_mask():
    model = tiny_transformer()
    gt_boxes = [paddle.to_tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.2]]),
                paddle.to_tensor([[0.6, 0.4, 0.3, 0.3]])]
    gt_classes = [paddle.to_tensor([1, 3]), paddle.to_tensor([2])]
    queries, boxes, mask, meta = model.denoising_queries(gt_boxes, gt_classes)
    groups = 9 // 2  # max 2 GT per image
    assert meta["num_groups"] == groups and meta["split"] == [2 * 2 * groups, 6]
    assert queries.shape == [2, 16, 32] and boxes.shape == [2, 16, 4]
    # positives: the first max_gt slots of every group's 2 * max_gt block, real GT only
    assert meta["positive_index"][0].tolist() == [0, 1, 4, 5, 8, 9, 12, 13]
    assert meta["positive_index"][1].tolist() == [0, 4, 8, 12]
    m = mask.numpy()  # True = may attend
    assert not m[16:, :16].any() and m[16:, 16:].all()  # matching queries do not see denoising queries
    for g in range(groups):
        rows = slice(4 * g, 4 * g + 4)
        assert m[rows, 4 * g:4 * g + 4].all() and m[rows, 16:].all()
        assert m[rows, :16].sum() == 4 * 4  # nothing of the other groups
    padding_row = paddle.concat([model.denoising_class_embed.weight, paddle.zeros([1, 32])])[4]
    assert float(padding_row.abs().sum()) == 0 and np.allclose(queries[1, 1].numpy(), 0)  # padded slot
    assert model.denoising_queries([paddle.zeros([0, 4])], [paddle.zeros([0], "int64")]) is None


def test_postprocess_takes_top_k_query_class_pairs_in_original_pixels():
    head = DetectionHead(num_classes=3, num_top_queries=4, hidden_dim=32, num_queries=5, in_channels=(16,),
                         num_heads=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0.2, 0.6, size=[2, 5, 4]).astype("float32")
    logits = rng.normal(size=[2, 5, 3]).astype("float32")
    im_shape = np.array([[60, 80], [60, 80]], "float32")
    scale = np.array([[0.5, 0.5], [1.0, 2.0]], "float32")
    out = head.postprocess(paddle.to_tensor(boxes), paddle.to_tensor(logits), paddle.to_tensor(im_shape),
                           paddle.to_tensor(scale))
    rows = out["bbox"].numpy()
    for b in range(2):
        scores = 1 / (1 + np.exp(-logits[b].reshape(-1)))
        top = np.argsort(-scores)[:4]
        h, w = np.floor(im_shape[b] / scale[b] + 0.5)
        cx, cy, bw, bh = boxes[b, top // 3].T
        expected = np.stack([top % 3, scores[top], (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w,
                             (cy + bh / 2) * h], 1)
        np.testing.assert_allclose(rows[b], expected, rtol=1e-5, atol=1e-4)
    assert out["bbox_num"].numpy().tolist() == [4, 4]


def test_training_forward_gives_twelve_terms_normalised_by_gt_count():
    model = tiny_transformer()
    model.train()
    features = [paddle.randn([2, 16, 6, 5]), paddle.randn([2, 16, 3, 3])]
    gt_boxes = [paddle.to_tensor([[0.5, 0.5, 0.2, 0.2]]), paddle.to_tensor([[0.3, 0.4, 0.2, 0.3]])]
    gt_classes = [paddle.to_tensor([1]), paddle.to_tensor([2])]
    out = model(features, paddle.ones([2, 12, 10]), gt_boxes, gt_classes)
    assert out["boxes"].shape == [2, 2, 2 * 1 * 9 + 6, 4]
    loss = DINOLoss(num_classes=4)
    terms = loss(out, gt_boxes, gt_classes)
    assert sorted(terms) == sorted(f"loss_{t}{s}" for t in ("class", "bbox", "giou")
                                   for s in ("", "_aux", "_dn", "_aux_dn"))
    # every term is a sum divided by the number of GT boxes
    boxes, logits = out["boxes"][-1][:, 18:], out["logits"][-1][:, 18:]
    two = loss.layer_losses(boxes, logits, gt_boxes, gt_classes, 2.0, "")
    four = loss.layer_losses(boxes, logits, gt_boxes, gt_classes, 4.0, "")
    for key in two:
        assert float(two[key]) > 0 and np.isclose(float(two[key]), 2 * float(four[key]), rtol=1e-6)


def numpy_sample(image, x, y):
    """Bilinear sample of image [d, H, W] at normalised (x, y) (pixel centres at (i + 0.5) / size), zeros outside."""
    d, height, width = image.shape
    px, py = x * width - 0.5, y * height - 0.5
    out = np.zeros(d)
    for yy in (int(np.floor(py)), int(np.floor(py)) + 1):
        for xx in (int(np.floor(px)), int(np.floor(px)) + 1):
            if 0 <= yy < height and 0 <= xx < width:
                out += image[:, yy, xx] * (1 - abs(px - xx)) * (1 - abs(py - yy))
    return out


def test_deformable_attention_layer_places_points_as_documented():
    """Points: reference + offset / (W, H) for point references; centre + offset / points * wh / 2 for boxes."""
    from oneforall.traffic.deformable import MSDeformableAttention

    paddle.seed(1)
    heads, levels, points, dim = 2, 2, 3, 8
    layer = MSDeformableAttention(dim, heads, levels, points)
    rng = np.random.default_rng(4)
    layer.sampling_offsets.weight.set_value(np.zeros([dim, heads * levels * points * 2], "float32"))
    offsets = rng.normal(0, 1.5, size=[heads, levels, points, 2]).astype("float32")
    layer.sampling_offsets.bias.set_value(offsets.reshape(-1))
    layer.attention_weights.bias.set_value(rng.normal(size=[heads * levels * points]).astype("float32"))
    shapes = [(4, 5), (2, 3)]
    value = rng.normal(size=[1, 26, dim]).astype("float32")
    query = rng.normal(size=[1, 2, dim]).astype("float32")
    projected = value @ layer.value_proj.weight.numpy() + layer.value_proj.bias.numpy()
    logits = layer.attention_weights.bias.numpy().reshape([heads, levels * points])
    weights = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).reshape([heads, levels, points])
    for ref in (rng.uniform(0.2, 0.8, size=[1, 2, levels, 2]), rng.uniform(0.3, 0.6, size=[1, 2, levels, 4])):
        out = layer(paddle.to_tensor(query), paddle.to_tensor(ref.astype("float32")), paddle.to_tensor(value),
                    shapes).numpy()
        expected = np.zeros([2, heads, dim // heads])
        starts = [0, 20]
        for q in range(2):
            for h in range(heads):
                for level, (height, width) in enumerate(shapes):
                    rows = projected[0, starts[level]:starts[level] + height * width, h * 4:(h + 1) * 4]
                    image = rows.T.reshape([4, height, width])
                    for p in range(points):
                        if ref.shape[-1] == 2:
                            x, y = ref[0, q, level] + offsets[h, level, p] / [width, height]
                        else:
                            x, y = ref[0, q, level, :2] + offsets[h, level, p] / points * ref[0, q, level, 2:] * 0.5
                        expected[q, h] += weights[h, level, p] * numpy_sample(image, x, y)
        merged = expected.reshape([2, dim]) @ layer.output_proj.weight.numpy() + layer.output_proj.bias.numpy()
        np.testing.assert_allclose(out[0], merged, rtol=1e-4, atol=1e-5)


def test_query_sine_embedding_order_and_frequencies():
    from oneforall.traffic.dino import sine_embedding

    box = np.array([[0.3, 0.6, 0.2, 0.1]], "float32")  # cx, cy, w, h
    out = sine_embedding(paddle.to_tensor(box), num_feats=8).numpy()[0]
    dim_t = 2 * np.pi / 10000 ** (2 * (np.arange(8) // 2) / 8)

    def embed(v):
        x = v * dim_t
        return np.stack([np.sin(x[0::2]), np.cos(x[1::2])], 1).reshape(-1)

    expected = np.concatenate([embed(0.6), embed(0.3), embed(0.2), embed(0.1)])  # y, x, w, h
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_anchors_follow_the_valid_region_and_padding_is_invalid():
    model = tiny_transformer(in_channels=(16,), num_queries=3)
    mask = np.zeros([1, 4 * 6], "float32")
    mask.reshape(4, 6)[:3, :4] = 1  # 3 x 4 valid of a 4 x 6 map
    anchors, valid = model.anchors([(4, 6)], paddle.to_tensor(mask))
    anchors, valid = anchors.numpy()[0], valid.numpy()[0, :, 0]
    assert (valid == (mask[0] > 0)).all()
    assert np.isinf(anchors[~valid]).all()
    centre = 1 / (1 + np.exp(-anchors[1]))  # row 0, column 1
    np.testing.assert_allclose(centre, [1.5 / 4, 0.5 / 3, 0.05, 0.05], rtol=1e-5)
