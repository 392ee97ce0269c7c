"""The traffic three-task model: one WindowedViT shared by classification (`fgvc`), detection (`trafficsign`) and
segmentation (`segmentation`). Unlike allinone's fused batches, every task runs its own backbone pass (the three
tasks use different image sizes)."""
import paddle.nn as nn

from allinone.registry import BACKBONES, HEADS

from . import backbone as _backbone  # noqa: F401  (registers WindowedViT)
from . import heads as _heads  # noqa: F401  (registers the heads)

TASKS = ("segmentation", "fgvc", "trafficsign")

class TrafficModel(nn.Layer):
    """`model({task: task_batch})` -> `{task: head output}`; task_batch is a dict with at least `images`."""

    def __init__(self, backbone, heads):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.LayerDict(heads)

    def forward(self, batch):
        unknown = [task for task in batch if task not in self.heads]
        if unknown:
            raise KeyError(f"TrafficModel has no head for task(s) {unknown}; heads: {list(self.heads)}")
        return {task: self.forward_task(task, task_batch) for task, task_batch in batch.items()}

    def forward_task(self, task, task_batch):
        features = self.backbone(task_batch["images"])
        return self.heads[task](features, task_batch)


def build_traffic_model(model_cfg):
    """From a mapping {backbone: {name: WindowedViT, ...}, heads: {task: {name: ..., ...}}}."""
    backbone = BACKBONES.build(dict(model_cfg["backbone"]))
    heads = {task: HEADS.build(dict(cfg)) for task, cfg in model_cfg["heads"].items()}
    return TrafficModel(backbone, heads)


__all__ = ["TASKS", "TrafficModel", "build_traffic_model"]
