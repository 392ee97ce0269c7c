"""Name -> class registries, so a config names a component by string (`name: VisionTransformer`).

Components of packages that extend the core (plugins, allinone/plugins.py) are found in two ways, neither of which
names the package here: a dotted name (`name: oneforall.elastic.ElasticVisionTransformer`) imports its module first;
a short name the table lacks imports the installed plugins (entry-point group `allinone.plugins`) and looks again.
A config's own `Global.plugins` are imported by the commands before they build anything.
"""
import importlib

from . import plugins


class Registry:
    """A named table of components; `@REG.register()` on a class adds it under its own name (or an alias)."""

    def __init__(self, name):
        self.name = name
        self._table = {}

    def register(self, obj=None, *, name=None):
        """Use as `@REG.register()`, `@REG.register(name='Alias')` or `REG.register(cls)`."""
        def add(item):
            key = name or item.__name__
            if key in self._table and self._table[key] is not item:
                raise KeyError(f"{self.name} registry: '{key}' is already registered to {self._table[key]!r}")
            self._table[key] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name):
        if name not in self._table and isinstance(name, str) and "." in name:
            self._import_provider(name)
        if name not in self._table:
            plugins.load_installed_plugins()  # a plugin's component (imports each installed plugin once)
        if name not in self._table:
            raise KeyError(f"{self.name} registry has no '{name}'; registered: {sorted(self._table)}; "
                           f"{plugins.describe()}")
        return self._table[name]

    def _import_provider(self, name):
        """`package.module.Class`: import the module (it registers its components); the dotted name then refers
        to the component registered as `Class`."""
        module, _, short = name.rpartition(".")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise KeyError(f"{self.name} registry: cannot import module '{module}' of '{name}' ({err})") from None
        if short in self._table:
            self._table[name] = self._table[short]

    def build(self, cfg, **extra):
        """Instantiate from a mapping with a `name` key; the other keys (and `extra`) are constructor arguments."""
        if not isinstance(cfg, dict) or "name" not in cfg:
            raise KeyError(f"{self.name} config needs a 'name' key, got {cfg!r}")
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        kwargs.update(extra)
        cls = self.get(cfg["name"])
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise TypeError(f"building {self.name} '{cfg['name']}': {err}") from None

    def __contains__(self, name):
        return name in self._table

    def __iter__(self):
        return iter(sorted(self._table))

    def __len__(self):
        return len(self._table)

    def __repr__(self):
        return f"Registry({self.name}: {sorted(self._table)})"


BACKBONES = Registry("BACKBONES")
HEADS = Registry("HEADS")
DATASETS = Registry("DATASETS")
EVALUATORS = Registry("EVALUATORS")
SAMPLERS = Registry("SAMPLERS")
LOSSES = Registry("LOSSES")
OPTIMIZERS = Registry("OPTIMIZERS")
STEPS = Registry("STEPS")
TRAIN_DATASETS = Registry("TRAIN_DATASETS")
# the programs `tools/train.py` hands a config to, by `Global.runner` (default `allinone`: allinone's own trainer)
TRAIN_RUNNERS = Registry("TRAIN_RUNNERS")
