"""oneforall as a plugin of allinone: importing this module registers every OneForAll component in allinone's
registries, so allinone's commands find them by their short names without naming oneforall.

allinone imports it through the entry point that setup.py declares (group `allinone.plugins`) once a registry is
asked for a name it lacks, or because a config lists it (`Global.plugins: [oneforall.plugin]`, which also works in a
checkout that is not installed). What is registered where:

  BACKBONES       ElasticVisionTransformer, TaskMoEVisionTransformer, WindowedViT (traffic)
  HEADS           ClassificationHead, TrafficClassificationHead, TrafficDetectionHead, TrafficSegmentationHead
  LOSSES          SoftTargetCrossEntropyLoss
  STEPS           TaskMoEStep, SubnetStep, SubnetSandwichStep, PerTaskStep (traffic)
  TRAIN_DATASETS  ClassificationTrainDataset, TrafficClassification, TrafficDetection, TrafficSegmentation
  SAMPLERS        ClassAwareSampler
  TRAIN_RUNNERS   traffic (oneforall.traffic.train.run: the traffic configs, `Global.runner: traffic`)
"""
from allinone.registry import TRAIN_RUNNERS

from . import chip_training, elastic, heads, losses, moe_training, task_moe  # noqa: F401  (registrations)
from .data import classification  # noqa: F401
from .traffic import backbone, data, loader, steps, train  # noqa: F401
from .traffic import heads as traffic_heads  # noqa: F401

TRAIN_RUNNERS.register(train.run, name="traffic")
