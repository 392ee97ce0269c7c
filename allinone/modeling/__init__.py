"""Model construction from the `Model` section of a config: backbone and heads by registry name."""
import inspect
import logging

from ..config import ConfigError
from ..plugins import load_config_plugins
from ..registry import BACKBONES, HEADS
from . import heads, vision_transformer  # noqa: F401  (register the components)
from .meta_arch import MultiTaskModel
from .vision_transformer import resample_pos_embed

MODEL_KEYS = ("backbone", "heads", "task_to_head", "fuse_tasks")
# Keys the builder passes itself: a config may not set them.
BUILDER_ARGUMENTS = {"heads": ("in_dim",)}

logger = logging.getLogger("allinone.modeling")


def build_model(cfg):
    """A MultiTaskModel from `cfg.Model`: `backbone` and `heads` ({name: {name: Class, ...}}) build through the
    BACKBONES / HEADS registries; each head gets the backbone's width as `in_dim`. A key no component accepts is a
    ConfigError naming it (`Model.backbone.<key>`, `Model.heads.<head>.<key>`) and the config file."""
    if "Model" not in cfg:
        raise ConfigError(f"config {getattr(cfg, 'source', None) or ''} has no 'Model' section")
    load_config_plugins(cfg)  # the components of its Global.plugins (allinone/plugins.py)
    source = getattr(cfg, "source", None) or "the config"
    model_cfg = cfg["Model"]
    unknown = sorted(set(model_cfg) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in section 'Model'; allowed: {list(MODEL_KEYS)}")
    for key in ("backbone", "heads"):
        if key not in model_cfg:
            raise ConfigError(f"{source}: section 'Model' needs a '{key}' entry")
    backbone = _build(BACKBONES, model_cfg["backbone"], "Model.backbone", source)
    heads = {name: _build(HEADS, _without_feat_dim(name, head_cfg, backbone.embed_dim, source),
                          f"Model.heads.{name}", source, in_dim=backbone.embed_dim)
             for name, head_cfg in model_cfg["heads"].items()}
    try:
        return MultiTaskModel(backbone, heads, task_to_head=model_cfg.get("task_to_head"),
                              fuse_tasks=model_cfg.get("fuse_tasks", True))
    except ValueError as err:
        raise ConfigError(f"{source}: Model.task_to_head: {err}") from None


def config_keys(cls):
    """The config keys `cls` accepts: its constructor's named parameters plus its EXTRA_CONFIG_KEYS; None when it
    takes arbitrary keyword arguments without declaring them (then only the constructor can tell)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    if takes_any and not hasattr(cls, "EXTRA_CONFIG_KEYS"):
        return None
    return named | set(getattr(cls, "EXTRA_CONFIG_KEYS", ()))


def _build(registry, component_cfg, where, source, **builder_arguments):
    """registry.build with every configuration problem as a ConfigError naming `where` and the key."""
    if not isinstance(component_cfg, dict) or "name" not in component_cfg:
        raise ConfigError(f"{source}: {where} needs a 'name' entry (one of {list(registry)}), got {component_cfg!r}")
    try:
        cls = registry.get(component_cfg["name"])
    except KeyError as err:  # the registry's message lists what is registered (plugins' components included)
        raise ConfigError(f"{source}: {where}.name: unknown {registry.name} '{component_cfg['name']}': "
                          f"{err.args[0]}") from None
    given = set(component_cfg) - {"name"}
    reserved = sorted(given & set(builder_arguments))
    if reserved:
        raise ConfigError(f"{source}: {where}.{reserved[0]} is set by the model builder, not the config")
    accepted = config_keys(cls)
    unknown = sorted(given - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(f"{source}: unknown key {where}.{unknown[0]}" + (f" (and {unknown[1:]})" if unknown[1:]
                          else "") + f"; {cls.__name__} accepts {sorted(accepted - set(builder_arguments))}")
    try:
        return registry.build(component_cfg, **builder_arguments)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {where}: {err}") from None


def _without_feat_dim(name, head_cfg, embed_dim, source):
    """The head config without the retired `feat_dim` (heads read the backbone width): accepted with a warning
    when it equals the backbone's embed_dim, an error otherwise."""
    if not isinstance(head_cfg, dict) or "feat_dim" not in head_cfg:
        return head_cfg
    if head_cfg["feat_dim"] != embed_dim:
        raise ConfigError(f"{source}: Model.heads.{name}.feat_dim is {head_cfg['feat_dim']} but heads take the "
                          f"backbone's width, embed_dim {embed_dim}; remove feat_dim")
    logger.warning("%s: Model.heads.%s.feat_dim is not needed (heads read the backbone width); ignoring it",
                   source, name)
    return {key: value for key, value in head_cfg.items() if key != "feat_dim"}


__all__ = ["build_model", "config_keys", "MultiTaskModel", "resample_pos_embed"]
