"""tools/train.py as a user meets it: an output folder that cannot be written (under a file, read-only, a full disk),
an empty config or a negative worker count end with one `error:` line and exit code 2, not a traceback; a run prints
no third-party start-up chatter."""
import os
import subprocess

import pytest
from engine_tools import PYTHON, ROOT, run_train, tool_env, user_error_code


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


def test_an_empty_config_or_a_negative_worker_count_is_one_error_line(tiny_config, mini_root, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert_one_error_line(run_train(str(empty), tmp_path / "run", mini_root), str(empty))
    result = run_train(tiny_config, tmp_path / "run", mini_root, "-o", "DataLoader.train.num_workers=-1")
    assert_one_error_line(result, "DataLoader.train.num_workers", "integer >= 0", "got -1")


def test_a_training_run_prints_no_third_party_start_up_chatter(tiny_config, mini_root, tmp_path):
    """Two threads: Paddle's OMP_NUM_THREADS banner would show; BatchNorm's training note, ccache, glog lines."""
    result = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", tiny_config, "-o",
                             f"Global.output_dir={tmp_path}", "-o", "Train.max_iter=1"], cwd=ROOT,
                            env=tool_env(mini_root, threads=2), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for noise in ("OMP_NUM_THREADS WISELY", "No ccache found", "track global mean and variance", "AVX512",
                  "pkg_resources", "Warning"):
        assert noise not in output, output[-3000:]


def test_evaluation_with_two_threads_prints_no_thread_banner(mini_root, spec_dir):
    result = subprocess.run([PYTHON, os.path.join(ROOT, "evaluation_script.py"), "--config",
                             os.path.join(ROOT, "configs", "allinone", "tiny_eval.yaml"), "--model_path",
                             os.path.join(spec_dir, "reference", "tiny_upstream.pdparams"), "--device", "cpu",
                             "--test_datasets", "LFW"], cwd=ROOT, env=tool_env(mini_root, threads=2),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OMP_NUM_THREADS" not in result.stdout + result.stderr, result.stderr[-3000:]


def test_an_unknown_eval_dataset_names_the_config_key(tiny_config, mini_root, tmp_path):
    result = run_train(tiny_config, tmp_path / "run", mini_root, "-o", "Train.max_iter=1", "-o", "Train.eval_period=1",
                       "-o", "Train.eval_datasets=NoSuchSet")
    assert_one_error_line(result, "Train.eval_datasets", "NoSuchSet")
    assert "--test_datasets" not in result.stderr
