"""The original's constructor arguments: those that change nothing here build with a warning, use_checkpointing is
our use_recompute, values this code does not build and truly unknown keys are ConfigErrors naming the key."""
import logging

import pytest

from allinone import ConfigError, build_model

ACCEPTED = [("backbone", "sie_xishu", 3.0), ("backbone", "camera", 0), ("backbone", "share_last", True),
            ("backbone", "hybrid_backbone", None), ("heads", "pool_type", "Identity"), ("heads", "norm_type", "BN"),
            ("heads", "embedding_dim", 0)]


def section(cfg, part):
    return cfg.Model.backbone if part == "backbone" else cfg.Model.heads.task3


@pytest.mark.parametrize("part, name, value", ACCEPTED, ids=[name for _, name, _ in ACCEPTED])
def test_an_argument_that_changes_nothing_builds_the_same_model_with_a_warning(tiny_cfg, caplog, part, name,
                                                                              value):
    plain_keys = {key: value.shape for key, value in build_model(tiny_cfg).state_dict().items()}
    section(tiny_cfg, part)[name] = value
    with caplog.at_level(logging.WARNING, logger="allinone.modeling"):
        model = build_model(tiny_cfg)
    assert f"ignoring the original's argument {name}={value!r}" in caplog.text
    assert {key: value.shape for key, value in model.state_dict().items()} == plain_keys


@pytest.mark.parametrize("value", [True, False])
def test_use_checkpointing_is_use_recompute(tiny_cfg, value):
    tiny_cfg.Model.backbone.use_checkpointing = value
    assert build_model(tiny_cfg).backbone.use_recompute is value


@pytest.mark.parametrize("part, name, value, expected", [
    ("backbone", "camera", 2, "camera=2 is not supported here; expected 0"),
    ("backbone", "share_last", False, "share_last=False is not supported here; expected true"),
    ("backbone", "hybrid_backbone", "resnet50", "hybrid_backbone='resnet50' is not supported here; expected null"),
    ("heads", "norm_type", "GN", "norm_type='GN' is not supported here; expected 'BN'"),
    ("heads", "embedding_dim", 256, "embedding_dim=256 is not supported here; expected 0"),
], ids=["camera", "share_last", "hybrid_backbone", "norm_type", "embedding_dim"])
def test_a_value_that_would_change_the_model_is_an_error_naming_it(tiny_cfg, part, name, value, expected):
    section(tiny_cfg, part)[name] = value
    where = "Model.backbone" if part == "backbone" else "Model.heads.task3"
    with pytest.raises(ConfigError, match=rf"tiny_parity.yaml: {where}: .*{expected}"):
        build_model(tiny_cfg)


@pytest.mark.parametrize("part, key, where", [
    ("backbone", "sie_xsihu", "Model.backbone.sie_xsihu"),
    ("heads", "pool_typ", "Model.heads.task3.pool_typ"),
], ids=["backbone", "head"])
def test_an_unknown_key_is_a_config_error_naming_the_file_and_the_key(tiny_cfg, part, key, where):
    section(tiny_cfg, part)[key] = 1
    with pytest.raises(ConfigError, match=rf"tiny_parity.yaml: unknown key {where};"):
        build_model(tiny_cfg)


def test_an_unknown_component_name_is_a_config_error_naming_the_registered_ones(tiny_cfg):
    tiny_cfg.Model.heads.task1.name = "EmbedingHead"
    with pytest.raises(ConfigError, match=r"Model.heads.task1.name: unknown HEADS 'EmbedingHead'.*EmbeddingHead"):
        build_model(tiny_cfg)
