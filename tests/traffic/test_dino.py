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
