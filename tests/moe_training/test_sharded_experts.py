"""Sharded expert storage over 2 launched CPU processes: each rank holds (and its optimizer updates) only its own
tasks' specific experts and gates; the run reaches the parameters of 1 unsharded process; its checkpoint is a folder
(allinone.modeling.sharded_checkpoint) in which each task's part is written by its source rank and rank 0 writes only
the replicated part and its own tasks'; together they are the 1-process state, load strictly into a 1-process model,
extract and evaluate as the consolidated single file does; kill -9 and --resume of the sharded run (each rank reading
only its parts) and a resume from the consolidated single file are bit-identical to an uninterrupted run; an
interrupted save is never taken for a checkpoint."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
from engine_tools import launch_script, model_state, run_train, tool_env  # noqa: E402
from test_moe_training import SMALL, TINY, comparable_config  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_worker.py")
TASKS = ("face", "person", "veri", "task6", "task18")
# face on both ranks (its gradient is averaged over its two owners), every other task on one rank
RANKS = "Train.step.ranks_per_task={face: 2}"
OWNED = {0: ("face", "person", "task6"), 1: ("face", "veri", "task18")}
EXPERT_PARAMS = {task: 2 * (64 * 128 + 128 + 128 * 64 + 64 + 2) for task in TASKS}  # 2 blocks: fc1, fc2, gate
SOURCE = {"face": 0, "person": 0, "task6": 0, "veri": 1, "task18": 1}  # the rank that writes each task's part


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
    launch_script(WORKER, [out, config, *overrides], tool_env(root), ROOT, out / "launch_log", nproc=nproc)
    return {rank: json.loads((out / f"rank{rank}.json").read_text()) for rank in range(nproc)}


def expert_keys(keys):
    return {key for key in keys if ".mlp.specific_experts." in key or ".mlp.gates." in key}


def key_task(key):
    return key.split(".")[-1] if ".gates." in key else key.split(".")[5]


def checkpoint_state(path):
    """{"model": {key: numpy}, "optimizer": {key: numpy or other}} of a checkpoint file or sharded folder (all
    parts)."""
    from allinone.modeling.sharded_checkpoint import read_parts

    state = read_parts(str(path)) if os.path.isdir(path) else paddle.load(str(path))
    return {name: {key: value.numpy() if isinstance(value, paddle.Tensor) else value
                   for key, value in state[name].items()} for name in ("model", "optimizer")}


def moe_model_state(path):
    return checkpoint_state(path)["model"]


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
    one, four = model_state(runs["one"] / "model_final.pdparams"), moe_model_state(tmp_path / "run" / "model_final")
    assert sorted(four) == sorted(one)
    for key in one:
        np.testing.assert_allclose(four[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", ["model_0000001", "model_final"])
def test_the_sharded_checkpoint_is_the_one_process_state_with_every_task(runs, name):
    one = paddle.load(str(runs["one"] / f"{name}.pdparams"), return_numpy=True)
    two = checkpoint_state(runs["two"] / name)
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


@pytest.mark.parametrize("name", ["model_0000001", "model_final"])
def test_each_task_part_is_written_by_its_source_rank_and_holds_only_that_task(runs, name):
    from oneforall.expert_shards import expert_task

    folder = runs["two"] / name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {part: entry["rank"] for part, entry in manifest["parts"].items()} == {
        "replicated": 0, **{f"experts.{task}": rank for task, rank in SOURCE.items()}}
    assert sorted(os.listdir(folder)) == sorted(["manifest.json", *(entry["file"]
                                                                    for entry in manifest["parts"].values())])
    replicated = paddle.load(str(folder / "replicated.pdparams"))
    assert not expert_keys(replicated["model"]) and len(replicated["model"]) > 40
    assert {"iteration", "lr_scheduler", "data", "rng", "step", "scaler"} <= set(replicated)
    # the optimizer entries of a task's parameters are in its part only (found by parameter name, as a resume does)
    one = paddle.load(str(runs["one"] / f"{name}.pdparams"))
    optimizer_keys = {key for key, value in one["optimizer"].items() if isinstance(value, paddle.Tensor)}
    per_task = {}
    for task in TASKS:
        part = paddle.load(str(folder / f"experts.{task}.pdparams"))
        assert set(part) == {"model", "optimizer"}
        assert {key_task(key) for key in part["model"]} == {task}
        assert all(expert_task(key) == task for key in part["model"])
        assert len(part["model"]) == 2 * 5 and len(part["optimizer"]) == 2 * 5  # 2 blocks: fc1/fc2 w, b, gate
        per_task[task] = set(part["optimizer"])
    replicated_optimizer = {key for key, value in replicated["optimizer"].items() if isinstance(value, paddle.Tensor)}
    assert replicated_optimizer.isdisjoint(set().union(*per_task.values()))
    assert replicated_optimizer | set().union(*per_task.values()) == optimizer_keys
    # written after every part (a manifest is the mark of a complete save)
    manifest_time = (folder / "manifest.json").stat().st_mtime_ns
    assert all((folder / entry["file"]).stat().st_mtime_ns <= manifest_time for entry in manifest["parts"].values())


def test_each_rank_writes_only_its_parts_and_receives_no_other_rank_s_experts(runs):
    """At every save, the bytes the saving thread of a rank wrote (the kernel's count: files, sockets, logs) cover
    the part files the manifest says it wrote and fall short of one more task part, and the bytes its process read
    meanwhile fall short of one task part: rank 0 neither wrote nor received the other rank's experts and momentum."""
    for rank, report in runs["reports"].items():
        assert [save["name"] for save in report["saves"]] == ["model_0000001", "model_final"]
        for save in report["saves"]:
            folder = runs["two"] / save["name"]
            sizes = {entry["rank"]: {} for entry in [{"rank": 0}, {"rank": 1}]}
            for part, entry in json.loads((folder / "manifest.json").read_text())["parts"].items():
                sizes[entry["rank"]][part] = (folder / entry["file"]).stat().st_size
            mine = sum(sizes[rank].values())
            smallest_other = min(sizes[1 - rank].values())
            assert mine <= save["written"] < mine + smallest_other, (rank, save, sizes)
            assert save["read"] < smallest_other, (rank, save, sizes)


def test_the_sharded_checkpoint_loads_strictly_into_one_process_extracts_and_evaluates_as_the_single_file(
        runs, tmp_path, oneforall_root, monkeypatch):
    import oneforall.moe_training  # noqa: F401
    from allinone.config import load_config
    from allinone.evaluation.suite import EvaluationSuite
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint
    from allinone.modeling.sharded_checkpoint import main as consolidate_main
    from oneforall.extract import main as extract_main

    monkeypatch.setenv("FASTREID_DATASETS", oneforall_root)
    folder, config = runs["two"] / "model_final", runs["two"] / "config.yaml"
    single = tmp_path / "single.pdparams"
    assert consolidate_main([str(folder), str(single)]) in (0, None)
    consolidated = paddle.load(str(single), return_numpy=True)
    reference = checkpoint_state(folder)
    assert sorted(consolidated["model"]) == sorted(reference["model"]) and consolidated["iteration"] == 4
    cfg = load_config(str(config))
    assert "held_tasks" not in cfg.Model.backbone  # the run's config describes the whole model
    cfg.Eval.datasets = [entry for entry in cfg.Eval.datasets if entry.name in ("VeRi", "CIFAR10")]
    results, picks = {}, {}
    for source in (folder, single):
        model = build_model(cfg)
        report = load_checkpoint(model, str(source))  # a 1-process model: every task's part is read
        assert report.ok and not report.missing and not report.unexpected
        model.eval()
        results[source] = EvaluationSuite(cfg, print_table=False)(model)
        picks[source] = model.backbone.gate_picks()
    assert list(results[folder]) and results[folder] == results[single]
    extracted = {}
    for index, source in enumerate((folder, single)):
        out = tmp_path / f"extracted{index}" / "veri.pdparams"
        extract_main(["--paddle_model_path", str(source), "--task_name", "veri", "--config", str(config),
                      "--output", str(out)])
        plain = build_model(load_config(str(out).replace(".pdparams", ".yaml")))
        load_checkpoint(plain, str(out))
        extracted[source] = {key: value.numpy() for key, value in plain.state_dict().items()}
    assert sorted(extracted[folder]) == sorted(extracted[single])
    for key, value in extracted[single].items():
        np.testing.assert_array_equal(extracted[folder][key], value, err_msg=key)
    pick = picks[folder][1]["veri"]
    source = "backbone.blocks.1.mlp." + ("specific_experts.veri" if pick == "specific" else "common_expert")
    np.testing.assert_array_equal(extracted[folder]["backbone.blocks.1.mlp.fc1.weight"],
                                  reference["model"][source + ".fc1.weight"])


def dead_pid():
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_interrupted_save_is_never_taken_for_a_checkpoint(runs, tmp_path):
    from allinone.engine.build import find_resume_checkpoint
    from allinone.engine.checkpointer import Checkpointer, ResumeError
    from allinone.modeling.sharded_checkpoint import IncompleteCheckpointError

    out = tmp_path / "run"
    shutil.copytree(runs["two"], out)
    assert Checkpointer(str(out)).latest() == str(out / "model_final")
    (out / "model_final" / "manifest.json").unlink()  # killed before every rank had written its part
    assert Checkpointer(str(out)).latest() == str(out / "model_0000001")
    with pytest.raises(ResumeError, match=r"model_final/manifest\.json is missing"):
        find_resume_checkpoint(str(out), str(out / "model_final"))
    stale = out / "model_0000001" / f"experts.veri.pdparams.tmp{dead_pid()}"  # a killed writer's temporary
    stale.write_bytes(b"partial")
    Checkpointer(str(out), clean=True)
    assert not stale.exists()
    (out / "model_0000001" / "experts.veri.pdparams").unlink()  # a part lost
    with pytest.raises(ResumeError, match=r"experts\.veri\.pdparams \(written by rank 1\)"):
        find_resume_checkpoint(str(out), str(out / "model_0000001"))
    with pytest.raises(IncompleteCheckpointError, match=r"experts\.veri\.pdparams"):
        Checkpointer(str(out)).latest()


@pytest.mark.parametrize("layout", ["folder", "single file"])
def test_a_resumed_sharded_run_continues_bit_identically_each_rank_reading_only_its_parts(layout, runs, tmp_path,
                                                                                          oneforall_root):
    """From the folder each rank reads the replicated part and its own tasks' parts (the bytes its thread read cover
    those files and fall short of one more task part); the older layout (one file with every task: the consolidated
    folder) still resumes, each rank keeping its part of it."""
    from allinone.modeling.sharded_checkpoint import consolidate

    folder = runs["two"] / "model_0000001"
    source = str(folder) if layout == "folder" else consolidate(str(folder), str(tmp_path / "model_0000001.pdparams"))
    reports = launch_workers(2, tmp_path, runs["config"], oneforall_root, "Train.checkpoint_period=0", RANKS,
                             f"--resume={source}")
    expected, got = moe_model_state(runs["two"] / "model_final"), moe_model_state(tmp_path / "run" / "model_final")
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    if layout == "folder":
        parts = json.loads((folder / "manifest.json").read_text())["parts"]
        size = {part: (folder / entry["file"]).stat().st_size for part, entry in parts.items()}
        for rank, report in reports.items():
            mine = size["replicated"] + sum(size[f"experts.{task}"] for task in OWNED[rank])
            others = min(size[f"experts.{task}"] for task in TASKS if task not in OWNED[rank])
            assert mine <= report["resume_read"] < mine + others, (rank, report["resume_read"], size)


def test_a_killed_sharded_run_resumed_is_bit_identical(oneforall_root, tmp_path):
    """Hard gates, Mixup/CutMix, triplet, BN necks, two processes with sharded experts."""
    run = [*SMALL, "-o", "Train.max_iter=8", "-o", "Train.checkpoint_period=3", "-o", "Train.checkpoint_keep=1",
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
    assert not (tmp_path / "killed" / "model_final" / "manifest.json").exists(), "the kill came too late"
    resumed = launch("killed", "--resume")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "log_killed" / "workerlog.0").read_text()[-3000:]
    assert "resumed from" in (tmp_path / "killed" / "log_rank0.txt").read_text()
    straight = launch("straight")
    assert straight.wait(timeout=300) == 0, (tmp_path / "log_straight" / "workerlog.0").read_text()[-3000:]
    log = (tmp_path / "killed" / "log_rank1.txt").read_text()
    assert "reading the parts ['replicated', 'experts.face', 'experts.veri', 'experts.task18']" in log
    expected, got = (moe_model_state(tmp_path / name / "model_final") for name in ("straight", "killed"))
    assert sorted(got) == sorted(expected) and len(expert_keys(got)) == 2 * 5 * 5
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # checkpoint_keep=1: the older periodic folder is gone, every file of it
    assert sorted(name for name in os.listdir(tmp_path / "killed") if name.startswith("model_")) == [
        "model_0000005", "model_final"]
