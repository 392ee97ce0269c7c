"""Training the traffic model in real processes: 2 CPU processes reach the parameters of 1 process with the same
global batches, and a SIGKILLed run resumed with --resume ends with the parameters of an uninterrupted run."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from traffic_tools import ROOT, model_state, run_train, tool_env, train_command, write_config

from oneforall.traffic.mini import make_traffic_tree


@pytest.fixture(scope="module")
def traffic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("traffic_data")
    make_traffic_tree(str(root), seed=0)
    return root


def small(data):
    """Fewer, smaller images than tiny_cpu.yaml, so a step takes a fraction of a second."""
    data["Global"]["num_threads"] = 1
    train = data["Data"]["train"]
    train["segmentation"].update(batch_size=2, transform={"crop_wh": [64, 48], "scales": [0.5, 0.75]})
    train["fgvc"].update(batch_size=4, transform={"size": [32, 32], "autoaug_prob": 0.5, "erasing_prob": 0.5})
    train["trafficsign"].update(batch_size=2, transform={"short_sides": [64], "max_long": 80,
                                                         "crop_short_sides": [64, 72], "crop_range": [48, 64]})
    data["Train"].update(log_period=1, checkpoint_keep=2)
    data["Optimizer"]["lr"]["warmup_fraction"] = 0.34


def comparable(data):
    """What makes 1 and 2 processes comparable (docs/traffic.md, "Training"): classification and detection only
    (segmentation's training-mode BatchNorm and its per-rank pixel mean see only the rank's images), no denoising
    queries and no drop path (their random draws are per process), equal-sized detection images (padding would
    differ), no random erasing. Augmentation draws come from each sample's position in the global stream."""
    small(data)
    del data["Data"]["train"]["segmentation"]
    data["Data"]["train"]["fgvc"]["transform"]["erasing_prob"] = 0.0
    data["Data"]["train"]["trafficsign"]["transform"].update(crop_prob=0.0, max_long=96)
    data["Model"]["heads"]["trafficsign"]["num_denoising"] = 0
    data["Train"].update(max_iter=4, checkpoint_period=0)
    # plain momentum SGD without clipping: parameters move linearly with the gradient, so a wrong average over the
    # ranks shows (Adam's normalised steps and global-norm clipping would hide a wrong scale)
    data["Optimizer"].update(name="Momentum", momentum=0.9, beta1=None, beta2=None, epsilon=None,
                             grad_clip_global_norm=None)
    data["Optimizer"]["lr"]["base_lr"] = 0.01


def test_two_cpu_processes_reach_the_parameters_of_one_process(traffic_root, tmp_path):
    config = write_config(tmp_path / "ddp.yaml", comparable)
    single = run_train(config, tmp_path / "one", traffic_root)
    assert single.returncode == 0, single.stderr[-3000:]
    env = dict(tool_env(traffic_root), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    double = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), config,
                             "-o", f"Global.output_dir={tmp_path / 'two'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, (double.stdout + double.stderr)[-3000:]
    assert "on 2 process(es)" in (tmp_path / "two" / "log_rank0.txt").read_text()
    one = model_state(tmp_path / "one" / "model_final.pdparams")
    two = model_state(tmp_path / "two" / "model_final.pdparams")
    assert sorted(one) == sorted(two)
    moved = [key for key in one if key.startswith("heads.fgvc.")]
    assert moved
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
    from visualdl import LogReader  # the training hooks are AllInOne's, VisualDL writer included

    vdl = tmp_path / "one" / "vdl"
    tags = LogReader(file_path=str(vdl / os.listdir(vdl)[0])).get_tags()["scalar"]
    assert {"train/total_loss", "train/lr", "train/fgvc_loss_ce_cls", "train/trafficsign_loss_giou"} <= set(tags), tags


def test_two_processes_train_segmentation_with_batch_norm_over_both_ranks(traffic_root, tmp_path):
    """All three tasks on 2 CPU processes: the segmentation BatchNorm layers are the cross-rank ones (their
    all-reduces run in every step), and the checkpoint keeps the plain model's keys."""
    def edit(data):
        small(data)
        data["Train"].update(max_iter=2, checkpoint_period=0)

    config = write_config(tmp_path / "sync.yaml", edit)
    env = dict(tool_env(traffic_root), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    double = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), config,
                             "-o", f"Global.output_dir={tmp_path / 'two'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, (double.stdout + double.stderr)[-3000:]
    log = (tmp_path / "two" / "log_rank0.txt").read_text()
    assert "BatchNorm layers: 5 with statistics over 2 ranks" in log, log[-2000:]  # 4 main + 1 shared aux
    state = model_state(tmp_path / "two" / "model_final.pdparams")
    from oneforall.traffic.model import build_traffic_model
    from allinone.config import load_config

    plain = build_traffic_model(load_config(config).Model)
    assert sorted(state) == sorted(plain.state_dict())
    moved = [key for key in state if key.startswith("heads.segmentation.") and key.endswith("_batch_norm._mean")]
    assert moved and all(np.abs(state[key]).sum() > 0 for key in moved)  # running means left their zero start


def wait_for(path, process, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, f"training exited early: {process.stderr.read()[-3000:]}"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def test_a_killed_run_resumed_ends_with_the_parameters_of_an_uninterrupted_run(traffic_root, tmp_path):
    """All three tasks with every random part on (augmentation, denoising noise, class-aware draws)."""
    def edit(data):
        small(data)
        data["Train"].update(max_iter=6, checkpoint_period=2)
        data["Model"]["backbone"]["drop_path_rate"] = 0.1

    config = write_config(tmp_path / "resume.yaml", edit)
    killed = subprocess.Popen(train_command(config, tmp_path / "killed"), cwd=ROOT, env=tool_env(traffic_root),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "killed" / "last_checkpoint", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert not (tmp_path / "killed" / "model_final.pdparams").exists(), "the kill came too late to test anything"
    resumed = run_train(config, tmp_path / "killed", traffic_root, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (tmp_path / "killed" / "log_rank0.txt").read_text()
    straight = run_train(config, tmp_path / "straight", traffic_root)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = model_state(tmp_path / "straight" / "model_final.pdparams")
    got = model_state(tmp_path / "killed" / "model_final.pdparams")
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@pytest.mark.parametrize("module", ["oneforall.traffic.train", "allinone.commands.train"])
def test_the_training_commands_import_paddle_only_after_the_thread_setup(module):
    """The CPU thread count must be in the environment before paddle loads (it is read then), so importing a
    training command must not load paddle: `run` sets the threads first."""
    code = f"import sys, {module}; print('paddle' in sys.modules)"
    result = subprocess.run([__import__("sys").executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
