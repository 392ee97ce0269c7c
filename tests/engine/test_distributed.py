"""Data parallel over real processes: `scripts/train.sh` with NPROC=2 CPU processes (gloo) against one process, the
rank-averaged losses and the shared stop on a non-finite loss, and a resume with another process count."""
import json
import os
import subprocess

import numpy as np
import pytest

from engine_tools import ROOT, launch_script, model_state, run_train, tool_env, user_error_code

# What makes the 1- and 2-process runs comparable: each rank's loss is a mean over its half of the same global batch,
# so DataParallel's gradient average equals the 1-process gradient of the mean over the whole batch. That holds for
# the cross-entropy (a per-sample mean; no sample's loss is exactly 0) and for LayerNorm, but not for batch-hard
# triplet mining or training-mode BatchNorm (both see only the rank's samples), nor for drop path (each rank draws its
# own numbers). Random augmentation is fine: a sample's draws come from its position in the global stream, not from
# the rank. The P x K identity sampler draws P identities per rank, so its global batch depends on the number of
# ranks (as the original's); the shuffling TrainingSampler's does not. Hence: CE only, no BN neck, no drop path,
# TrainingSampler. (A standalone config: sampler keys cannot be un-inherited.)
COMPARABLE_YAML = f"""
_base_: {ROOT}/configs/allinone/vitlarge_eval.yaml
Global: {{output_dir: unused, num_threads: 1}}
Model:
  backbone: {{preset: null, img_size: [32, 32], patch_size: 8, stride_size: 8, embed_dim: 32, depth: 1, num_heads: 2,
             mlp_ratio: 2.0, qkv_bias: true, qk_scale: null, drop_path_rate: 0.0}}
  heads:
    task1: {{feat_dim: 32, with_bnneck: false}}
    task2: {{feat_dim: 32, with_bnneck: false}}
    task3: {{feat_dim: 32, with_bnneck: false}}
    task4: {{feat_dim: 32, with_bnneck: false}}
Train: {{max_iter: 6, checkpoint_period: 0, checkpoint_keep: 1, log_period: 1, eval_period: 0, eval_datasets: null,
        amp: {{enabled: false, dtype: float16}}, init_checkpoint: null}}
DataLoader:
  train:
    mode: heterogeneous
    num_workers: 0
    tasks:
      task1: {{datasets: [MS1MV3], batch_size: 16,
              transform: &augment {{size: [32, 32], flip_prob: 0.5, padding: 2, autoaug_prob: 0.5, erasing_prob: 0.5}}}}
      task2: {{datasets: [Market1501, DukeMTMC], batch_size: 16, transform: *augment}}
      task3: {{datasets: [VeRi], batch_size: 8, transform: *augment}}
      task4: {{datasets: [SOP], batch_size: 8, transform: *augment}}
Loss:
  task1: [{{name: CrossEntropyLoss}}]
  task2: [{{name: CrossEntropyLoss}}]
  task3: [{{name: CrossEntropyLoss}}]
  task4: [{{name: CrossEntropyLoss}}]
Optimizer: {{name: Momentum, momentum: 0.9, weight_decay: 1.0e-4, grad_clip_norm: 5.0, bias_lr_factor: 2.0,
            head_lr_scale: {{}}, lr: {{base_lr: 0.01, warmup_iters: 2, eta_min: 0.0001}}}}
"""


def test_two_cpu_processes_reach_the_parameters_of_one_process_with_the_same_global_batch(mini_root, tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(COMPARABLE_YAML)
    single = run_train(str(config), tmp_path / "one", mini_root)
    assert single.returncode == 0, single.stderr[-3000:]

    env = dict(tool_env(mini_root), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    double = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), str(config),
                             "-o", f"Global.output_dir={tmp_path / 'two'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, (double.stdout + double.stderr)[-3000:]
    assert "x 2 process(es)" in (tmp_path / "two" / "log_rank0.txt").read_text()
    assert (tmp_path / "two" / "log_rank1.txt").exists()

    one = model_state(tmp_path / "one" / "model_final.pdparams")
    two = model_state(tmp_path / "two" / "model_final.pdparams")
    assert sorted(one) == sorted(two)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_ranks_log_the_average_of_their_losses_and_a_non_finite_loss_on_one_rank_stops_both(tmp_path, mini_root):
    """Rank 1's batch at iteration 3 holds a NaN: both ranks must stop there with the error (a rank that went on
    would hang in the next step's collective; the timeout turns that into a failure)."""
    worker = os.path.join(ROOT, "tests", "engine", "rank_losses_worker.py")
    launch_script(worker, [tmp_path, "3"], tool_env(mini_root), ROOT, tmp_path / "launch_log", timeout=240)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for r in ranks:
        assert r["error"] and r["error"].startswith("non-finite loss at iteration 3: task(s) ['a']"), r["error"]
        assert len(r["logged"]) == 3  # iterations 0, 1, 2 finished
    for it in range(3):
        local = [r["local"][it]["a/loss_cls"] for r in ranks]
        assert local[0] != pytest.approx(local[1])  # the ranks saw different data
        for r in ranks:
            assert r["logged"][it]["a/loss_cls"] == pytest.approx(sum(local) / 2, rel=1e-6)


def test_a_sandwich_step_over_two_processes_keeps_the_ranks_weights_identical(tmp_path, mini_root):
    """The passes before the last skip DataParallel's gradient all-reduce (no_sync); the last one must average the
    accumulated gradients, or the ranks, which see different data, drift apart."""
    worker = os.path.join(ROOT, "tests", "engine", "rank_losses_worker.py")
    launch_script(worker, [tmp_path, "-1", "SandwichStep"], tool_env(mini_root), ROOT, tmp_path / "launch_log",
                  timeout=240)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["error"] is None and len(ranks[0]["logged"]) == 4
    assert len(ranks[0]["local"]) == 8  # two passes per iteration
    np.testing.assert_allclose(ranks[1]["weight"], ranks[0]["weight"], rtol=1e-6, atol=1e-7)


def test_resuming_a_two_process_checkpoint_with_one_process_is_one_error_line(tmp_path, mini_root):
    config = tmp_path / "ddp.yaml"
    config.write_text(COMPARABLE_YAML)
    env = dict(tool_env(mini_root), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    double = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), str(config), "-o", "Train.max_iter=2",
                             "-o", f"Global.output_dir={tmp_path / 'two'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, (double.stdout + double.stderr)[-3000:]
    checkpoint = tmp_path / "two" / "model_final.pdparams"
    single = run_train(str(config), tmp_path / "one", mini_root, "--resume", str(checkpoint))
    assert single.returncode == user_error_code()
    assert single.stderr.strip().splitlines()[-1] == (
        f"error: {checkpoint} was written by 2 process(es) but this run has 1: resume with the same number of "
        f"processes")
