"""The eval model's state dict has exactly the original's keys, shapes and order, for every size preset."""
import json

import paddle
import pytest

from allinone import build_model, load_config

# key file of the original -> preset (the heads take the backbone's width)
KEY_FILES = {
    "allinone_vitsmall_keys.json": "small",
    "allinone_vitbase_keys.json": "base",
    "allinone_vitlarge_keys.json": "large",
    "allinone_vithuge_keys.json": "huge",
}


def eval_model_keys(overrides=()):
    cfg = load_config("configs/allinone/vitlarge_eval.yaml", list(overrides))
    with paddle.LazyGuard():  # shapes without allocating the weights
        model = build_model(cfg)
    return [(key, list(value.shape)) for key, value in model.state_dict().items()]


@pytest.fixture
def original_keys(spec_file):
    """`original_keys(file name)`: [(key, shape)] of the original model, in state-dict order."""
    def read(name):
        with open(spec_file("checkpoints", name), encoding="utf-8") as f:
            return list(json.load(f).items())

    return read


def test_vitlarge_eval_config_has_the_310_keys_of_the_released_checkpoint_in_order(original_keys):
    expected = original_keys("allinone_vitlarge_keys.json")
    assert len(expected) == 310
    assert eval_model_keys() == expected


@pytest.mark.parametrize("key_file", ["allinone_vitsmall_keys.json", "allinone_vitbase_keys.json",
                                      "allinone_vithuge_keys.json"])
def test_other_presets_have_the_keys_of_the_original_built_at_that_depth(key_file, original_keys):
    assert eval_model_keys([f"Model.backbone.preset={KEY_FILES[key_file]}"]) == original_keys(key_file)


def test_a_classifier_adds_only_keys_under_heads_classifier(tiny_cfg):
    eval_keys = list(build_model(tiny_cfg).state_dict())
    tiny_cfg.Model.heads.task2.num_classes = 751
    train_state = build_model(tiny_cfg).state_dict()
    assert [key for key in train_state if key not in eval_keys] == ["heads.task2.classifier.weight"]
    assert train_state["heads.task2.classifier.weight"].shape == [64, 751]
    assert [key for key in train_state if key in eval_keys] == eval_keys
