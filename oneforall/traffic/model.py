"""The traffic three-task model: one WindowedViT shared by classification (`fgvc`), detection (`trafficsign`) and
segmentation (`segmentation`). Unlike allinone's fused batches, every task runs its own backbone pass (the three
tasks use different image sizes)."""
import re

import paddle.nn as nn

from allinone.registry import BACKBONES, HEADS

from . import backbone as _backbone  # noqa: F401  (registers WindowedViT)
from . import heads as _heads  # noqa: F401  (registers the heads)

TASKS = ("segmentation", "fgvc", "trafficsign")

# The baseline's learning-rate multipliers as name patterns (first match wins, default 1): the backbone's linear and
# patch weights (not qkv's bias, not the norms or the pyramid) 1.5, the whole segmentation head 10.
LR_MULTIPLIERS = (
    (r"^backbone\.(patch_embed\.|blocks\.\d+\.(attn\.(qkv\.weight|proj\.|rel_pos_)|mlp\.))", 1.5),
    (r"^heads\.segmentation\.", 10.0),
)


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


def baseline_model_config(num_classes=(19, 196, 45), **backbone):
    """The baseline's sizes (ViT-B/16 with 896-pixel tables; DINO 900 queries, 6+6 layers)."""
    seg_classes, cls_classes, det_classes = num_classes
    return {
        "backbone": {"name": "WindowedViT", "img_size": 896, "patch_size": 16, "embed_dim": 768, "depth": 12,
                     "num_heads": 12, "mlp_ratio": 4.0, "drop_path_rate": 0.5, "window_size": 14, **backbone},
        "heads": {
            "segmentation": {"name": "SegmentationHead", "num_classes": seg_classes, "embed_dim": 768},
            "fgvc": {"name": "ClassificationHead", "in_dim": 768, "num_classes": cls_classes},
            "trafficsign": {"name": "DetectionHead", "num_classes": det_classes},
        },
    }


def lr_multiplier(name, rules=LR_MULTIPLIERS):
    for pattern, mult in rules:
        if re.search(pattern, name):
            return mult
    return 1.0


__all__ = ["LR_MULTIPLIERS", "TASKS", "TrafficModel", "baseline_model_config", "build_traffic_model",
           "lr_multiplier"]
