"""OneForAll training data: the classification tasks' training sets (integer labels, Mixup / CutMix).
Importing it registers `ClassificationTrainDataset` in TRAIN_DATASETS."""
from . import classification  # noqa: F401  (registration)
from .mixup import MixupCutmix, cutmix, mix_groups, mixup

__all__ = ["MixupCutmix", "cutmix", "mix_groups", "mixup"]
