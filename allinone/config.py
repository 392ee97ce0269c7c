"""YAML configuration: nested attribute access, `_base_` inheritance and `-o a.b.c=value` overrides.

A file may name the files it extends in `_base_` (a path or a list of paths, relative to the file, else to the
project root). Bases are merged in order, then the file itself on top. Dicts merge key by key; every other value
(lists included) is replaced. A value may only be replaced by one of the same type (an int may become a float, `null`
accepts anything), so a typo'd structure fails loudly. Overrides from the command line may only replace keys that
exist, and may not set a number or a switch to `null`.

Numbers are read as people write them: `1e-3` is a float (YAML 1.1, PyYAML's dialect, reads it as a string).
"""
import copy
import os
import re

import yaml

BASE_KEY = "_base_"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3`, `5E4`, `-2e+1` as floats."""


# copy the per-character resolver lists: appending to the inherited ones would change yaml.SafeLoader itself
_Loader.yaml_implicit_resolvers = {char: list(resolvers)
                                   for char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def yaml_load(text_or_stream):
    """yaml.safe_load with the number rule above."""
    return yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


class Config(dict):
    """A dict whose keys are also attributes (`cfg.Model.backbone.depth`); nested dicts are Configs."""

    def __init__(self, data=None, source=None):
        super().__init__()
        object.__setattr__(self, "_source", source)
        for key, value in (data or {}).items():
            self[key] = value

    def __setitem__(self, key, value):
        super().__setitem__(key, _wrap(value, self._source))

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            where = f" (config {self._source})" if self._source else ""
            raise AttributeError(f"config has no key '{key}'{where}; keys: {sorted(self.keys())}") from None

    def __setattr__(self, key, value):
        self[key] = value

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(self.to_dict(), memo), self._source)

    @property
    def source(self):
        return self._source

    def get_path(self, dotted, default=None):
        """`cfg.get_path('a.b.c')`: the nested value, or `default` if any level is missing."""
        node = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, Config) else _unwrap_list(v)) for k, v in self.items()}

    def dump(self, path):
        """Write the resolved config as YAML (no `_base_`), e.g. next to a training run's outputs."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    def check_keys(self, allowed, where):
        """Raise if this section has keys outside `allowed`; `where` names the section (e.g. 'Model.backbone')."""
        unknown = sorted(set(self.keys()) - set(allowed))
        if unknown:
            src = f" in {self._source}" if self._source else ""
            raise ConfigError(f"unknown key(s) {unknown} in section '{where}'{src}; allowed: {sorted(allowed)}")


def _wrap(value, source):
    if isinstance(value, Config):
        return value
    if isinstance(value, dict):
        return Config(value, source)
    if isinstance(value, list):
        return [_wrap(v, source) for v in value]
    return value


def _unwrap_list(value):
    if isinstance(value, list):
        return [v.to_dict() if isinstance(v, Config) else _unwrap_list(v) for v in value]
    return value


def _type_name(value):
    return "null" if value is None else type(value).__name__


def _compatible(old, new):
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return True
    if isinstance(old, dict):
        return isinstance(new, dict)
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    return type(old) is type(new)


def _merge(base, update, source, prefix=""):
    """Merge `update` into a copy of `base`; raises on a type change, naming the key and `source`."""
    out = dict(base)
    for key, new in update.items():
        dotted = f"{prefix}{key}"
        if key in out:
            old = out[key]
            if not _compatible(old, new):
                raise ConfigError(
                    f"{source}: key '{dotted}' has type {_type_name(new)} but the base config has "
                    f"{_type_name(old)} ({old!r})")
            if isinstance(old, dict) and isinstance(new, dict):
                out[key] = _merge(old, new, source, dotted + ".")
                continue
        out[key] = new
    return out


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {_type_name(data)}")
    return data


def _load_tree(path, chain):
    path = os.path.abspath(path)
    if path in chain:
        raise ConfigError(f"{path}: circular _base_ chain: {' -> '.join(chain + [path])}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a path or a list of paths, got {bases!r}")
    merged = {}
    for base in bases:
        base_path = _find_base(base, path)
        merged = _merge(merged, _load_tree(base_path, chain + [path]), base_path)
    return _merge(merged, data, path)


def _find_base(base, including):
    """A `_base_` entry: relative to the including file, else to the project root, else (an installed package) the
    packaged configs folder (`configs/allinone/x.yaml` is `<package>/configs/allinone/x.yaml`); absolute paths as
    they are."""
    candidates = [os.path.join(os.path.dirname(including), base)]
    if not os.path.isabs(base):
        candidates.append(os.path.join(project_root(), base))
        candidates.append(os.path.join(packaged_configs(), _strip_configs_prefix(base)))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise ConfigError(f"{including}: {BASE_KEY} file '{base}' not found (looked for "
                      f"{' and '.join(os.path.abspath(c) for c in candidates)})")


def parse_override(text):
    """'a.b.c=value' -> (['a', 'b', 'c'], value parsed as a YAML scalar or list)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': value is not valid YAML: {err}") from None
    return key.split("."), value


def apply_overrides(cfg, overrides):
    """Apply ['a.b=1', ...] in place. Only existing keys may be set, with a value of a compatible type."""
    for text in overrides or []:
        parts, value = parse_override(text)
        node = cfg
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(
                    f"override '{text}': unknown key '{'.'.join(parts[:i + 1])}' in {cfg.source or 'config'}")
            node = node[part]
        last = parts[-1]
        if not isinstance(node, dict) or last not in node:
            known = sorted(node.keys()) if isinstance(node, dict) else []
            raise ConfigError(f"override '{text}': unknown key '{'.'.join(parts)}' in {cfg.source or 'config'}; "
                              f"keys there: {known}")
        old = node[last]
        if value is None and isinstance(old, dict):
            raise ConfigError(f"override '{text}': key '{'.'.join(parts)}' in {cfg.source or 'config'} is a mapping; "
                              f"null cannot replace it (override its keys instead)")
        if value is None and isinstance(old, (int, float)):  # numbers and switches (bool is an int)
            raise ConfigError(f"override '{text}': key '{'.'.join(parts)}' in {cfg.source or 'config'} is "
                              f"{_type_name(old)} ({old!r}); null is not a {_type_name(old)} (give a value)")
        if not _compatible(old, value):
            raise ConfigError(f"override '{text}': key '{'.'.join(parts)}' in {cfg.source or 'config'} is "
                              f"{_type_name(old)} ({old!r}), got {_type_name(value)}")
        if isinstance(old, dict):
            value = _merge(old.to_dict() if isinstance(old, Config) else old, value, f"override '{text}'",
                           ".".join(parts) + ".")
        node[last] = value
    return cfg


def load_config(path, overrides=None):
    """Load a YAML config with its `_base_` chain and apply `overrides` ('a.b=value' strings)."""
    resolved = resolve_config_path(path)
    cfg = Config(_load_tree(resolved, []), source=resolved)
    return apply_overrides(cfg, overrides)


def resolve_config_path(path):
    """A config given as a path (as given, or relative to the project root, so tools run from any folder) or by
    name: `allinone/vitlarge_eval` is `configs/allinone/vitlarge_eval.yaml` of the checkout or of the installed
    package (the configs ship inside it, see setup.py)."""
    candidates = [path, os.path.join(project_root(), path)]
    if not os.path.isabs(path):
        name = _strip_configs_prefix(path)
        name = name if name.endswith((".yaml", ".yml")) else name + ".yaml"
        candidates += [os.path.join(project_root(), "configs", name), os.path.join(packaged_configs(), name)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise ConfigError(f"config file not found: {path} (a path, or a name such as allinone/vitlarge_eval; also "
                      f"looked for {', '.join(dict.fromkeys(os.path.abspath(c) for c in candidates[1:]))}; "
                      f"packaged configs: {', '.join(packaged_config_names()) or 'none'})")


def _strip_configs_prefix(path):
    parts = path.replace(os.sep, "/").split("/")
    return "/".join(parts[1:]) if len(parts) > 1 and parts[0] == "configs" else path


def project_root():
    """The checkout that holds `configs/` (the parent of this package)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def packaged_configs():
    """Where an installed package keeps the configs (`allinone/configs/`; in a checkout they are in `configs/`)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def packaged_config_names():
    """Names (`allinone/vitlarge_eval`, ...) of the configs found in the checkout's or the package's folder."""
    names = set()
    for folder in (os.path.join(project_root(), "configs"), packaged_configs()):
        for parent, _, files in os.walk(folder):
            for file in files:
                if file.endswith(".yaml"):
                    names.add(os.path.relpath(os.path.join(parent, file), folder)[:-len(".yaml")].replace(os.sep, "/"))
    return sorted(names)
