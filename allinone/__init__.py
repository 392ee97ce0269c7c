"""AllInOne (VIMER-UFO 1.0) in PaddlePaddle: one ViT shared by face, person, vehicle and product tasks.

Public API (importable from a notebook; paddle is imported on first use):
    cfg = allinone.load_config("configs/allinone/vitlarge_eval.yaml")
    model = allinone.build_model(cfg)
    report = allinone.load_checkpoint(model, "allinone_vitlarge.pdmodel", strict=True)
    feats = allinone.FeatureExtractor(model, head="task1").extract(["a.jpg", "b.jpg"])   # [N, D] numpy
"""
import importlib

from .utils.env import configure_threads as _configure_threads

if "OMP_NUM_THREADS" not in __import__("os").environ:
    _configure_threads()

from .config import Config, ConfigError, load_config  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "build_model": "allinone.modeling",
    "load_checkpoint": "allinone.modeling.checkpoint",
    "FeatureExtractor": "allinone.inference",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'allinone' has no attribute '{name}'")


__all__ = ["Config", "ConfigError", "load_config", *_LAZY]
