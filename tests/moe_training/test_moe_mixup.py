"""Mixup / CutMix (one of the two per batch) and the soft-target cross-entropy, against numpy references."""
import numpy as np
import paddle
import pytest

from oneforall.data.mixup import MixupCutmix, group_generator, mix_groups
from oneforall.losses import SoftTargetCrossEntropyLoss


def reference(images, labels, num_classes, seed, mixup_alpha=1.0, cutmix_alpha=0.8, cutmix_prob=0.5):
    """Per-sample loops over the same draws: permutation, op choice, lambda, box (CutMix: lambda from the box)."""
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(labels))
    is_cutmix = rng.uniform() < cutmix_prob
    lam = rng.beta(cutmix_alpha, cutmix_alpha) if is_cutmix else rng.beta(mixup_alpha, mixup_alpha)
    out = np.empty_like(images)
    height, width = images.shape[2:]
    if is_cutmix:
        ch, cw = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
        cy, cx = rng.randint(height), rng.randint(width)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
        for i in range(len(labels)):
            out[i] = images[i]
            out[i, :, y0:y1, x0:x1] = images[perm[i], :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (height * width)
    else:
        for i in range(len(labels)):
            out[i] = lam * images[i] + (1 - lam) * images[perm[i]]
    targets = np.zeros((len(labels), num_classes), np.float32)
    for i in range(len(labels)):
        targets[i, labels[i]] += lam
        targets[i, labels[perm[i]]] += 1 - lam
    return out, targets, "cutmix" if is_cutmix else "mixup"


@pytest.mark.parametrize("seed", range(12))
def test_mixup_cutmix_match_numpy_reference(seed):
    data = np.random.RandomState(100 + seed)
    images = data.normal(size=(6, 3, 10, 14)).astype(np.float32)
    labels = data.randint(0, 5, 6)
    mixed, targets, op = MixupCutmix(5)(images, labels, np.random.RandomState(seed))
    ref_images, ref_targets, ref_op = reference(images, labels, 5, seed)
    assert op == ref_op
    np.testing.assert_allclose(mixed, ref_images, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert targets.dtype == np.float32 and mixed.dtype == np.float32


def test_both_operators_are_used_about_half_the_time():
    ops = [MixupCutmix(3)(np.zeros((2, 3, 4, 4), np.float32), np.array([0, 1]), np.random.RandomState(s))[2]
           for s in range(400)]
    assert 150 < ops.count("cutmix") < 250 and ops.count("cutmix") + ops.count("mixup") == 400


def test_soft_target_cross_entropy_matches_numpy():
    rng = np.random.RandomState(0)
    logits = rng.normal(size=(4, 5)).astype(np.float32)
    targets = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    loss = SoftTargetCrossEntropyLoss(scale=2.0)({"logits": paddle.to_tensor(logits)},
                                                 {"targets": paddle.to_tensor(targets)})
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(float(loss), 2.0 * -(targets * log_softmax).sum(1).mean(), rtol=1e-5)
    hard = SoftTargetCrossEntropyLoss()({"logits": paddle.to_tensor(logits)},
                                        {"targets": paddle.to_tensor(np.array([0, 1, 2, 3]))})
    np.testing.assert_allclose(float(hard), -log_softmax[np.arange(4), [0, 1, 2, 3]].mean(), rtol=1e-5)


def test_imagenet_task_loader_mixes_every_batch_reproducibly(oneforall_root, train_loader):
    import oneforall.data  # noqa: F401  (ClassificationTrainDataset)

    tasks = {"task6": {"type": "ClassificationTrainDataset", "dataset": "ImageNet1kBD", "batch_size": 4,
                       "transform": {"size": [16, 16], "autoaug_prob": 0.0, "erasing_prob": 0.0},
                       "batch_mix": {"group_rows": 4, "mixup_alpha": 1.0, "cutmix_alpha": 0.8, "cutmix_prob": 0.5}},
             "task18": {"type": "ClassificationTrainDataset", "dataset": "CIFAR10", "batch_size": 2,
                        "transform": {"size": [16, 16]}}}
    loader = train_loader(tasks, root=oneforall_root, seed=3)
    assert loader.num_classes == {"task6": 3, "task18": 3}
    batches = [next(loader) for _ in range(3)]
    for batch in batches:
        targets = np.asarray(batch["task6"]["targets"])
        assert targets.shape == (4, 3) and np.allclose(targets.sum(1), 1.0)
        assert np.asarray(batch["task18"]["targets"]).dtype == np.int64
        assert "seed" not in batch["task6"]
    again = train_loader(tasks, root=oneforall_root, seed=3)
    next(again)
    state = again.state_dict()
    resumed = train_loader(tasks, root=oneforall_root, seed=3)
    resumed.set_state_dict(state)
    for expected in batches[1:]:
        got = next(resumed)
        np.testing.assert_array_equal(np.asarray(got["task6"]["images"]), np.asarray(expected["task6"]["images"]))
        np.testing.assert_array_equal(np.asarray(got["task6"]["targets"]), np.asarray(expected["task6"]["targets"]))


def test_groups_are_mixed_on_their_own_from_their_own_seeds():
    """Rows in groups of 3: each group is what MixupCutmix does to it alone with the generator of its seeds, so a
    batch cut at group boundaries (one rank's share) mixes exactly as the whole batch."""
    data = np.random.RandomState(7)
    images = data.normal(size=(9, 3, 8, 8)).astype(np.float32)
    labels, seeds = data.randint(0, 4, 9), data.randint(0, 2 ** 62, 9)
    mixer = MixupCutmix(4)
    mixed, targets, ops = mix_groups(mixer, images, labels, seeds, 3)
    assert len(ops) == 3 and targets.shape == (9, 4)
    for start in (0, 3, 6):
        rows = slice(start, start + 3)
        alone = mixer(images[rows], labels[rows], group_generator(seeds[rows]))
        np.testing.assert_array_equal(mixed[rows], alone[0])
        np.testing.assert_array_equal(targets[rows], alone[1])
        ref_images, ref_targets, _ = reference(images[rows], labels[rows], 4, np.random.SeedSequence(
            [int(s) for s in seeds[rows]]).generate_state(4))
        np.testing.assert_allclose(mixed[rows], ref_images, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(targets[rows], ref_targets, rtol=1e-6, atol=1e-7)
    part = mix_groups(mixer, images[3:], labels[3:], seeds[3:], 3)
    np.testing.assert_array_equal(part[0], mixed[3:])
    with pytest.raises(ValueError, match="group_rows=4"):
        mix_groups(mixer, images, labels, seeds, 4)


def imagenet_task(group_rows):
    return {"task6": {"type": "ClassificationTrainDataset", "dataset": "ImageNet1kBD", "batch_size": 8,
                      "transform": {"size": [16, 16], "autoaug_prob": 0.0, "erasing_prob": 0.0},
                      "batch_mix": {"group_rows": group_rows, "mixup_alpha": 1.0, "cutmix_alpha": 0.8,
                                    "cutmix_prob": 0.5}}}


def test_two_ranks_mix_their_shares_exactly_as_one_process_mixes_the_global_batch(oneforall_root, train_loader):
    import oneforall.data  # noqa: F401  (ClassificationTrainDataset)

    one = train_loader(imagenet_task(4), root=oneforall_root, seed=1, rank=0, world_size=1)
    ranks = [train_loader(imagenet_task(4), root=oneforall_root, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(3):
        whole = next(one)["task6"]
        shares = [next(loader)["task6"] for loader in ranks]
        for key in ("images", "targets"):
            np.testing.assert_array_equal(np.concatenate([np.asarray(share[key]) for share in shares]),
                                          np.asarray(whole[key]), err_msg=key)
        assert not np.allclose(np.asarray(whole["targets"]).max(axis=1), 1.0)  # really mixed
    with pytest.raises(ValueError, match="group_rows=8"):  # 4 rows per rank: at build, not in the loader thread
        train_loader(imagenet_task(8), root=oneforall_root, seed=1, rank=0, world_size=2)


def test_batch_mix_without_group_rows_is_an_error(oneforall_root, train_loader):
    import oneforall.data  # noqa: F401

    tasks = imagenet_task(4)
    del tasks["task6"]["batch_mix"]["group_rows"]
    with pytest.raises(KeyError, match="group_rows"):
        train_loader(tasks, root=oneforall_root)
