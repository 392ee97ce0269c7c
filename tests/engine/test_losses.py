"""Each training loss against a direct numpy computation of its formula (docs/training.md, "Losses")."""
import numpy as np
import paddle
import pytest

from allinone.config import Config, ConfigError
from allinone.engine.losses import MultiTaskLoss, cross_entropy_loss, triplet_loss

RNG = np.random.default_rng(0)


def numpy_cross_entropy(logits, targets, eps):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    soft = np.full_like(logits, eps / (logits.shape[1] - 1))
    soft[np.arange(len(targets)), targets] = 1 - eps
    per_sample = -(soft * log_probs).sum(axis=1)
    return per_sample.sum() / max(np.count_nonzero(per_sample), 1)


def numpy_batch_hard(embeddings, targets, margin):
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    dist = np.sqrt(np.maximum((diff ** 2).sum(-1), 1e-12))
    same = targets[:, None] == targets[None, :]
    hardest_positive = np.where(same, dist, -np.inf).max(axis=1)  # the anchor itself counts (distance ~1e-6)
    hardest_negative = np.where(same, np.inf, dist).min(axis=1)
    gap = hardest_negative - hardest_positive
    if margin > 0:
        return np.maximum(0, margin - gap).mean()
    return np.log1p(np.exp(-gap)).mean()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_numpy_with_and_without_label_smoothing(eps):
    logits = RNG.normal(size=(6, 5)).astype("float32") * 3
    targets = np.array([0, 4, 2, 2, 1, 3])
    got = cross_entropy_loss(paddle.to_tensor(logits), paddle.to_tensor(targets), eps).item()
    assert got == pytest.approx(numpy_cross_entropy(logits.astype("float64"), targets, eps), rel=1e-5)


def test_cross_entropy_divides_by_the_number_of_nonzero_sample_losses():
    """A sample with a (numerically) certain prediction adds 0 and is not counted in the denominator."""
    logits = np.array([[200.0, 0.0, 0.0], [0.0, 1.0, 2.0]], dtype="float32")
    targets = np.array([0, 1])
    got = cross_entropy_loss(paddle.to_tensor(logits), paddle.to_tensor(targets)).item()
    second = -(1.0 - np.log(np.exp([0.0, 1.0, 2.0]).sum()))
    assert got == pytest.approx(second, rel=1e-5)


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_batch_hard_triplet_matches_numpy_soft_and_hard_margin(margin):
    embeddings = RNG.normal(size=(8, 4)).astype("float32")
    targets = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    got = triplet_loss(paddle.to_tensor(embeddings), paddle.to_tensor(targets), margin).item()
    assert got == pytest.approx(numpy_batch_hard(embeddings.astype("float64"), targets, margin), rel=1e-5)


def test_triplet_hardest_positive_includes_the_anchor_itself():
    """An identity with a single image has only itself as positive: d_ap = sqrt(1e-12), not 0 or an error."""
    embeddings = np.array([[0.0, 0.0], [3.0, 4.0]], dtype="float32")
    targets = np.array([0, 1])
    got = triplet_loss(paddle.to_tensor(embeddings), paddle.to_tensor(targets), margin=0.3).item()
    assert got == pytest.approx(max(0.0, 0.3 - (5.0 - 1e-6)), abs=1e-6)
    assert got == pytest.approx(numpy_batch_hard(embeddings.astype("float64"), targets, 0.3), abs=1e-6)


def test_soft_margin_falls_back_to_margin_0_3_when_the_original_would_overflow():
    """The original's log(1 + exp(-gap)) is inf once -gap > ~88 (float32); it then uses margin 0.3."""
    embeddings = np.array([[0.0], [100.0], [0.5]], dtype="float32")  # anchor 0's positive is 100 away
    targets = np.array([0, 0, 1])
    got = triplet_loss(paddle.to_tensor(embeddings), paddle.to_tensor(targets), margin=0.0).item()
    assert got == pytest.approx(numpy_batch_hard(embeddings.astype("float64"), targets, 0.3), rel=1e-5)


def test_triplet_gradient_is_finite_in_the_overflow_fallback():
    embeddings = paddle.to_tensor(np.array([[0.0], [100.0], [0.5]], dtype="float32"), stop_gradient=False)
    triplet_loss(embeddings, paddle.to_tensor(np.array([0, 0, 1])), margin=0.0).backward()
    assert np.isfinite(embeddings.grad.numpy()).all()


def test_multi_task_loss_names_terms_per_task_and_scales_them():
    cfg = Config({"face": [{"name": "CrossEntropyLoss", "scale": 2.0}, {"name": "TripletLoss", "scale": 0.25}],
                  "person": [{"name": "CrossEntropyLoss"}, {"name": "TripletLoss", "margin": 0.0}]})
    loss_fn = MultiTaskLoss(cfg, ["face", "person"])
    logits = paddle.to_tensor(RNG.normal(size=(4, 3)).astype("float32"))
    features = paddle.to_tensor(RNG.normal(size=(4, 5)).astype("float32"))
    targets = paddle.to_tensor(np.array([0, 0, 1, 1]))
    outputs = {task: {"logits": logits, "features": features} for task in ("face", "person")}
    batch = {task: {"targets": targets} for task in ("face", "person")}
    losses = loss_fn(outputs, batch)
    assert sorted(losses) == [("face", "loss_cls"), ("face", "loss_triplet"), ("person", "loss_cls"),
                              ("person", "loss_triplet")]
    assert losses[("face", "loss_cls")].item() == pytest.approx(2 * losses[("person", "loss_cls")].item(), rel=1e-6)
    assert losses[("face", "loss_triplet")].item() == pytest.approx(0.25 * losses[("person", "loss_triplet")].item(),
                                                                  rel=1e-6)
    assert losses[("person", "loss_triplet")].item() > 0.1


def test_two_losses_with_one_name_in_a_task_are_refused():
    with pytest.raises(ConfigError, match=r"Loss.face has two losses named \['loss_cls'\]"):
        MultiTaskLoss(Config({"face": [{"name": "CrossEntropyLoss"}, {"name": "CrossEntropyLoss", "eps": 0.1}]}),
                      ["face"])


def test_multi_task_loss_rejects_a_task_without_losses():
    with pytest.raises(ConfigError, match=r"no entry for task\(s\) \['person'\]"):
        MultiTaskLoss(Config({"face": [{"name": "CrossEntropyLoss"}]}), ["face", "person"])


def test_multi_task_loss_rejects_an_unknown_loss_argument():
    with pytest.raises(ConfigError, match="Loss.face.*margn"):
        MultiTaskLoss(Config({"face": [{"name": "TripletLoss", "margn": 0.3}]}), ["face"])
