"""Model construction from the `Model` section of a config: backbone and heads by registry name."""
from ..config import ConfigError
from ..registry import BACKBONES, HEADS
from . import heads, vision_transformer  # noqa: F401  (register the components)
from .meta_arch import MultiTaskModel

MODEL_KEYS = ("backbone", "heads", "task_to_head", "fuse_tasks")


def build_model(cfg):
    """A MultiTaskModel from `cfg.Model`: `backbone` and `heads` ({name: {name: Class, ...}}) build through the
    BACKBONES / HEADS registries; a head's feat_dim defaults to the backbone's embed_dim."""
    if "Model" not in cfg:
        raise ConfigError(f"config {getattr(cfg, 'source', None) or ''} has no 'Model' section")
    model_cfg = cfg["Model"]
    unknown = sorted(set(model_cfg) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section 'Model'; allowed: {list(MODEL_KEYS)}")
    for key in ("backbone", "heads"):
        if key not in model_cfg:
            raise ConfigError(f"section 'Model' needs a '{key}' entry")
    backbone = BACKBONES.build(model_cfg["backbone"])
    return MultiTaskModel(backbone, {name: _build_head(name, head_cfg, backbone.embed_dim)
                                     for name, head_cfg in model_cfg["heads"].items()},
                          task_to_head=model_cfg.get("task_to_head"), fuse_tasks=model_cfg.get("fuse_tasks", True))


def _build_head(name, head_cfg, embed_dim):
    feat_dim = head_cfg.get("feat_dim", embed_dim)
    if feat_dim != embed_dim:
        raise ConfigError(f"Model.heads.{name}.feat_dim is {feat_dim} but the backbone's embed_dim is {embed_dim}")
    return HEADS.build(head_cfg, feat_dim=embed_dim)


__all__ = ["build_model", "MultiTaskModel"]
