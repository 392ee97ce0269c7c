"""Optimizers (registry OPTIMIZERS) with parameter groups, and the LR schedule of the original solver.

The original's solver: Momentum SGD with coupled L2 weight decay on every parameter, each gradient clipped to L2 norm
<= `grad_clip_norm` on its own (per tensor), a per-parameter lr multiplier (Linear/Conv biases x `bias_lr_factor`,
times an optional per-head scale), and linear warmup from 0 followed by a cosine to `eta_min`. `AdamW` (decoupled
weight decay) joins for the supernet recipes. `param_groups` give any parameters chosen by a name pattern their own lr
multiplier and weight decay (experts, gates, a backbone at a lower lr; lr_mult 0 freezes them). The multipliers are
set here only (paddle stores them in each parameter's ParamAttr), so the model code sets none. The original's
`weight_decay_norm`-style keys were read by no code there: they have no key here (see docs/training.md).
"""
import math
import re
from collections import defaultdict

import paddle
import paddle.nn as nn

from ..config import ConfigError
from ..registry import OPTIMIZERS

OPTIMIZER_KEYS = ("name", "momentum", "beta1", "beta2", "epsilon", "weight_decay", "grad_clip_norm",
                  "grad_clip_global_norm", "bias_lr_factor", "head_lr_scale", "param_groups", "lr")
LR_KEYS = ("base_lr", "warmup_iters", "warmup_fraction", "eta_min")
GROUP_KEYS = ("pattern", "lr_mult", "weight_decay")
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


def warmup_length(lr_cfg, max_iter):
    """Warm-up iterations from `warmup_iters` (a count) or `warmup_fraction` (of max_iter, so a run shortened with
    `-o Train.max_iter=N` keeps its shape): exactly one of them is set, the other null or absent."""
    iters, fraction = lr_cfg.get("warmup_iters"), lr_cfg.get("warmup_fraction")
    if iters is not None and fraction is not None:
        raise ConfigError(f"Optimizer.lr: give warmup_iters ({iters}) or warmup_fraction ({fraction}), not both; "
                          f"e.g. -o Optimizer.lr.warmup_fraction=null")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ConfigError(f"Optimizer.lr.warmup_fraction must be a number in [0, 1], got {fraction!r}")
        return int(round(fraction * max_iter))
    iters = 0 if iters is None else iters
    if isinstance(iters, bool) or not isinstance(iters, int) or not 0 <= iters <= max_iter:
        raise ConfigError(f"Optimizer.lr.warmup_iters must be an integer in [0, Train.max_iter={max_iter}], got "
                          f"{iters!r}; warmup_fraction (e.g. 0.1) scales with max_iter")
    return iters


def build_lr_scheduler(lr_cfg, max_iter):
    """`Optimizer.lr` (base_lr, warmup_iters or warmup_fraction, eta_min) -> WarmupCosine over `max_iter`."""
    lr_cfg.check_keys(LR_KEYS, "Optimizer.lr")
    return WarmupCosine(float(lr_cfg.base_lr), warmup_length(lr_cfg, max_iter), max_iter, float(lr_cfg.eta_min))


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


