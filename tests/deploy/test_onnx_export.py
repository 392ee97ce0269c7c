"""ufo-export --format onnx: the ONNX and Paddle Inference files give the dygraph model's features (tiny parity
model, real test images), and a missing converter is a one-line user error."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from allinone.config import load_config
from allinone.modeling import build_model
from allinone.modeling.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "allinone", "tiny_eval.yaml")
WEIGHTS = os.path.join(ROOT, "tests", "fixtures", "spec", "reference", "tiny_upstream.pdparams")


def export(output, *extra, pythonpath=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "-c", CONFIG,
                           "--model_path", WEIGHTS, "--task", "task3", "--output", str(output), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_onnx_and_paddle_inference_equal_the_dygraph_model(mini_root, tmp_path):
    pytest.importorskip("onnxruntime")
    from allinone.data import build_test_transform, read_image
    from allinone.engine.export import onnx_features, predictor_features

    query = os.path.join(mini_root, "Market-1501-v15.09.15", "query")
    paths = sorted(os.path.join(query, name) for name in os.listdir(query))[:4]
    result = export(tmp_path / "out", "--format", "onnx", "--images", *paths)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ONNX Runtime matches the dygraph model (max abs difference" in result.stdout
    assert "Paddle Inference matches the dygraph model" in result.stdout

    model = build_model(load_config(CONFIG))
    load_checkpoint(model, WEIGHTS)
    model.eval()
    transform = build_test_transform(model.backbone.img_size)
    images = np.stack([transform(read_image(path)) for path in paths]).astype("float32")
    with paddle.no_grad():
        expected = model.embed("task3", paddle.to_tensor(images)).numpy()
        other_head = model.embed("task1", paddle.to_tensor(images)).numpy()
    from_onnx = onnx_features(str(tmp_path / "out" / "inference.onnx"), images)
    from_paddle = predictor_features(str(tmp_path / "out" / "inference"), images)
    for got in (from_onnx, from_paddle):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        assert np.abs(got - other_head).max() > 1e-3  # task3's head, not another one
    # the batch size is free: one image alone gives its row of the batch
    np.testing.assert_allclose(onnx_features(str(tmp_path / "out" / "inference.onnx"), images[2:3]),
                               expected[2:3], rtol=0, atol=1e-5)


def test_onnx_without_paddle2onnx_is_a_user_error_naming_what_to_install(tmp_path):
    shadow = tmp_path / "shadow" / "paddle2onnx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named paddle2onnx (test shadow)')\n")
    result = export(tmp_path / "out", "--format", "onnx",
                    pythonpath=os.pathsep.join([str(tmp_path / "shadow"), ROOT]))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: --format onnx needs paddle2onnx" in result.stderr
    assert "pip install paddle2onnx" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before writing anything
