"""Plugins: packages that extend the core (`oneforall` is one) register their components into its registries, and the
core finds them without naming them.

A plugin is a module whose import registers components (`@STEPS.register()`, `@TRAIN_RUNNERS.register(...)`, ...).
The core imports plugin modules from two declarations, never from a hard-coded name:

* installed packages: the entry-point group `allinone.plugins` (setup.py: `"allinone.plugins": ["oneforall =
  oneforall.plugin"]`), imported the first time a registry is asked for a name it does not hold;
* a config: `Global.plugins: [module, ...]`, imported by the commands (and `build_model`) before they build anything;
  this also works in a checkout that is not installed (PYTHONPATH only), where no entry point exists.

A dotted component name (`name: oneforall.elastic.ElasticVisionTransformer`) still imports its own module
(allinone/registry.py). See docs/design.md ("Plugins").
"""
import importlib
import logging
from importlib import metadata

ENTRY_POINT_GROUP = "allinone.plugins"
CONFIG_KEY = "Global.plugins"

logger = logging.getLogger("allinone.plugins")

_loaded = {}  # module name -> how it was declared ("entry point 'x' of dist", "Global.plugins of FILE")
_installed = None  # the installed entry points once scanned: [(entry point name, module, distribution)]


class PluginError(ImportError):
    """An installed plugin that cannot be imported (a broken install, not a config mistake)."""


def installed_plugins():
    """[(entry point name, module, distribution name)] of the `allinone.plugins` group of every installed package."""
    found = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = getattr(getattr(entry, "dist", None), "name", None) or "an installed package"
        found.append((entry.name, entry.value.split(":")[0].strip(), distribution))
    return sorted(set(found))


def load_installed_plugins():
    """Import every installed plugin once (later calls do nothing); returns the module names loaded now."""
    global _installed
    if _installed is not None:
        return []
    _installed = installed_plugins()  # set first: a plugin's import may itself look a name up
    loaded = []
    for name, module, distribution in _installed:
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise PluginError(f"plugin '{name}' ({ENTRY_POINT_GROUP} entry point of {distribution}) names module "
                              f"'{module}', which cannot be imported: {err}") from err
        _loaded[module] = f"entry point '{name}' of {distribution}"
        loaded.append(module)
    return loaded


def load_config_plugins(cfg):
    """Import the modules listed under `Global.plugins` of `cfg` (a list of module names); a wrong entry is a
    ConfigError naming `Global.plugins[i]` and the file. Returns the module names loaded now."""
    from .config import ConfigError

    declared = cfg.get_path(CONFIG_KEY) if hasattr(cfg, "get_path") else None
    if declared is None:
        return []
    source = getattr(cfg, "source", None) or "the config"
    if not isinstance(declared, (list, tuple)):
        raise ConfigError(f"{CONFIG_KEY} in {source} must be a list of module names (e.g. [oneforall.plugin]), got "
                          f"{declared!r}")
    loaded = []
    for position, module in enumerate(declared):
        where = f"{CONFIG_KEY}[{position}] in {source}"
        if not isinstance(module, str) or not module:
            raise ConfigError(f"{where} must be a module name (e.g. oneforall.plugin), got {module!r}")
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"{where}: cannot import plugin module '{module}' ({err})") from None
        _loaded[module] = f"{CONFIG_KEY} of {source}"
        loaded.append(module)
    return loaded


def load_plugins(cfg=None):
    """The config's plugins (`Global.plugins`), then every installed one; returns the module names loaded now."""
    loaded = load_config_plugins(cfg) if cfg is not None else []
    return loaded + load_installed_plugins()


def loaded_plugins():
    """{module: how it was declared} of the plugins imported so far."""
    return dict(_loaded)


def describe():
    """What a lookup error adds: which plugins are loaded (or why none is) and how to declare another."""
    if _loaded:
        state = "plugins loaded: " + ", ".join(f"{module} ({how})" for module, how in _loaded.items())
    elif not _installed:
        state = (f"no plugin loaded: no installed package declares the entry-point group '{ENTRY_POINT_GROUP}' (a "
                 f"checkout that is not installed? `pip install -e .`)")
    else:
        state = "no plugin loaded"
    return f"{state}; a config names the modules of its plugins under {CONFIG_KEY} (e.g. [mypackage.plugin])"
