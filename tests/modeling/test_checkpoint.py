"""load_checkpoint: the official flat state dict and our training checkpoints load strictly; every mismatch or
unreadable file is an error naming the file and the keys."""
import logging

import numpy as np
import paddle
import pytest
from PIL import Image

from allinone import load_checkpoint
from allinone.modeling.checkpoint import CheckpointError


@pytest.fixture
def official_file(tiny_model, tmp_path):
    """A flat state dict saved as the official release is: paddle.save to a '.pdmodel' file."""
    paddle.seed(7)
    state = {key: paddle.randn(value.shape) for key, value in tiny_model.state_dict().items()}
    path = str(tmp_path / "allinone_tiny.pdmodel")
    paddle.save(state, path)
    return path, state


def assert_model_holds(model, state):
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key].numpy(), err_msg=key)


def test_official_state_dict_loads_strictly_and_reports_every_key(tiny_model, official_file):
    path, state = official_file
    report = load_checkpoint(tiny_model, path)
    assert report.ok and report.loaded == list(tiny_model.state_dict())
    assert not (report.missing or report.unexpected or report.shape_mismatched or report.skipped_training_only)
    assert_model_holds(tiny_model, state)


def test_training_checkpoint_model_entry_loads(tiny_model, official_file, tmp_path):
    _, state = official_file
    path = str(tmp_path / "model_0000099.pdparams")
    paddle.save({"model": state, "optimizer": {"lr": paddle.to_tensor(0.1)}, "iteration": 99}, path)
    assert load_checkpoint(tiny_model, path).ok
    assert_model_holds(tiny_model, state)


def test_classifier_keys_of_a_training_checkpoint_are_skipped_by_an_eval_model(tiny_model, official_file, tmp_path):
    _, state = official_file
    path = str(tmp_path / "trained.pdparams")
    paddle.save({"model": {**state, "heads.task1.classifier.weight": paddle.zeros([64, 10])}}, path)
    report = load_checkpoint(tiny_model, path)
    assert report.ok and report.skipped_training_only == ["heads.task1.classifier.weight"]
    assert "skipped 1 training-only key(s)" in str(report)


def test_a_missing_key_is_an_error_naming_it_and_nothing_is_loaded(tiny_model, official_file, tmp_path):
    _, state = official_file
    del state["backbone.blocks.1.attn.qkv.bias"]
    path = str(tmp_path / "partial.pdparams")
    paddle.save(state, path)
    before = {key: value.numpy().copy() for key, value in tiny_model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"partial.pdparams.*\n.*missing from the file: "
                                              r"\['backbone.blocks.1.attn.qkv.bias'\]"):
        load_checkpoint(tiny_model, path)
    for key, value in tiny_model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)


def test_a_wrong_shape_is_an_error_naming_the_key_and_both_shapes(tiny_model, official_file, tmp_path):
    _, state = official_file
    state["backbone.pos_embed"] = paddle.zeros([1, 7, 64])  # 6 patches: no square grid to resample from
    path = str(tmp_path / "other_grid.pdparams")
    paddle.save(state, path)
    with pytest.raises(CheckpointError, match=r"backbone.pos_embed \(model \[1, 5, 64\], file \[1, 7, 64\]\)"):
        load_checkpoint(tiny_model, path)


def test_an_unexpected_key_is_an_error_naming_it(tiny_model, official_file, tmp_path):
    _, state = official_file
    state["backbone.sie_embed"] = paddle.zeros([1, 1, 64])
    path = str(tmp_path / "extra.pdparams")
    paddle.save(state, path)
    with pytest.raises(CheckpointError, match=r"unknown to the model: \['backbone.sie_embed'\]"):
        load_checkpoint(tiny_model, path)


def test_partial_load_loads_the_matching_keys_and_logs_the_rest(tiny_model, official_file, tmp_path, caplog):
    _, state = official_file
    state["backbone.norm.weight"] = paddle.zeros([32])
    del state["heads.task4.bottleneck.0._mean"]
    path = str(tmp_path / "partial.pdparams")
    paddle.save(state, path)
    kept = tiny_model.backbone.norm.weight.numpy().copy()
    with caplog.at_level(logging.WARNING, logger="allinone.checkpoint"):
        report = load_checkpoint(tiny_model, path, strict=False)
    assert report.missing == ["heads.task4.bottleneck.0._mean"]
    assert report.shape_mismatched == [("backbone.norm.weight", [64], [32])]
    assert "heads.task4.bottleneck.0._mean" in caplog.text and "backbone.norm.weight" in caplog.text
    np.testing.assert_array_equal(tiny_model.backbone.norm.weight.numpy(), kept)
    np.testing.assert_array_equal(tiny_model.backbone.cls_token.numpy(), state["backbone.cls_token"].numpy())


def test_a_missing_file_is_an_error_naming_it(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nowhere.pdmodel"):
        load_checkpoint(tiny_model, str(tmp_path / "nowhere.pdmodel"))


def test_a_text_file_is_not_a_checkpoint(tiny_model, tmp_path):
    path = tmp_path / "allinone_vitlarge.pdmodel"
    path.write_text("404: Not Found\n")
    with pytest.raises(CheckpointError, match=f"{path} is not a Paddle checkpoint"):
        load_checkpoint(tiny_model, str(path))


def test_a_jpeg_file_is_not_a_checkpoint(tiny_model, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    with pytest.raises(CheckpointError, match="photo.jpg is not a Paddle checkpoint"):
        load_checkpoint(tiny_model, str(path))


def test_a_pickled_dict_of_other_things_is_not_a_state_dict(tiny_model, tmp_path):
    path = str(tmp_path / "config.pdparams")
    paddle.save({"lr": 0.1, "name": "run1"}, path)
    with pytest.raises(CheckpointError, match=r"config.pdparams is neither a state dict .*\['lr', 'name'\]"):
        load_checkpoint(tiny_model, path)


def test_a_half_precision_checkpoint_loads_in_the_models_dtype(tiny_model, official_file, tmp_path):
    _, state = official_file
    path = str(tmp_path / "fp16.pdparams")
    paddle.save({key: value.astype("float16") for key, value in state.items()}, path)
    assert load_checkpoint(tiny_model, path).ok
    assert tiny_model.backbone.cls_token.dtype == paddle.float32
    np.testing.assert_allclose(tiny_model.backbone.cls_token.numpy(), state["backbone.cls_token"].numpy(),
                               rtol=1e-3, atol=1e-3)
