"""EmbeddingHead: cls-token pooling, post-BN eval feature, the intended BN neck, and training-only classifiers."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from allinone.modeling.heads import EmbeddingHead

DIM, CLASSES = 16, 5


def feature_map(batch=4, seed=0, num_tokens=3):
    """Backbone tokens [B, N, D]; the head reads only token 0 (the cls token)."""
    return paddle.to_tensor(np.random.RandomState(seed).normal(size=(batch, num_tokens, DIM)).astype("float32"))


def cls_of(tokens):
    return tokens.numpy()[:, 0]


def set_running_stats(head, seed=1):
    rng = np.random.RandomState(seed)
    bn = head.bottleneck[0]
    bn._mean.set_value(rng.normal(size=DIM).astype("float32"))
    bn._variance.set_value(rng.uniform(0.5, 1.5, size=DIM).astype("float32"))
    bn.weight.set_value(rng.uniform(0.5, 1.5, size=DIM).astype("float32"))
    bn.bias.set_value(rng.normal(size=DIM).astype("float32"))
    return bn


def test_eval_returns_the_post_bn_feature_not_normalised():
    head = EmbeddingHead(DIM)
    bn = set_running_stats(head)
    head.eval()
    x = feature_map()
    expected = ((cls_of(x) - bn._mean.numpy()) / np.sqrt(bn._variance.numpy() + 1e-5)
                * bn.weight.numpy() + bn.bias.numpy())
    out = head(x).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_without_bnneck_eval_returns_the_pooled_feature():
    head = EmbeddingHead(DIM, with_bnneck=False)
    head.eval()
    x = feature_map()
    np.testing.assert_array_equal(head(x).numpy(), cls_of(x))
    assert list(head.state_dict()) == []


def test_bn_neck_starts_at_weight_one_bias_zero_with_the_bias_frozen():
    bn = EmbeddingHead(DIM).bottleneck[0]
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(DIM))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(DIM))
    assert bn.bias.stop_gradient and not bn.weight.stop_gradient


def test_training_updates_running_mean_with_torch_momentum_point_one():
    head = EmbeddingHead(DIM)
    head.train()
    x = feature_map(batch=8)
    head(x)
    np.testing.assert_allclose(head.bottleneck[0]._mean.numpy(), 0.1 * cls_of(x).mean(axis=0),
                               rtol=1e-5, atol=1e-7)


def test_no_classifier_parameters_without_classes():
    head = EmbeddingHead(DIM, num_classes=0)
    assert head.classifier is None
    assert not [name for name in head.state_dict() if "classifier" in name]


def test_training_output_without_classifier_has_pre_and_post_bn_features():
    head = EmbeddingHead(DIM)
    head.train()
    x = feature_map()
    out = head(x)
    assert sorted(out) == ["features", "neck_features"]
    np.testing.assert_array_equal(out["features"].numpy(), cls_of(x))
    batch = cls_of(x)
    np.testing.assert_allclose(out["neck_features"].numpy(), (batch - batch.mean(0)) / np.sqrt(batch.var(0) + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_neck_feat_after_makes_the_triplet_feature_post_bn():
    head = EmbeddingHead(DIM, neck_feat="after")
    head.train()
    out = head(feature_map())
    np.testing.assert_array_equal(out["features"].numpy(), out["neck_features"].numpy())


def test_cossoftmax_logits_are_scaled_cosines_minus_the_margin_on_the_target():
    head = EmbeddingHead(DIM, num_classes=CLASSES, cls_type="CosSoftmax", scale=30.0, margin=0.2)
    head.train()
    targets = paddle.to_tensor([0, 3, 4, 3])
    out = head(feature_map(), {"targets": targets})
    neck, weight = out["neck_features"].numpy(), head.classifier.weight.numpy()
    cosine = (neck / np.linalg.norm(neck, axis=1, keepdims=True)) @ (weight / np.linalg.norm(weight, axis=0))
    np.testing.assert_allclose(out["pred_logits"].numpy(), 30.0 * cosine, rtol=1e-4, atol=1e-4)
    expected = 30.0 * (cosine - 0.2 * np.eye(CLASSES)[targets.numpy()])
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_linear_logits_are_the_scaled_neck_feature_times_the_weight():
    head = EmbeddingHead(DIM, num_classes=CLASSES, cls_type="Linear", scale=2.0)
    head.train()
    out = head(feature_map(), {"targets": paddle.to_tensor([0, 1, 2, 3])})
    expected = 2.0 * out["neck_features"].numpy() @ head.classifier.weight.numpy()
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_classifier_weight_is_feat_dim_by_classes_with_std_0_001():
    paddle.seed(0)
    weight = EmbeddingHead(256, num_classes=400).classifier.weight.numpy()
    assert weight.shape == (256, 400)
    assert abs(weight.std() - 0.001) < 5e-5 and abs(weight.mean()) < 5e-5


def test_classifier_does_not_change_the_eval_output():
    plain, with_classifier = EmbeddingHead(DIM), EmbeddingHead(DIM, num_classes=CLASSES)
    set_running_stats(plain)
    set_running_stats(with_classifier)
    plain.eval()
    with_classifier.eval()
    x = feature_map()
    np.testing.assert_array_equal(with_classifier(x).numpy(), plain(x).numpy())


def test_cosface_training_without_targets_is_an_error():
    head = EmbeddingHead(DIM, num_classes=CLASSES)
    head.train()
    with pytest.raises(ValueError, match="needs targets"):
        head(feature_map())


def test_cross_entropy_on_logits_backpropagates_to_backbone_features_and_classifier():
    head = EmbeddingHead(DIM, num_classes=CLASSES, scale=30.0, margin=0.2)
    head.train()
    x = feature_map()
    x.stop_gradient = False
    F.cross_entropy(head(x, {"targets": paddle.to_tensor([0, 1, 2, 3])})["logits"], paddle.to_tensor([0, 1, 2, 3])).backward()
    assert x.grad is not None and head.classifier.weight.grad is not None
    assert head.bottleneck[0].bias.grad is None


def test_only_the_cls_token_reaches_the_feature():
    head = EmbeddingHead(DIM)
    head.eval()
    x = feature_map()
    changed = x.numpy().copy()
    changed[:, 1:] += 5.0  # the patch tokens
    np.testing.assert_array_equal(head(paddle.to_tensor(changed)).numpy(), head(x).numpy())


def test_unknown_classifier_type_is_rejected():
    with pytest.raises(ValueError, match="unknown cls_type 'ArcSoftmax'"):
        EmbeddingHead(DIM, num_classes=CLASSES, cls_type="ArcSoftmax")
