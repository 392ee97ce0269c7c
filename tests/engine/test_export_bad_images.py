"""tools/export_model.py with an --images file that cannot be read: one `error:` line naming it, and nothing written
(no export files that were never checked)."""
import os
import subprocess

from engine_tools import PYTHON, ROOT, tool_env, user_error_code
from test_export import export, saved_tiny_model


def test_a_missing_images_file_fails_before_anything_is_written(tiny_config, mini_root, tmp_path):
    saved_tiny_model(tiny_config, tmp_path / "model.pdparams")
    good = os.path.join(mini_root, "Market-1501-v15.09.15", "query", sorted(
        os.listdir(os.path.join(mini_root, "Market-1501-v15.09.15", "query")))[0])
    missing = str(tmp_path / "no_such_image.jpg")
    result = export(tiny_config, tmp_path / "model.pdparams", "task3", tmp_path / "export", mini_root,
                    "--images", good, missing)
    assert result.returncode == user_error_code(), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and missing in errors[0], result.stderr[-3000:]
    assert not (tmp_path / "export").exists(), os.listdir(tmp_path / "export")


def test_export_prints_no_paddle_inference_pass_log(tiny_config, mini_root, tmp_path):
    saved_tiny_model(tiny_config, tmp_path / "model.pdparams")
    result = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "export_model.py"), "-c", tiny_config, "--model_path",
                             str(tmp_path / "model.pdparams"), "--task", "task3", "--output", str(tmp_path / "export")],
                            cwd=ROOT, env=tool_env(mini_root, threads=2), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for noise in ("Running PIR pass", "pir_interpreter", "No ccache found", "OMP_NUM_THREADS WISELY"):
        assert noise not in output, output[-3000:]
