"""OneForAll (VIMER-UFO 2.0) in PaddlePaddle: task-MoE ViT supernet, subnet extraction and the GP-NAS predictor.

Builds on `allinone` (ViT, data layer, evaluators, trainer): `oneforall.elastic` and `oneforall.task_moe` subclass
its ViT layers (docs/oneforall.md). `oneforall.gpnas` needs neither paddle models nor a GPU.
"""
__version__ = "0.1.0"
