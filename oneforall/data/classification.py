"""Training data of a classification task: the data set's own integer labels (no identity relabelling, so the
head's outputs line up with the test split's labels), optionally Mixup / CutMix per batch with soft targets."""
import numpy as np

from allinone.data.common import TrainImageDataset, collate
from allinone.registry import DATASETS, TRAIN_DATASETS

from .mixup import MixupCutmix, check_group_rows, mix_groups


@TRAIN_DATASETS.register()
class ClassificationTrainDataset(TrainImageDataset):
    """`targets` = the set's labels; `num_classes` = the set's class count. One data set per task.

    With `batch_mix` (`{group_rows, mixup_alpha, cutmix_alpha, cutmix_prob, prob}`) the batch is mixed after
    collation, each consecutive `group_rows` rows of the task's global batch on their own (`mixup.mix_groups`:
    the same mixing for any number of processes), and `targets` become soft [b, C] float32 (use
    `SoftTargetCrossEntropyLoss`).
    """

    def __init__(self, dataset, transform, task, batch_mix=None):
        super().__init__([(dataset.dataset_name, dataset.train)], transform, task)
        self.targets = np.array([label for _, label, _ in dataset.train], dtype=np.int64)
        self.class_count = int(dataset.num_classes)
        self.batch_mix, self.mix_group_rows = None, None
        if batch_mix:
            options = dict(batch_mix)
            group_rows = options.pop("group_rows", None)
            if not isinstance(group_rows, int) or isinstance(group_rows, bool) or group_rows < 1:
                raise KeyError(f"train task '{task}': batch_mix needs group_rows, a positive integer: how many "
                               f"consecutive rows of the global batch are mixed together (the released recipe: 24, "
                               f"its per-GPU ImageNet batch); got {group_rows!r}")
            self.batch_mix, self.mix_group_rows = MixupCutmix(self.class_count, **options), group_rows

    @classmethod
    def from_config(cls, task, root, dataset, transform=None, batch_mix=None):
        from allinone.data.transforms import build_train_transform

        entry = {"name": dataset} if isinstance(dataset, str) else dict(dataset)
        data_set = DATASETS.build({"root": root, **entry})
        if not hasattr(data_set, "num_classes"):
            raise KeyError(f"train task '{task}': data set {entry['name']} is no classification set (no num_classes)")
        return cls(data_set, build_train_transform(transform or {}), task, batch_mix)

    def check_rank_batch(self, rows):
        """Each rank's batch must hold whole Mixup/CutMix groups (called when the loader is built)."""
        if self.batch_mix is not None:
            check_group_rows(rows, self.mix_group_rows, where=f"train task '{self.task}'")

    @property
    def num_classes(self):
        return self.class_count

    def __getitem__(self, index_and_seed):
        sample = super().__getitem__(index_and_seed)
        sample["seed"] = np.int64(index_and_seed[1] % (2 ** 62))
        return sample

    def collate(self, samples):
        batch = collate(samples)
        seeds = batch.pop("seed")
        if self.batch_mix is not None:
            batch["images"], batch["targets"], _ = mix_groups(self.batch_mix, batch["images"], batch["targets"], seeds,
                                                              self.mix_group_rows, where=f"train task '{self.task}'")
        return batch
