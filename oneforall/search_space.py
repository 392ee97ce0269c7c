"""The sub-network search space of the OneForAll supernets: one object for the supernets, the sampler and GP-NAS.

An `Architecture` is one sub-network: its depth and, per layer, the head count, the MLP ratio and the embedding
width (and, for the task-MoE supernet, the FFN ratios of the common and of every task's specific expert). A
`SearchSpace` holds the choices of each field, its largest and smallest member, and draws members step-seeded in the
original's order. The 37-character competition code (`oneforall.arch_code`) is another view of the same object.

Sampling uses a private `random.Random(step)`: the draws equal the original's `random.seed(step)` draws for the
same step, without resetting Python's global random state on every step (docs/oneforall.md, "Deviations").
"""
import random
from dataclasses import dataclass, field
from typing import Optional, Tuple


@dataclass(frozen=True)
class ExpertRatios:
    """FFN ratios of one task-MoE block: the shared ("common") expert and each task's own expert (task order)."""

    common: float
    specific: Tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "specific", tuple(self.specific))

    def to_config(self):
        return {"common_expert": self.common, "specific_experts": list(self.specific)}


@dataclass(frozen=True)
class SearchSpace:
    """The choices of every field of a sub-network. Defaults: the elastic ViT-Base space of the OneForAll
    meta-archs and of the CCF BDCI 2022 competition (depth and heads in {10, 11, 12}, MLP ratio in {3, 3.5, 4},
    embed 768). `img_size` is drawn (to keep the original's draw order) but selects nothing."""

    depth: Tuple[int, ...] = (10, 11, 12)
    num_heads: Tuple[int, ...] = (10, 11, 12)
    mlp_ratio: Tuple[float, ...] = (3.0, 3.5, 4.0)
    embed_dim: Tuple[int, ...] = (768,)
    img_size: Tuple[int, ...] = (224,)

    def __post_init__(self):
        for name in ("depth", "num_heads", "mlp_ratio", "embed_dim", "img_size"):
            values = getattr(self, name)
            values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            if not values:
                raise ValueError(f"SearchSpace.{name} has no choices")
            object.__setattr__(self, name, values)

    @classmethod
    def from_choices(cls, choices):
        """From the original's `choices` dict ({num_heads: [...], mlp_ratio: [...], embed_dim, depth, img_size})."""
        unknown = sorted(set(choices) - {"depth", "num_heads", "mlp_ratio", "embed_dim", "img_size"})
        if unknown:
            raise ValueError(f"search space choices: unknown key(s) {unknown}; expected depth, num_heads, "
                             f"mlp_ratio, embed_dim, img_size")
        return cls(**choices)

    def to_choices(self):
        return {name: list(getattr(self, name)) for name in ("num_heads", "mlp_ratio", "embed_dim", "depth",
                                                             "img_size")}

    @property
    def max_depth(self):
        return max(self.depth)

    # -- members -------------------------------------------------------------------------------------------
    def largest(self, num_tasks=None):
        """Every field at its maximum (the original's `largest_choices`); with `num_tasks`, MoE expert ratios too."""
        return self._uniform(max(self.depth), max(self.num_heads), max(self.mlp_ratio), max(self.embed_dim),
                             num_tasks)

    def smallest(self, num_tasks=None):
        return self._uniform(min(self.depth), min(self.num_heads), min(self.mlp_ratio), min(self.embed_dim),
                             num_tasks)

    def _uniform(self, depth, heads, ratio, embed, num_tasks):
        experts = None if num_tasks is None else (ExpertRatios(ratio, (ratio,) * num_tasks),) * depth
        return Architecture(depth, (heads,) * depth, (ratio,) * depth, (embed,) * depth, experts, space=self)

    def sample(self, step, num_tasks=None):
        """The sub-network of training step `step`, as the original draws it from `random.seed(step)`:
        depth; one MLP ratio per layer; one head count per layer; [MoE: per layer the common expert's ratio, then
        one ratio per task]; one embed dim for all layers; the image size (unused)."""
        rng = random.Random(step)
        depth = rng.choice(self.depth)
        ratios = tuple(rng.choice(self.mlp_ratio) for _ in range(depth))
        heads = tuple(rng.choice(self.num_heads) for _ in range(depth))
        experts = None
        if num_tasks is not None:
            experts = tuple(ExpertRatios(rng.choice(self.mlp_ratio),
                                         tuple(rng.choice(self.mlp_ratio) for _ in range(num_tasks)))
                            for _ in range(depth))
        embed = rng.choice(self.embed_dim)
        rng.choice(self.img_size)  # drawn by the original (keeps the stream aligned), selects nothing
        return Architecture(depth, heads, ratios, (embed,) * depth, experts, space=self)

    def check(self, arch):
        """Raise ValueError naming the layer and field of the first value of `arch` outside the choices."""
        if arch.depth not in self.depth:
            raise ValueError(f"depth must be one of {sorted(self.depth)}, got {arch.depth}")
        for name, values, allowed in (("num_heads", arch.num_heads, self.num_heads),
                                      ("mlp_ratios", arch.mlp_ratios, self.mlp_ratio),
                                      ("embed_dims", arch.embed_dims, self.embed_dim)):
            for layer, value in enumerate(values):
                if value not in allowed:
                    raise ValueError(f"{name}[{layer}] = {value} (layer {layer}), expected one of {sorted(allowed)}")
        for layer, experts in enumerate(arch.expert_ratios or ()):
            for where, value in [("common", experts.common)] + [(f"specific[{t}]", r)
                                                                for t, r in enumerate(experts.specific)]:
                if value not in self.mlp_ratio:
                    raise ValueError(f"expert_ratios[{layer}].{where} = {value} (layer {layer}), expected one of "
                                     f"{sorted(self.mlp_ratio)}")


