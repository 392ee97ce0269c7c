"""The YAML config loader: inheritance, overrides and every error case names the key and the file."""
import os
import re

import pytest

from allinone.config import Config, ConfigError, load_config


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_nested_values_are_attributes(tmp_path):
    cfg = load_config(write(tmp_path, "a.yaml", "Model:\n  backbone:\n    depth: 24\n"))
    assert cfg.Model.backbone.depth == 24
    assert cfg["Model"]["backbone"]["depth"] == 24
    assert isinstance(cfg.Model, Config)


def test_missing_attribute_names_the_key_and_file(tmp_path):
    path = write(tmp_path, "a.yaml", "Model: {depth: 1}\n")
    cfg = load_config(path)
    with pytest.raises(AttributeError, match="width"):
        cfg.Model.width
    with pytest.raises(AttributeError, match="a.yaml"):
        cfg.Model.width


def test_child_extends_base_and_merges_dicts(tmp_path):
    write(tmp_path, "base.yaml", "Model:\n  depth: 24\n  dim: 1024\nGlobal:\n  seed: 1\n")
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\nModel:\n  depth: 2\n")
    cfg = load_config(child)
    assert cfg.Model.depth == 2
    assert cfg.Model.dim == 1024
    assert cfg.Global.seed == 1
    assert "_base_" not in cfg


def test_several_bases_apply_in_order(tmp_path):
    write(tmp_path, "one.yaml", "a: 1\nb: 1\n")
    write(tmp_path, "two.yaml", "b: 2\nc: 2\n")
    cfg = load_config(write(tmp_path, "top.yaml", "_base_: [one.yaml, two.yaml]\nc: 3\n"))
    assert (cfg.a, cfg.b, cfg.c) == (1, 2, 3)


def test_base_paths_are_relative_to_the_including_file(tmp_path):
    write(tmp_path, "common/base.yaml", "x: 1\n")
    write(tmp_path, "common/mid.yaml", "_base_: base.yaml\ny: 2\n")
    cfg = load_config(write(tmp_path, "exp/top.yaml", "_base_: ../common/mid.yaml\nz: 3\n"))
    assert (cfg.x, cfg.y, cfg.z) == (1, 2, 3)


def test_lists_are_replaced_not_merged(tmp_path):
    write(tmp_path, "base.yaml", "size: [384, 384]\n")
    cfg = load_config(write(tmp_path, "c.yaml", "_base_: base.yaml\nsize: [32]\n"))
    assert cfg.size == [32]


