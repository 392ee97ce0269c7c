"""Optimizer and LR schedule of the original solver (spec oneforall.md 3.3).

Momentum SGD with coupled L2 weight decay on every parameter, each gradient clipped to L2 norm <= 5 on its own
(per tensor), a per-parameter lr multiplier (Linear/Conv biases x `bias_lr_factor`, times an optional per-head
scale), and linear warmup from 0 followed by a cosine to `eta_min`. The multipliers are set here only (as parameter
groups, which paddle stores in each parameter's ParamAttr), so the model code sets none.
The original ignored `weight_decay_norm` and friends (bug table L20): they have no key here.
"""
import math
from collections import defaultdict

import paddle
import paddle.nn as nn

from ..config import ConfigError

OPTIMIZER_KEYS = ("name", "momentum", "weight_decay", "grad_clip_norm", "bias_lr_factor", "head_lr_scale", "lr")
LR_KEYS = ("base_lr", "warmup_iters", "eta_min")
BIASED_LAYERS = (nn.Linear, nn.Conv2D)


class WarmupCosine(paddle.optimizer.lr.LRScheduler):
    """lr(it) = base * it / warmup for it < warmup, then eta + (base - eta)(1 + cos(pi (it - warmup) / T)) / 2 with
    T = max_iter - warmup: the values of the original's LinearWarmup(CosineAnnealingDecay), in closed form (paddle's
    CosineAnnealingDecay alone steps a recursion that drifts over long runs)."""

    def __init__(self, base_lr, warmup_iters, max_iter, eta_min):
        self.warmup_iters, self.cosine_iters, self.eta_min = warmup_iters, max(max_iter - warmup_iters, 1), eta_min
        super().__init__(learning_rate=base_lr)

    def get_lr(self):
        it = self.last_epoch
        if it < self.warmup_iters:
            return self.base_lr * it / self.warmup_iters
        progress = (it - self.warmup_iters) / self.cosine_iters
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2


def build_lr_scheduler(lr_cfg, max_iter):
    """`Optimizer.lr` (base_lr, warmup_iters, eta_min) -> WarmupCosine over `max_iter` iterations."""
    lr_cfg.check_keys(LR_KEYS, "Optimizer.lr")
    warmup = int(lr_cfg.warmup_iters)
    if not 0 <= warmup <= max_iter:
        raise ConfigError(f"Optimizer.lr.warmup_iters must be in [0, Train.max_iter={max_iter}], got {warmup}")
    return WarmupCosine(float(lr_cfg.base_lr), warmup, max_iter, float(lr_cfg.eta_min))


def lr_multipliers(model, bias_lr_factor=1.0, head_lr_scale=None):
    """{parameter name: lr multiplier} for every trainable parameter of `model` (a MultiTaskModel or a wrapper of it).

    Biases of Linear/Conv layers get `bias_lr_factor` (norm-layer biases do not, as the original's ParamAttrs);
    parameters under `heads.<name>.` get `head_lr_scale[name]`. Frozen (stop_gradient) parameters are left out."""
    head_lr_scale = dict(head_lr_scale or {})
    head_names = set(getattr(_unwrap(model), "heads", {}).keys())
    unknown = sorted(set(head_lr_scale) - head_names)
    if unknown:
        raise ConfigError(f"Optimizer.head_lr_scale names unknown head(s) {unknown}; heads: {sorted(head_names)}")
    biases = {id(layer.bias) for layer in _unwrap(model).sublayers()
              if isinstance(layer, BIASED_LAYERS) and layer.bias is not None}
    multipliers = {}
    for name, param in _unwrap(model).named_parameters():
        if param.stop_gradient:
            continue
        scale = bias_lr_factor if id(param) in biases else 1.0
        parts = name.split(".")
        if parts[0] == "heads" and len(parts) > 1 and parts[1] in head_lr_scale:
            scale *= float(head_lr_scale[parts[1]])
        multipliers[name] = scale
    return multipliers


def build_optimizer(opt_cfg, model, scheduler):
    """`Optimizer` config section -> paddle.optimizer.Momentum over `model`'s trainable parameters, one parameter
    group per lr multiplier."""
    opt_cfg.check_keys(OPTIMIZER_KEYS, "Optimizer")
    if opt_cfg.name != "Momentum":
        raise ConfigError(f"Optimizer.name must be 'Momentum' (the original's SGD), got '{opt_cfg.name}'")
    multipliers = lr_multipliers(model, float(opt_cfg.bias_lr_factor), opt_cfg.get("head_lr_scale"))
    groups = defaultdict(list)
    for name, param in _unwrap(model).named_parameters():
        if name in multipliers:
            groups[multipliers[name]].append(param)
    param_groups = [{"params": params, "learning_rate": scale} for scale, params in groups.items()]
    return paddle.optimizer.Momentum(
        learning_rate=scheduler, momentum=float(opt_cfg.momentum), parameters=param_groups,
        weight_decay=float(opt_cfg.weight_decay), grad_clip=paddle.nn.ClipGradByNorm(float(opt_cfg.grad_clip_norm)))


def _unwrap(model):
    """The layer inside a paddle.DataParallel (parameter names then match the state dict)."""
    return model._layers if isinstance(model, paddle.DataParallel) else model