def parameter_groups(model, groups_cfg):
    """{parameter name: (lr_mult, weight_decay or None)} from `Optimizer.param_groups`: a list of `{pattern: regex,
    lr_mult: x, weight_decay: y}` matched with `re.search` against the state-dict names, first match wins.
    Parameters no pattern matches are left out. A pattern that matches nothing is an error (a typo)."""
    groups = []
    for index, group in enumerate(groups_cfg or []):
        where = f"Optimizer.param_groups[{index}]"
        if not isinstance(group, dict) or "pattern" not in group:
            raise ConfigError(f"{where} must be a mapping with a 'pattern' key, got {group!r}")
        unknown = sorted(set(group) - set(GROUP_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {list(GROUP_KEYS)}")
        try:
            pattern = re.compile(group["pattern"])
        except re.error as err:
            raise ConfigError(f"{where}.pattern {group['pattern']!r} is not a regular expression: {err}") from None
        lr_mult = group.get("lr_mult", 1.0)
        if isinstance(lr_mult, bool) or not isinstance(lr_mult, (int, float)) or lr_mult < 0:
            raise ConfigError(f"{where}.lr_mult must be a number >= 0, got {lr_mult!r}")
        decay = group.get("weight_decay")
        groups.append((pattern, float(lr_mult), None if decay is None else float(decay)))
    chosen, used = {}, set()
    for name, _ in _unwrap(model).named_parameters():
        for index, (pattern, lr_mult, decay) in enumerate(groups):
            if pattern.search(name):
                chosen[name] = (lr_mult, decay)
                used.add(index)
                break
    unused = [groups_cfg[index]["pattern"] for index in range(len(groups)) if index not in used]
    if unused:
        raise ConfigError(f"Optimizer.param_groups pattern(s) {unused} match no parameter of the model")
    return chosen


@OPTIMIZERS.register()
def Momentum(parameters, learning_rate, weight_decay, grad_clip, momentum=0.9):  # noqa: N802  (registry name)
    """Momentum SGD with coupled L2 weight decay (the original's solver)."""
    return paddle.optimizer.Momentum(learning_rate=learning_rate, momentum=float(momentum), parameters=parameters,
                                     weight_decay=float(weight_decay), grad_clip=grad_clip)


@OPTIMIZERS.register()
def AdamW(parameters, learning_rate, weight_decay, grad_clip, beta1=0.9, beta2=0.999, epsilon=1e-8):  # noqa: N802
    """Adam with decoupled weight decay."""
    return paddle.optimizer.AdamW(learning_rate=learning_rate, beta1=float(beta1), beta2=float(beta2),
                                  epsilon=float(epsilon), parameters=parameters, weight_decay=float(weight_decay),
                                  grad_clip=grad_clip)


def build_optimizer(opt_cfg, model, scheduler):
    """`Optimizer` config section -> the OPTIMIZERS entry `name` over `model`'s trainable parameters, one parameter
    group per (lr multiplier, weight decay). Optimizer-specific keys (`momentum`, `beta1`, ...) set to null are
    unset; a key the chosen optimizer does not take is an error naming it."""
    opt_cfg.check_keys(OPTIMIZER_KEYS, "Optimizer")
    name = opt_cfg.get("name")
    try:
        factory = OPTIMIZERS.get(name)  # plugins' optimizers included
    except KeyError as err:
        raise ConfigError(f"Optimizer.name must be one of the registered optimizers, got {name!r}: {err.args[0]}") \
            from None
    specific = {key: opt_cfg[key] for key in ("momentum", "beta1", "beta2", "epsilon") if opt_cfg.get(key) is not None}
    accepted = factory.__code__.co_varnames[:factory.__code__.co_argcount]
    refused = sorted(set(specific) - set(accepted))
    if refused:
        raise ConfigError(f"Optimizer.name is {name}, which takes no {refused}: remove them or set them to null")
    multipliers = lr_multipliers(model, float(opt_cfg.bias_lr_factor), opt_cfg.get("head_lr_scale"))
    chosen = parameter_groups(model, opt_cfg.get("param_groups"))
    groups = defaultdict(list)
    for name_, param in _unwrap(model).named_parameters():
        if name_ not in multipliers:
            continue
        lr_mult, decay = chosen.get(name_, (1.0, None))
        if lr_mult == 0:
            param.stop_gradient = True  # frozen: no gradient computed, no update
            continue
        groups[(multipliers[name_] * lr_mult, decay)].append(param)
    param_groups = []
    for (scale, decay), params in groups.items():
        group = {"params": params, "learning_rate": scale}
        if decay is not None:
            group["weight_decay"] = decay
        param_groups.append(group)
    if not param_groups:
        raise ConfigError("Optimizer: every parameter is frozen (stop_gradient or lr_mult 0); nothing to train")
    if opt_cfg.get("grad_clip_norm") and opt_cfg.get("grad_clip_global_norm"):
        raise ConfigError("Optimizer: give grad_clip_norm (per tensor) or grad_clip_global_norm (all gradients "
                          "together), not both")
    grad_clip = paddle.nn.ClipGradByNorm(float(opt_cfg.grad_clip_norm)) if opt_cfg.get("grad_clip_norm") else None
    if opt_cfg.get("grad_clip_global_norm"):
        grad_clip = paddle.nn.ClipGradByGlobalNorm(float(opt_cfg.grad_clip_global_norm))
    return factory(param_groups, scheduler, opt_cfg.weight_decay, grad_clip, **specific)


def _unwrap(model):
    """The layer inside a paddle.DataParallel (parameter names then match the state dict)."""
    return model._layers if isinstance(model, paddle.DataParallel) else model
