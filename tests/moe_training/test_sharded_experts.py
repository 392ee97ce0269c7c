"""Sharded expert storage over 2 launched CPU processes: each rank holds (and its optimizer updates) only its own
tasks' specific experts and gates; the run reaches the parameters of 1 unsharded process; its checkpoint is one file
with every task's experts and optimizer state, loads strictly into a 1-process model and extracts; kill -9 and
--resume of the sharded run is bit-identical to an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
from engine_tools import PYTHON, model_state, run_train, tool_env  # noqa: E402
from test_moe_training import SMALL, TINY, comparable_config  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_worker.py")
TASKS = ("face", "person", "veri", "task6", "task18")
# face on both ranks (its gradient is averaged over its two owners), every other task on one rank
RANKS = "Train.step.ranks_per_task={face: 2}"
OWNED = {0: ("face", "person", "task6"), 1: ("face", "veri", "task18")}
EXPERT_PARAMS = {task: 2 * (64 * 128 + 128 + 128 * 64 + 64 + 2) for task in TASKS}  # 2 blocks: fc1, fc2, gate


@pytest.fixture(scope="module")
def runs(oneforall_root, tmp_path_factory):
    """The comparable config trained 4 steps (checkpoint after 2) by 1 process and by 2 sharded processes."""
    tmp = tmp_path_factory.mktemp("sharded")
    config = comparable_config(tmp / "comparable.yaml")
    common = ["Train.checkpoint_period=2", "Train.checkpoint_keep=0", RANKS]
    single = run_train(config, tmp / "one", oneforall_root, *[a for o in common for a in ("-o", o)])
    assert single.returncode == 0, single.stderr[-3000:]
    reports = launch_workers(2, tmp / "two", config, oneforall_root, *common)
    return {"one": tmp / "one", "two": tmp / "two" / "run", "reports": reports, "config": config}


def launch_workers(nproc, out, config, root, *overrides):
    result = subprocess.run([PYTHON, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc), "--log_dir",
                             str(out / "launch_log"), WORKER, str(out), config, *overrides],
                            cwd=ROOT, env=tool_env(root), capture_output=True, text=True, timeout=300)
    logs = "".join(open(os.path.join(out / "launch_log", name)).read()[-2000:]
                   for name in sorted(os.listdir(out / "launch_log")) if name.startswith("workerlog"))
    assert result.returncode == 0, logs
    return {rank: json.loads((out / f"rank{rank}.json").read_text()) for rank in range(nproc)}


def expert_keys(keys):
    return {key for key in keys if ".mlp.specific_experts." in key or ".mlp.gates." in key}


def test_each_rank_holds_and_updates_only_its_own_tasks_experts(runs):
    full = model_state(runs["one"] / "model_final.pdparams")
    replicated = set(full) - expert_keys(full)
    full_numel = sum(value.size for value in full.values())
    for rank, report in runs["reports"].items():
        held = expert_keys(report["keys"])
        assert {key.split(".")[-1] if ".gates." in key else key.split(".")[5] for key in held} == set(OWNED[rank])
        assert set(report["keys"]) == replicated | held, rank
        not_held = [task for task in TASKS if task not in OWNED[rank]]
        assert report["numel"] == full_numel - sum(EXPERT_PARAMS[task] for task in not_held), rank
        updated = expert_keys(report["optimizer_params"])
        assert updated == held, rank  # the optimizer sees only what the rank holds
        assert not any(".common_expert." in key for key in report["optimizer_params"])
    assert len(runs["reports"][0]["optimizer_state"]) == len(runs["reports"][1]["optimizer_state"])


def test_four_processes_with_two_owner_groups_reach_the_parameters_of_one_process(runs, tmp_path, oneforall_root):
    """face on ranks 0-1 and person on ranks 2-3: their gradients are averaged over those process groups only."""
    reports = launch_workers(4, tmp_path, runs["config"], oneforall_root,
                             "Train.step.ranks_per_task={face: 2, person: 2}")
    owned = {0: {"face", "veri"}, 1: {"face", "task6"}, 2: {"person", "task18"}, 3: {"person"}}
    for rank, report in reports.items():
        assert {key.split(".")[-1] if ".gates." in key else key.split(".")[5]
                for key in expert_keys(report["keys"])} == owned[rank]
    one, four = (model_state(path / "model_final.pdparams") for path in (runs["one"], tmp_path / "run"))
    assert sorted(four) == sorted(one)
    for key in one:
        np.testing.assert_allclose(four[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", ["model_0000001", "model_final"])
def test_the_sharded_checkpoint_is_the_one_process_state_with_every_task(runs, name):
    one = paddle.load(str(runs["one"] / f"{name}.pdparams"), return_numpy=True)
    two = paddle.load(str(runs["two"] / f"{name}.pdparams"), return_numpy=True)
    assert sorted(two["model"]) == sorted(one["model"])
    for task in TASKS:
        assert f"backbone.blocks.1.mlp.specific_experts.{task}.fc2.bias" in two["model"]
    for key, value in one["model"].items():
        np.testing.assert_allclose(two["model"][key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    # optimizer state (momentum) of every parameter, keyed by the same parameter names as the 1-process run's
    tensors = {key for key, value in one["optimizer"].items() if isinstance(value, np.ndarray)}
    assert tensors == {key for key, value in two["optimizer"].items() if isinstance(value, np.ndarray)}
    assert len(tensors) > 40
    for key in tensors:  # momentum buffers: sums of gradients of size ~1 (summed in another order over 2 ranks)
        np.testing.assert_allclose(two["optimizer"][key], one["optimizer"][key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_the_sharded_checkpoint_loads_strictly_into_one_process_and_extracts(runs, tmp_path, oneforall_root,
                                                                             monkeypatch):
    import oneforall.moe_training  # noqa: F401
    from allinone.config import load_config
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint
    from oneforall.extract import main as extract_main

    monkeypatch.setenv("FASTREID_DATASETS", oneforall_root)
    path, config = runs["two"] / "model_final.pdparams", runs["two"] / "config.yaml"
    cfg = load_config(str(config))
    assert "held_tasks" not in cfg.Model.backbone  # the run's config describes the whole model
    model = build_model(cfg)
    report = load_checkpoint(model, str(path))
    assert report.ok and not report.missing and not report.unexpected
    out = tmp_path / "veri.pdparams"
    extract_main(["--paddle_model_path", str(path), "--task_name", "veri", "--config", str(config),
                  "--output", str(out)])
    plain = build_model(load_config(str(out).replace(".pdparams", ".yaml")))
    load_checkpoint(plain, str(out))
    state = model_state(path)
    extracted = {key: value.numpy() for key, value in plain.state_dict().items()}
    pick = model.backbone.gate_picks()[1]["veri"]
    source = "backbone.blocks.1.mlp." + ("specific_experts.veri" if pick == "specific" else "common_expert")
    np.testing.assert_array_equal(extracted["backbone.blocks.1.mlp.fc1.weight"], state[source + ".fc1.weight"])


def test_a_killed_sharded_run_resumed_is_bit_identical(oneforall_root, tmp_path):
    """Hard gates, Mixup/CutMix, triplet, BN necks, two processes with sharded experts."""
    run = [*SMALL, "-o", "Train.max_iter=8", "-o", "Train.checkpoint_period=3", "-o", "Train.checkpoint_keep=2",
           "-o", RANKS]
    env = dict(tool_env(oneforall_root), NPROC="2")

    def launch(name, *extra, **popen):
        return subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "train.sh"), TINY, "-o",
                                 f"Global.output_dir={tmp_path / name}", *run, *extra],
                                cwd=ROOT, env=dict(env, LOG_DIR=str(tmp_path / f"log_{name}")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)

    killed = launch("killed", start_new_session=True)
    marker, deadline = tmp_path / "killed" / "last_checkpoint", time.time() + 240
    while not marker.exists():
        assert killed.poll() is None, (tmp_path / "log_killed" / "workerlog.0").read_text()[-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # the launcher and both workers
    killed.wait(timeout=60)
    assert not (tmp_path / "killed" / "model_final.pdparams").exists(), "the kill came too late to test anything"
    resumed = launch("killed", "--resume")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "log_killed" / "workerlog.0").read_text()[-3000:]
    assert "resumed from" in (tmp_path / "killed" / "log_rank0.txt").read_text()
    straight = launch("straight")
    assert straight.wait(timeout=300) == 0, (tmp_path / "log_straight" / "workerlog.0").read_text()[-3000:]
    expected, got = (model_state(tmp_path / name / "model_final.pdparams") for name in ("straight", "killed"))
    assert sorted(got) == sorted(expected) and len(expert_keys(got)) == 2 * 5 * 5
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
