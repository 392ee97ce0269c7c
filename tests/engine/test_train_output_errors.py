"""tools/train.py: an output folder that cannot be written (under a file, read-only, a full disk) ends with one
`error:` line naming Global.output_dir and exit code 2, not a traceback."""
import os

import pytest
from engine_tools import run_train, user_error_code


def assert_one_error_line(result, *fragments):
    assert result.returncode == user_error_code(), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_an_output_dir_under_a_file_is_a_user_error(tiny_config, mini_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_train(tiny_config, blocker / "run", mini_root, "-o", "Train.max_iter=1")
    assert_one_error_line(result, "Global.output_dir", str(blocker / "run"), "cannot write there")


def test_a_read_only_output_dir_is_a_user_error(tiny_config, mini_root):
    read_only = "/sys/allinone_train_output"  # sysfs takes no new folders, even for root
    try:
        os.makedirs(read_only)
    except OSError:
        pass
    else:
        os.rmdir(read_only)
        pytest.skip("/sys takes new folders here")
    result = run_train(tiny_config, read_only, mini_root, "-o", "Train.max_iter=1")
    assert_one_error_line(result, "Global.output_dir", read_only, "cannot write there")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (every write: no space left)")
def test_a_full_disk_while_writing_outputs_is_a_user_error(tiny_config, mini_root, tmp_path):
    (tmp_path / "config.yaml").symlink_to("/dev/full")  # the resolved config is written before training starts
    result = run_train(tiny_config, tmp_path, mini_root, "-o", "Train.max_iter=1")
    assert_one_error_line(result, "Global.output_dir", "No space left on device")
    assert not list(tmp_path.glob("*.pdparams*")), "no checkpoint (or partial file) after the failed write"