COMPETITION_SPACE = SearchSpace()


@dataclass(frozen=True)
class Architecture:
    """One sub-network: `depth` and, per layer (`depth` entries each), heads, MLP ratio and embedding width; for
    the task-MoE supernet also per layer the expert ratios (`ExpertRatios`, one specific ratio per task).

    The values are checked against `space` (default: the competition space); `space=None` checks only the
    structure (a supernet then checks the values against its own capacity).
    """

    depth: int
    num_heads: Tuple[int, ...]
    mlp_ratios: Tuple[float, ...]
    embed_dims: Tuple[int, ...]
    expert_ratios: Optional[Tuple[ExpertRatios, ...]] = None
    space: Optional[SearchSpace] = field(default=COMPETITION_SPACE, compare=False, repr=False)

    def __post_init__(self):
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be a positive int, got {self.depth!r}")
        for name in ("num_heads", "mlp_ratios", "embed_dims"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"{name} must be a list with one value per layer ({self.depth}), got {values!r}")
            if len(values) != self.depth:
                raise ValueError(f"{name} has {len(values)} entries, expected one per layer ({self.depth})")
            object.__setattr__(self, name, tuple(values))
        if self.expert_ratios is not None:
            experts = tuple(e if isinstance(e, ExpertRatios) else _expert_ratios_from_config(e, layer)
                            for layer, e in enumerate(self.expert_ratios))
            if len(experts) != self.depth:
                raise ValueError(f"expert_ratios has {len(experts)} entries, expected one per layer ({self.depth})")
            tasks = {len(e.specific) for e in experts}
            if len(tasks) > 1:
                raise ValueError(f"expert_ratios: the layers name different task counts {sorted(tasks)}")
            object.__setattr__(self, "expert_ratios", experts)
        if self.space is not None:
            self.space.check(self)

    @property
    def embed_dim(self):
        """The single embedding width (the supernets have no elastic embedding width)."""
        if len(set(self.embed_dims)) != 1:
            raise ValueError(f"per-layer embedding widths {list(self.embed_dims)} are not supported; all layers "
                             f"must have the same embed_dim")
        return self.embed_dims[0]

    @property
    def num_tasks(self):
        return None if self.expert_ratios is None else len(self.expert_ratios[0].specific)

    # -- views ---------------------------------------------------------------------------------------------
    @classmethod
    def from_code(cls, code):
        from .arch_code import parse_arch_code
        return parse_arch_code(code)

    def to_code(self):
        from .arch_code import format_arch_code
        return format_arch_code(self)

    def to_config(self, pad_to=None):
        """The original's sub-config dict (`layer_num`, per-layer `num_heads`, `mlp_ratio`, `embed_dim`[,
        `softpolicy_mlp_ratio`]), lists padded to `pad_to` layers by repeating the last value, as the original."""
        pad = max(0, (pad_to or self.depth) - self.depth)

        def padded(values):
            return list(values) + [values[-1]] * pad

        config = {"mlp_ratio": padded(self.mlp_ratios), "num_heads": padded(self.num_heads)}
        if self.expert_ratios is not None:
            config["softpolicy_mlp_ratio"] = padded([e.to_config() for e in self.expert_ratios])
        config["embed_dim"] = padded(self.embed_dims)
        config["layer_num"] = self.depth
        return config

    @classmethod
    def from_config(cls, config, space=None):
        """From the original's sub-config dict; lists longer than `layer_num` (the original's padding) are cut.
        `space=None`: values are not checked against a choice set (a supernet checks its capacity)."""
        if not isinstance(config, dict):
            raise ValueError(f"a sub-network config is a dict, got {type(config).__name__}")
        missing = [key for key in ("layer_num", "num_heads", "mlp_ratio") if key not in config]
        if missing:
            raise ValueError(f"sub-network config lacks {missing}; it has {sorted(config)}")
        depth = config["layer_num"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"sub-network config: layer_num must be a positive int, got {depth!r}")

        def cut(key, default=None):
            values = config.get(key, default)
            if values is None:
                return None
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"sub-network config: '{key}' must be a list (one value per layer), got {values!r}")
            if len(values) < depth:
                raise ValueError(f"sub-network config: '{key}' has {len(values)} entries, fewer than layer_num "
                                 f"= {depth}")
            return tuple(values[:depth])

        embed = cut("embed_dim") if "embed_dim" in config else None
        if embed is None:
            raise ValueError("sub-network config lacks 'embed_dim'")
        return cls(depth, cut("num_heads"), cut("mlp_ratio"), embed, cut("softpolicy_mlp_ratio"), space=space)

    def with_space(self, space):
        """The same sub-network checked against another space (None: structure only)."""
        return Architecture(self.depth, self.num_heads, self.mlp_ratios, self.embed_dims, self.expert_ratios,
                            space=space)


def _expert_ratios_from_config(entry, layer):
    if not isinstance(entry, dict) or set(entry) != {"common_expert", "specific_experts"}:
        raise ValueError(f"expert_ratios[{layer}] (layer {layer}) must be ExpertRatios or a dict with keys "
                         f"'common_expert' and 'specific_experts', got {entry!r}")
    return ExpertRatios(entry["common_expert"], tuple(entry["specific_experts"]))


__all__ = ["Architecture", "COMPETITION_SPACE", "ExpertRatios", "SearchSpace"]
