"""Checkpoints and resume with real processes: a SIGKILLed run resumed with --resume ends where an uninterrupted run
ends; a diverged run stops naming the iteration and task after saving the last good state; a file that cannot be
resumed from is one `error:` line naming it; partial files of a crashed save are removed."""
import os
import signal
import subprocess
import time

import numpy as np
import paddle
import pytest

from engine_tools import PYTHON, ROOT, model_state, run_train, tool_env, user_error_code

# The tiny recipe with drop path (rate 0.3 over 2 blocks: paddle's generator decides which rows skip a block), BN
# necks, triplet + CE, P x K sampling and every random augmentation on: only an exact restore of the model, optimizer,
# LR schedule, sampler and RNG states, and augmentation drawn per sample from its position in the task's stream (not
# from whichever read-ahead thread gets to the global RNGs first), gives the same final parameters.
AUGMENT = {"flip_prob": 0.5, "padding": 2, "autoaug_prob": 0.5, "erasing_prob": 0.5}
RUN = ["-o", "Train.max_iter=60", "-o", "Train.checkpoint_period=5", "-o", "Train.checkpoint_keep=2",
       "-o", "Model.backbone.depth=2", "-o", "Model.backbone.drop_path_rate=0.3",
       *[arg for task in ("task1", "task2", "task3", "task4") for key, value in AUGMENT.items()
         for arg in ("-o", f"DataLoader.train.tasks.{task}.transform.{key}={value}")]]


def start_train(config, output_dir, mini_root, *args):
    cmd = [PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", config, "-o", f"Global.output_dir={output_dir}",
           *RUN, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=tool_env(mini_root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, process, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, f"training exited early: {process.stderr.read()[-3000:]}"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def test_a_run_killed_after_a_checkpoint_and_resumed_ends_with_the_parameters_of_an_uninterrupted_run(
        tiny_config, mini_root, tmp_path):
    killed = start_train(tiny_config, tmp_path / "killed", mini_root)
    wait_for(tmp_path / "killed" / "last_checkpoint", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model_final.pdparams").exists(), "the kill came too late to test anything"
    resumed_from = (tmp_path / "killed" / "last_checkpoint").read_text().strip()

    resumed = run_train(tiny_config, tmp_path / "killed", mini_root, *RUN, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (tmp_path / "killed" / "log_rank0.txt").read_text()
    assert f"resumed from {tmp_path / 'killed' / resumed_from}" in log

    uninterrupted = run_train(tiny_config, tmp_path / "straight", mini_root, *RUN)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    expected = model_state(tmp_path / "straight" / "model_final.pdparams")
    got = model_state(tmp_path / "killed" / "model_final.pdparams")
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_a_non_finite_loss_stops_training_naming_iteration_and_task_after_saving_the_last_good_state(
        tiny_config, mini_root, tmp_path):
    """A learning rate of 1e30 blows the weights up at the first step with a non-zero lr (iteration 1)."""
    result = run_train(tiny_config, tmp_path, mini_root, "-o", "Optimizer.lr.base_lr=1.0e+30",
                       "-o", "Optimizer.lr.warmup_fraction=0", "-o", "Train.max_iter=20")
    assert result.returncode == user_error_code()
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: non-finite loss at iteration 1: task(s) ['task1'"), message
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_last_good.pdparams"
    assert int(paddle.load(str(tmp_path / "model_last_good.pdparams"))["iteration"]) == 1  # resumes at the bad step
    assert not (tmp_path / "model_final.pdparams").exists()


def test_a_file_that_cannot_be_resumed_from_is_one_error_line_naming_it(tiny_config, mini_root, tmp_path):
    run = run_train(tiny_config, tmp_path / "run", mini_root, "-o", "Train.max_iter=2", "-o", "Train.checkpoint_period=0")
    assert run.returncode == 0, run.stderr[-3000:]
    final = tmp_path / "run" / "model_final.pdparams"
    weights = tmp_path / "weights.pdparams"
    paddle.save(paddle.load(str(final))["model"], str(weights))
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    for path, reason in ((weights, "not a training checkpoint"), (truncated, "cannot read it as a paddle checkpoint")):
        result = run_train(tiny_config, tmp_path / "again", mini_root, "--resume", str(path))
        assert result.returncode == user_error_code(), result.stderr[-3000:]
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith(f"error: --resume {path}: {reason}"), lines[-1]
        assert "Traceback" not in result.stderr


def test_partial_checkpoint_files_of_a_dead_process_are_removed_at_start_up(tiny_config, mini_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    stale = out / f"model_0000004.pdparams.tmp{dead.pid}"
    stale.write_bytes(b"half a checkpoint")
    result = run_train(tiny_config, out, mini_root, "-o", "Train.max_iter=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not stale.exists()


def test_a_save_that_fails_leaves_no_partial_file(tmp_path):
    from allinone.engine.checkpointer import atomic_save

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    target = tmp_path / "model_final.pdparams"
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"model": {"w": np.zeros(3)}, "data": Unpicklable()}, str(target))
    assert os.listdir(tmp_path) == []
