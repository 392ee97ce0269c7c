"""Mixup and CutMix on a batch, one of the two per batch (the ImageNet task of the OneForAll recipe).

The original's batch operator picks exactly one of its operators per batch (CutMix with probability 0.5, alpha 0.8;
Mixup with probability 0.5, alpha 1.0; no "neither"), mixes the batch with a random permutation of itself and
lambda ~ Beta(alpha, alpha), and returns soft targets lambda * onehot(y) + (1 - lambda) * onehot(y[perm]).
CutMix pastes a box with sides sqrt(1 - lambda) x (H, W) around a uniform centre, clipped to the image, and
recomputes lambda from the clipped box's area.

Which rows are mixed together (`mix_groups`): the original mixed each rank's batch on its own, so its mixing
changed with the number of processes. Here every consecutive group of `group_rows` rows of a task's *global* batch
is mixed on its own (the recipe: 24 = the release's 1152 ImageNet images over 48 ranks, which is what the release
did), with a generator seeded by that group's sample seeds (functions of the samples' positions in the task's
stream). A rank's batch holds whole groups, so any number of processes (each rank's batch a multiple of
`group_rows`), a resumed run and any number of loader workers mix alike.
"""
import numpy as np


def mixup(images, labels, num_classes, lam, permutation):
    """images [B, C, H, W] float, labels [B] int -> (mixed images, soft targets [B, num_classes])."""
    mixed = lam * images + (1.0 - lam) * images[permutation]
    return mixed.astype(images.dtype), soft_targets(labels, permutation, num_classes, lam)


def cutmix_box(height, width, lam, rng):
    """(top, bottom, left, right) of a box of sides sqrt(1 - lam) x (H, W) around a uniform centre, clipped."""
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = rng.randint(height), rng.randint(width)
    return (int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height)),
            int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width)))


def cutmix(images, labels, num_classes, lam, permutation, box):
    """Paste `box` of the permuted batch into every image; lambda becomes 1 - box area / image area."""
    top, bottom, left, right = box
    mixed = images.copy()
    mixed[:, :, top:bottom, left:right] = images[permutation][:, :, top:bottom, left:right]
    height, width = images.shape[2:]
    lam = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return mixed, soft_targets(labels, permutation, num_classes, lam)


def soft_targets(labels, permutation, num_classes, lam):
    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]
    return (lam * one_hot + (1.0 - lam) * one_hot[permutation]).astype(np.float32)


class MixupCutmix:
    """Per batch: CutMix with probability `cutmix_prob`, else Mixup (the recipe: 0.5 / 0.5, alphas 0.8 / 1.0).
    `prob` < 1 leaves a batch unmixed (one-hot targets) with probability 1 - prob (the recipe: 1, always mixed)."""

    def __init__(self, num_classes, mixup_alpha=1.0, cutmix_alpha=0.8, cutmix_prob=0.5, prob=1.0):
        if not 0.0 <= cutmix_prob <= 1.0 or mixup_alpha <= 0 or cutmix_alpha <= 0:
            raise ValueError(f"MixupCutmix: need alphas > 0 and cutmix_prob in [0, 1], got mixup_alpha={mixup_alpha}, "
                             f"cutmix_alpha={cutmix_alpha}, cutmix_prob={cutmix_prob}")
        self.num_classes, self.mixup_alpha = int(num_classes), float(mixup_alpha)
        self.cutmix_alpha, self.cutmix_prob = float(cutmix_alpha), float(cutmix_prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"MixupCutmix: prob must be in [0, 1], got {prob}")
        self.prob = float(prob)

    def __call__(self, images, labels, rng):
        """images [B, C, H, W], labels [B] int, rng a numpy RandomState -> (images, soft targets [B, C], op name)."""
        if self.prob < 1.0 and rng.uniform() >= self.prob:
            return images, np.eye(self.num_classes, dtype=np.float32)[np.asarray(labels)], "none"
        permutation = rng.permutation(len(labels))
        if rng.uniform() < self.cutmix_prob:
            lam = rng.beta(self.cutmix_alpha, self.cutmix_alpha)
            box = cutmix_box(images.shape[2], images.shape[3], lam, rng)
            return (*cutmix(images, labels, self.num_classes, lam, permutation, box), "cutmix")
        lam = rng.beta(self.mixup_alpha, self.mixup_alpha)
        return (*mixup(images, labels, self.num_classes, lam, permutation), "mixup")


def group_generator(seeds):
    """The numpy generator of a group of rows, seeded by the group's sample seeds (64-bit ints)."""
    return np.random.RandomState(np.random.SeedSequence([int(seed) for seed in seeds]).generate_state(4))


def check_group_rows(rows, group_rows, where="batch"):
    """A batch of `rows` rows (one rank's) must hold whole groups of `group_rows`."""
    if rows % group_rows:
        raise ValueError(f"{where}: each rank's batch of {rows} rows does not split into Mixup/CutMix groups of "
                         f"batch_mix.group_rows={group_rows} (the global batch / the number of processes must be a "
                         f"multiple of it)")


def mix_groups(mixer, images, labels, seeds, group_rows, where="batch"):
    """`mixer` (a MixupCutmix) applied to each consecutive `group_rows` rows of images [B, C, H, W] / labels [B] on
    its own, with `group_generator(those rows' seeds)` -> (images, soft targets [B, C], [op name per group])."""
    rows = len(labels)
    check_group_rows(rows, group_rows, where)
    parts = [mixer(images[start:start + group_rows], labels[start:start + group_rows],
                   group_generator(seeds[start:start + group_rows])) for start in range(0, rows, group_rows)]
    if len(parts) == 1:
        return parts[0][0], parts[0][1], [parts[0][2]]
    return (np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts]),
            [part[2] for part in parts])
