"""tools/export_model.py: the exported single-task extractor gives the dygraph model's features."""
import os
import subprocess
import zlib

import numpy as np
import paddle

from allinone.config import load_config
from allinone.modeling import build_model
from engine_tools import PYTHON, ROOT, tool_env


def saved_tiny_model(config, path):
    """A tiny model with trained-looking BN statistics, saved as a training checkpoint ({'model': ...})."""
    paddle.seed(3)
    model = build_model(load_config(config))
    for name, tensor in model.state_dict().items():
        if name.endswith(("_mean", "_variance")):
            rng = np.random.RandomState(zlib.crc32(name.encode()))
            tensor.set_value(rng.uniform(0.5, 1.5, tensor.shape).astype("float32"))
    paddle.save({"model": model.state_dict(), "iteration": 0}, str(path))
    model.eval()
    return model


def export(config, checkpoint, task, output, mini_root, *extra):
    return subprocess.run([PYTHON, os.path.join(ROOT, "tools", "export_model.py"), "-c", config,
                           "--model_path", str(checkpoint), "--task", task, "--output", str(output), *extra],
                          cwd=ROOT, env=tool_env(mini_root), capture_output=True, text=True, timeout=300)


def test_exported_extractor_reproduces_the_dygraph_features_of_its_task(tiny_config, mini_root, tmp_path):
    model = saved_tiny_model(tiny_config, tmp_path / "model.pdparams")
    query = os.path.join(mini_root, "Market-1501-v15.09.15", "query")
    images = sorted(os.path.join(query, name) for name in os.listdir(query))[:3]
    result = export(tiny_config, tmp_path / "model.pdparams", "task3", tmp_path / "export", mini_root,
                    "--images", *images)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Paddle Inference matches the dygraph model" in result.stdout

    exported = paddle.jit.load(str(tmp_path / "export" / "inference"))
    batch = paddle.to_tensor(np.random.RandomState(1).uniform(-1, 1, [5, 3, 32, 32]).astype("float32"))
    with paddle.no_grad():
        expected = model.heads["task3"](model.backbone(batch)).numpy()
        other_head = model.heads["task1"](model.backbone(batch)).numpy()
    got = exported(batch).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, other_head, atol=1e-3)  # it is task3's head, not another one


def test_exporting_an_unknown_task_is_an_error_naming_it(tiny_config, mini_root, tmp_path):
    saved_tiny_model(tiny_config, tmp_path / "model.pdparams")
    result = export(tiny_config, tmp_path / "model.pdparams", "person", tmp_path / "export", mini_root)
    assert result.returncode == 2  # a user error (allinone.utils.cli.USER_ERROR)
    assert "--task: task 'person' has no head" in result.stderr


def config_extending(path, tiny_config, backbone_lines):
    """A config file outside the checkout extending `tiny_config` with extra Model.backbone keys."""
    path.write_text(f"_base_: {tiny_config}\nModel:\n  backbone:\n" + "".join(f"    {line}\n" for line in backbone_lines))
    return str(path)


def test_the_originals_backbone_arguments_export_and_an_unknown_key_is_one_error_line(tiny_config, mini_root,
                                                                                       tmp_path):
    saved_tiny_model(tiny_config, tmp_path / "model.pdparams")
    original = config_extending(tmp_path / "original.yaml", tiny_config,
                                ["sie_xishu: 3.0", "camera: 0", "share_last: true", "use_checkpointing: false"])
    result = export(original, tmp_path / "model.pdparams", "task3", tmp_path / "export", mini_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ignoring the original's argument sie_xishu=3.0" in result.stderr

    misspelt = config_extending(tmp_path / "misspelt.yaml", tiny_config, ["sie_xsihu: 3.0"])
    result = export(misspelt, tmp_path / "model.pdparams", "task3", tmp_path / "export2", mini_root)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # a user error (USER_ERROR)
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {misspelt}: unknown key Model.backbone.sie_xsihu;")