def test_missing_base_file_is_an_error_naming_both_files(tmp_path):
    child = write(tmp_path, "child.yaml", "_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert "nowhere.yaml" in str(err.value) and "child.yaml" in str(err.value)


def test_circular_base_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "_base_: b.yaml\n")
    write(tmp_path, "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(str(tmp_path / "a.yaml"))


def test_type_mismatch_against_base_names_key_and_file(tmp_path):
    write(tmp_path, "base.yaml", "Model:\n  depth: 24\n")
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\nModel:\n  depth: [1, 2]\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert "Model.depth" in str(err.value) and "child.yaml" in str(err.value)


def test_override_sets_nested_value_parsed_as_yaml(tmp_path):
    path = write(tmp_path, "a.yaml", "Model:\n  depth: 24\n  size: [384, 384]\n  name: vit\n  rate: 0.1\n")
    cfg = load_config(path, ["Model.depth=2", "Model.size=[32, 32]", "Model.name=tiny", "Model.rate=0"])
    assert cfg.Model.depth == 2
    assert cfg.Model.size == [32, 32]
    assert cfg.Model.name == "tiny"
    assert cfg.Model.rate == 0


def test_int_and_float_are_interchangeable_and_null_accepts_anything(tmp_path):
    path = write(tmp_path, "a.yaml", "lr: 0.1\niters: 10\nscale: null\n")
    cfg = load_config(path, ["lr=1", "iters=2.5", "scale=[1, 2]"])
    assert cfg.lr == 1 and cfg.iters == 2.5 and cfg.scale == [1, 2]


def test_unknown_override_key_is_an_error_naming_key_and_file(tmp_path):
    path = write(tmp_path, "a.yaml", "Model:\n  depth: 24\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["Model.detph=2"])
    assert "Model.detph" in str(err.value) and "a.yaml" in str(err.value)
    with pytest.raises(ConfigError, match="Nothing"):
        load_config(path, ["Nothing.depth=2"])


def test_override_type_mismatch_is_an_error(tmp_path):
    path = write(tmp_path, "a.yaml", "Model:\n  depth: 24\n  amp: false\n")
    with pytest.raises(ConfigError, match="Model.depth"):
        load_config(path, ["Model.depth=deep"])
    with pytest.raises(ConfigError, match="Model.amp"):
        load_config(path, ["Model.amp=3"])


def test_override_without_equals_sign_is_an_error(tmp_path):
    path = write(tmp_path, "a.yaml", "a: 1\n")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["a"])


def test_override_into_a_non_mapping_is_an_error(tmp_path):
    path = write(tmp_path, "a.yaml", "a: 1\n")
    with pytest.raises(ConfigError, match="a.b"):
        load_config(path, ["a.b=2"])


def test_invalid_yaml_and_non_mapping_top_level_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(write(tmp_path, "bad.yaml", "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "list.yaml", "- 1\n- 2\n"))


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/does_not_exist.yaml")


def test_dump_round_trips(tmp_path):
    write(tmp_path, "base.yaml", "a: {b: 1, c: [1, 2]}\n")
    cfg = load_config(write(tmp_path, "c.yaml", "_base_: base.yaml\nd: x\n"), ["a.b=5"])
    out = tmp_path / "out" / "resolved.yaml"
    cfg.dump(str(out))
    again = load_config(str(out))
    assert again.to_dict() == cfg.to_dict() == {"a": {"b": 5, "c": [1, 2]}, "d": "x"}


def test_check_keys_rejects_unknown_keys(tmp_path):
    cfg = load_config(write(tmp_path, "a.yaml", "Model: {depth: 1, detph: 2}\n"))
    cfg.Model.check_keys({"depth", "detph"}, "Model")
    with pytest.raises(ConfigError, match="detph"):
        cfg.Model.check_keys({"depth"}, "Model")


def test_every_shipped_config_loads():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    paths = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".yaml")]
    for path in paths:
        load_config(path)


def test_a_base_path_is_tried_relative_to_the_file_then_to_the_project_root(tmp_path):
    outside = write(tmp_path, "elsewhere/mine.yaml", "_base_: configs/allinone/tiny_parity.yaml\nGlobal: {seed: 7}\n")
    cfg = load_config(outside)
    assert cfg.Global.seed == 7 and cfg.Model.backbone.embed_dim == 64
    # a file next to the including one wins over the project's
    write(tmp_path, "elsewhere/configs/allinone/tiny_parity.yaml", "Model: {backbone: {embed_dim: 8}}\n")
    assert load_config(outside).Model.backbone.embed_dim == 8


def test_a_missing_base_says_where_it_looked(tmp_path):
    from allinone.config import project_root

    child = write(tmp_path, "child.yaml", "_base_: configs/nowhere.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert str(tmp_path / "configs" / "nowhere.yaml") in str(err.value)
    assert os.path.join(project_root(), "configs", "nowhere.yaml") in str(err.value)


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("-2.5E+2", -250.0), ("5e4", 50000.0), ("1.", 1.0),
                                         ("[1e-3, 2]", [0.001, 2]), ("x1e3", "x1e3")])
def test_numbers_are_read_as_people_write_them(tmp_path, text, value):
    path = write(tmp_path, "a.yaml", f"lr: 0.1\nname: a\nlist: [0]\nfile_value: {text}\n")
    cfg = load_config(path)
    assert cfg.file_value == value
    key = {float: "lr", list: "list", str: "name"}[type(value)]
    assert load_config(path, [f"{key}={text}"])[key] == value


def test_shipped_learning_rate_override_in_exponent_form_is_a_number():
    cfg = load_config("configs/allinone/vitlarge_4tasks.yaml", ["Optimizer.lr.base_lr=1e-3"])
    assert cfg.Optimizer.lr.base_lr == 0.001


@pytest.mark.parametrize("key", ["Optimizer.grad_clip_norm", "Train.max_iter", "Train.amp.enabled"])
def test_null_cannot_replace_a_number_or_a_switch_from_the_command_line(key):
    with pytest.raises(ConfigError, match=rf"override '{key}=null'.*null is not a"):
        load_config("configs/allinone/vitlarge_4tasks.yaml", [f"{key}=null"])


@pytest.mark.parametrize("key", ["Optimizer.lr", "Train"])
def test_null_cannot_replace_a_mapping_from_the_command_line(key):
    with pytest.raises(ConfigError, match=rf"override '{key}=null'.*is a mapping"):
        load_config("configs/allinone/vitlarge_4tasks.yaml", [f"{key}=null"])


def test_yaml_safe_load_itself_is_left_alone():
    import yaml

    load_config("configs/allinone/tiny_parity.yaml")
    assert yaml.safe_load("1e-3") == "1e-3"


def shipped_configs():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    return sorted(os.path.relpath(os.path.join(d, f), os.path.join(root, ".."))
                  for d, _, files in os.walk(root) for f in files if f.endswith(".yaml"))


@pytest.mark.parametrize("path", shipped_configs())
def test_every_key_of_a_shipped_config_is_read_by_the_tool_it_is_for(path):
    """Evaluation configs pass the evaluation check, training configs the training one too, and the tiny models
    build: no key in a shipped config is silently ignored."""
    from allinone.evaluation.suite import check_evaluation_config
    from allinone.plugins import load_config_plugins

    cfg = load_config(path)
    load_config_plugins(cfg)  # the components of its Global.plugins, as the commands load them
    if cfg.get_path("Global.runner") == "traffic":  # read by oneforall.traffic.train (docs/traffic.md)
        import paddle

        from oneforall.traffic.model import build_traffic_model
        from oneforall.traffic.train import check_config

        check_config(cfg)
        with paddle.LazyGuard():
            build_traffic_model(cfg.Model)
        return
    if "Eval" in cfg:
        check_evaluation_config(cfg)
    if "Train" in cfg:
        from allinone.engine.build import check_training_config

        check_training_config(cfg)
    if "Model" in cfg and list(cfg.Model.backbone.get("img_size") or [384]) == [32, 32]:
        from allinone import build_model

        build_model(cfg)


@pytest.mark.parametrize("path", [p for p in shipped_configs() if "eval" in p or "demo" in p or "4tasks" in p])
@pytest.mark.parametrize("section", ["top", "Global", "Eval", "Eval.datasets[0]"])
def test_a_key_added_to_an_evaluation_section_is_refused_naming_it(path, section):
    from allinone.evaluation.suite import check_evaluation_config

    cfg = load_config(path)
    node = {"top": cfg, "Global": cfg.get("Global"), "Eval": cfg.Eval, "Eval.datasets[0]": cfg.Eval.datasets[0]}[
        section]
    node["image_sise"] = 1
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['image_sise'\]"):
        check_evaluation_config(cfg)


@pytest.mark.parametrize("override, message", [
    ("Eval.batch_size=0", "Eval.batch_size must be an integer >= 1, got 0"),
    ("Eval.num_workers=-1", "Eval.num_workers must be an integer >= 0, got -1"),
    ("Eval.batch_size=2.5", "Eval.batch_size must be an integer >= 1, got 2.5"),
])
def test_eval_counts_out_of_range_are_refused(override, message):
    from allinone.evaluation.suite import check_evaluation_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_evaluation_config(load_config("configs/allinone/tiny_eval.yaml", [override]))


def component_names(node, path=""):
    """(key path, value) of every string a config gives a component by: `name`, `type` and `runner` keys."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("name", "type", "runner") and isinstance(value, str):
                yield where, value
            else:
                yield from component_names(value, where)
    elif isinstance(node, (list, tuple)):
        for position, value in enumerate(node):
            yield from component_names(value, f"{path}[{position}]")


@pytest.mark.parametrize("path", shipped_configs())
def test_a_shipped_config_declares_the_plugin_of_every_component_it_names(path):
    """A component registered by a package other than allinone must come from a module the config lists under
    Global.plugins (or be named by its dotted path): in a checkout that is not installed nothing else imports it.
    Statically, from the registries, because in this process every plugin is already imported."""
    from allinone import registry
    import oneforall.plugin  # noqa: F401  (every registry complete)

    cfg = load_config(path)
    declared = {module.split(".")[0] for module in cfg.get_path("Global.plugins", None) or []}
    tables = [value for value in vars(registry).values() if isinstance(value, registry.Registry)]
    undeclared = []
    for where, name in component_names(cfg):
        if "." in name:
            continue  # a dotted name imports its own module
        packages = {table.get(name).__module__.split(".")[0] for table in tables if name in table}
        if packages and not packages & ({"allinone"} | declared):
            undeclared.append(f"{where}: {name} (from {sorted(packages)})")
    assert not undeclared, f"{path}: Global.plugins does not list the package of " + "; ".join(undeclared)
