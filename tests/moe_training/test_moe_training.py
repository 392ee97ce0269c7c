"""Task-MoE training in allinone's engine: 2 launched CPU processes (experts split over them) reach the parameters
of 1 process; kill -9 + --resume = uninterrupted; the common expert stays, specific experts and gates move; gate
logging; the recipe's LR schedule, parameter groups and heterogeneous 24-task batches."""
import os
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
from engine_tools import PYTHON, model_state, optimizer_parameter_keys, run_train, tool_env  # noqa: E402

TINY = os.path.join(ROOT, "configs", "oneforall", "tiny_taskmoe_train.yaml")
RECIPE = os.path.join(ROOT, "configs", "oneforall", "vithuge_taskmoe_24tasks.yaml")
SMALL = ["-o", "Train.log_period=1", "-o", "Train.step.gate_log_period=2",
         *[arg for task in ("face", "person", "veri", "task6", "task18")
           for arg in ("-o", f"DataLoader.train.tasks.{task}.batch_size=8")],
         "-o", "DataLoader.train.tasks.task6.batch_mix.group_rows=4"]  # whole Mixup groups on 1 or 2 processes
# What makes 1 and 2 processes comparable (see tests/engine/test_distributed.py): per-sample-mean losses only (CE,
# no triplet), no BN neck, no drop path, the shuffling TrainingSampler, and the deterministic soft gate (the hard
# gate's Gumbel noise is drawn per rank). Mixup/CutMix stays on: it mixes groups of 2 rows of the global batch of 8
# (whole groups on each of 1, 2 or 4 processes), the same on any number of processes.


def comparable_config(path, *overrides):
    """The tiny config made comparable between 1 and 2 processes (above), written to `path`."""
    from allinone.config import load_config

    cfg = load_config(TINY, [*(o for o in SMALL if o != "-o"), "Train.max_iter=4", "Train.checkpoint_period=0",
                             "Model.backbone.gate=soft", "DataLoader.train.tasks.task6.batch_mix.group_rows=2",
                             *overrides])
    for task in ("person", "veri"):
        cfg.Loss[task] = [{"name": "CrossEntropyLoss"}]
        cfg.DataLoader.train.tasks[task]["sampler"] = {"name": "TrainingSampler"}
    for task in ("face", "person", "veri"):
        cfg.Model.heads[task]["with_bnneck"] = False
    cfg.dump(str(path))
    return str(path)


@pytest.fixture(scope="module")
def demo_root(oneforall_root):
    return oneforall_root


def test_two_processes_with_split_experts_reach_the_parameters_of_one_process(demo_root, tmp_path):
    config = comparable_config(tmp_path / "comparable.yaml")
    single = run_train(config, tmp_path / "one", demo_root)
    assert single.returncode == 0, single.stderr[-3000:]
    env = dict(tool_env(demo_root), NPROC="2", LOG_DIR=str(tmp_path / "launch_log"))
    double = subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), config, "-o",
                             f"Global.output_dir={tmp_path / 'two'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, (double.stdout + double.stderr)[-3000:]
    assert "x 2 process(es)" in (tmp_path / "two" / "log_rank0.txt").read_text()
    from allinone.modeling.checkpoint import read_state_dict

    one = model_state(tmp_path / "one" / "model_final.pdparams")
    two = {key: value.numpy() for key, value in read_state_dict(str(tmp_path / "two" / "model_final")).items()}
    assert sorted(one) == sorted(two)
    # the folder of the sharded run holds every task's experts and gates (tests/moe_training/test_sharded_experts.py)
    for task in ("face", "person", "veri", "task6", "task18"):
        assert f"backbone.blocks.1.mlp.specific_experts.{task}.fc1.weight" in two
        assert f"backbone.blocks.1.mlp.gates.{task}" in two
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_killed_run_resumed_ends_with_the_parameters_of_an_uninterrupted_run(demo_root, tmp_path):
    """Hard gates (Gumbel noise from paddle's generator), Mixup/CutMix, triplet, BN necks: all restored."""
    run = [*SMALL, "-o", "Train.max_iter=14", "-o", "Train.checkpoint_period=4", "-o", "Train.checkpoint_keep=2"]
    cmd = [PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", TINY, "-o",
           f"Global.output_dir={tmp_path / 'killed'}", *run]
    killed = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(demo_root), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "killed" / "last_checkpoint"
    import time

    deadline = time.time() + 180
    while not marker.exists():
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model_final.pdparams").exists(), "the kill came too late to test anything"
    resumed = run_train(TINY, tmp_path / "killed", demo_root, *run, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (tmp_path / "killed" / "log_rank0.txt").read_text()
    straight = run_train(TINY, tmp_path / "straight", demo_root, *run)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected, got = (model_state(tmp_path / name / "model_final.pdparams") for name in ("straight", "killed"))
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def build_tiny_trainer(root, output_dir, *overrides):
    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import load_config
    from allinone.engine.build import build_trainer

    os.environ["FASTREID_DATASETS"] = root
    cfg = load_config(TINY, [f"Global.output_dir={output_dir}", "Train.checkpoint_period=0",
                             *[o for o in SMALL if o != "-o"], *overrides])
    return build_trainer(cfg)


def test_common_expert_stays_while_specific_experts_and_gates_move(demo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", demo_root)
    paddle.seed(0)
    trainer = build_tiny_trainer(demo_root, str(tmp_path), "Train.max_iter=12")
    before = {key: value.numpy().copy() for key, value in trainer.module.state_dict().items()}
    trainer.train()
    after = {key: value.numpy() for key, value in trainer.module.state_dict().items()}
    common = [key for key in before if ".mlp.common_expert." in key]
    specific = [key for key in before if ".mlp.specific_experts." in key and key.endswith("weight")]
    gates = [key for key in before if ".mlp.gates." in key]
    assert len(common) == 8 and len(specific) == 20 and len(gates) == 10
    for key in common:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    for key in specific + gates:
        assert np.abs(after[key] - before[key]).max() > 0, key
    # gate values per (task, block) went to the storage every 2 iterations
    history = trainer.storage.history("gate/task18/block1")
    assert [it for it, _ in history] == [0, 2, 4, 6, 8, 10]
    assert history[0][1] == 0.5 and history[-1][1] != 0.5  # the first update has lr 0 (warm-up from 0)
    logits = after["backbone.blocks.1.mlp.gates.task18"].reshape(-1) / 5.0
    expected = np.exp(logits[1]) / np.exp(logits).sum()
    assert oneforall_gate_table(trainer)[4, 1] == pytest.approx(expected, rel=1e-5)


def trained_parameters(trainer):
    trainer.train()
    return {key: value.numpy().copy() for key, value in trainer.module.state_dict().items()}


def test_unpicked_experts_decay_as_with_the_released_formula(demo_root, tmp_path, monkeypatch):
    """Task veri's gates pick the common FFN on every row (logits [60, 0] against Gumbel noise of at most +-12), so
    its specific experts are in no graph. The released formula (0 x expert) gave them zero gradients, and weight
    decay shrank them; the default runner must do the same: the parameters after an update equal the formula's run
    (one update: the rows are summed in another order, and in this config (CosFace, triplet, BN necks) that
    rounding grows to 1e-5 by the second update)."""
    monkeypatch.setenv("FASTREID_DATASETS", demo_root)
    runs = {}
    for runner in ("both", "picked"):
        paddle.seed(0)
        trainer = build_tiny_trainer(demo_root, str(tmp_path / runner), "Train.max_iter=1",
                                     "Optimizer.weight_decay=0.5", "Optimizer.lr.warmup_fraction=0.0")
        for block in trainer.module.backbone.blocks:
            block.mlp.expert_runner = runner
            block.mlp.gates["veri"].set_value(paddle.to_tensor([[60.0, 0.0]]))
        before = {key: value.numpy().copy() for key, value in trainer.module.state_dict().items()}
        runs[runner] = trained_parameters(trainer)
    unused = [key for key in before if ".specific_experts.veri." in key]
    assert len(unused) == 8
    for key in (key for key in unused if key.endswith("weight")):  # decayed: w <- w - lr * wd * w
        assert np.abs(runs["picked"][key]).sum() < 0.99 * np.abs(before[key]).sum(), key
    for key in before:
        np.testing.assert_allclose(runs["picked"][key], runs["both"][key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_two_passes_per_update_reach_the_parameters_of_one_pass(demo_root, tmp_path, monkeypatch):
    """Gradient accumulation: each task's 8 rows as 2 passes of 4 (losses weighted 1/2, one update) = 1 pass of 8,
    on the comparable config (per-sample-mean losses, soft gate, Mixup on: it mixes before the batch is cut)."""
    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import load_config
    from allinone.engine.build import build_trainer

    monkeypatch.setenv("FASTREID_DATASETS", demo_root)
    config = comparable_config(tmp_path / "comparable.yaml", "Train.max_iter=3")
    runs = {}
    for passes in (1, 2):
        paddle.seed(0)
        trainer = build_trainer(load_config(config, [f"Global.output_dir={tmp_path / str(passes)}",
                                                     f"Train.step.num_passes={passes}"]))
        assert trainer.step.num_passes == passes
        runs[passes] = trained_parameters(trainer)
        losses = trainer.storage.history("total_loss")
        runs[passes, "loss"] = [value for _, value in losses]
    np.testing.assert_allclose(runs[2, "loss"], runs[1, "loss"], rtol=1e-5)
    for key in runs[1]:
        np.testing.assert_allclose(runs[2][key], runs[1][key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_num_passes_must_be_a_positive_integer():
    from oneforall.moe_training import TaskMoEStep

    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_passes"):
            TaskMoEStep(num_passes=bad)


def oneforall_gate_table(trainer):
    from oneforall.moe_training import gate_table

    return gate_table(trainer.module.backbone)


def test_gate_heatmap_is_an_rgb_picture_of_the_gate_table():
    from oneforall.moe_training import gate_heatmap

    table = np.array([[0.5, 0.9, 0.1], [0.2, 0.5, 0.7]], dtype=np.float32)
    picture = gate_heatmap(table, ["face", "task6"])
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 10


def test_recipe_lr_schedule_hits_the_released_values():
    from allinone.config import load_config
    from allinone.engine.solver import build_lr_scheduler

    cfg = load_config(RECIPE)
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, int(cfg.Train.max_iter))
    values = {}
    for it in range(60000):
        if it in (0, 3000, 6000, 20000, 33000, 59999):
            values[it] = scheduler.get_lr()
        scheduler.step()
    assert values[0] == 0.0 and values[3000] == pytest.approx(0.1) and values[6000] == pytest.approx(0.2)
    assert values[20000] == pytest.approx(0.169252, abs=1e-6)
    assert values[33000] == pytest.approx(0.102, abs=1e-6)
    assert values[59999] == pytest.approx(0.004, abs=1e-6)


TASK_SCALES = {"face": 2.0, "person": 1.0, "veri": 2.0, "sop": 1.0, "task6": 0.5, "task1": 0.25, "task24": 0.25}


def test_recipe_parameter_groups_match_the_original(monkeypatch):
    """Common FFN frozen, a task's embeddings and expert at its scale (biases x2), gates and the rest x1, the
    classification Linear at 0.1 / 0.2, BN running statistics outside the optimizer."""
    import oneforall.moe_training  # noqa: F401
    from allinone.config import load_config
    from allinone.engine.solver import build_lr_scheduler, build_optimizer
    from allinone.modeling import build_model

    cfg = load_config(RECIPE)
    tiny = {"preset": None, "img_size": [28, 28], "embed_dim": 16, "depth": 1, "num_heads": 2, "head_dim": 8,
            "mlp_ratio": 2.0, "qkv_bias": True, "qk_scale": None, "choices": {"num_heads": [2], "mlp_ratio": [2.0], "embed_dim": [16],
                                                            "depth": [1], "img_size": [28]}}
    for key, value in tiny.items():
        cfg.Model.backbone[key] = value
    for head in cfg.Model.heads:
        cfg.Model.heads[head].num_classes = 3
    assert list(cfg.Model.heads) == list(cfg.Model.backbone.tasks) == list(cfg.DataLoader.train.tasks)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg.Optimizer, model, build_lr_scheduler(cfg.Optimizer.lr, 60000))
    for param in model.parameters():  # one update with every parameter given a gradient: the optimizer then holds
        param.grad = paddle.zeros_like(param)  # state for exactly the parameters it updates
    optimizer.step()
    in_optimizer = set(optimizer_parameter_keys(model, optimizer))
    lr = {name: (param.optimize_attr["learning_rate"] if name in in_optimizer else None)
          for name, param in model.named_parameters()}
    for name, value in lr.items():
        if ".common_expert." in name or name.endswith(("_mean", "_variance")):
            assert value is None, name
    for task, scale in TASK_SCALES.items():
        assert lr[f"backbone.blocks.0.mlp.specific_experts.{task}.fc1.weight"] == scale
        assert lr[f"backbone.blocks.0.mlp.specific_experts.{task}.fc1.bias"] == 2 * scale
        assert lr[f"backbone.patch_embeds.{task}.proj.weight"] == scale
        assert lr[f"backbone.cls_tokens.{task}"] == lr[f"backbone.pos_embeds.{task}"] == scale
        assert lr[f"backbone.blocks.0.mlp.gates.{task}"] == 1.0
    assert lr["backbone.blocks.0.attn.qkv.weight"] == 1.0 and lr["backbone.blocks.0.attn.qkv.bias"] == 2.0
    assert lr["heads.task6.linear.weight"] == pytest.approx(0.1) and lr["heads.task6.linear.bias"] == pytest.approx(0.2)
    assert optimizer._momentum == 0.0 and cfg.Optimizer.weight_decay == 1e-4 and cfg.Optimizer.lr.base_lr == 0.2
    assert cfg.Optimizer.grad_clip_norm == 5.0 and cfg.Model.backbone.drop_path_rate == 0.2
    assert cfg.Model.backbone.use_recompute is True


def test_recipe_batches_are_heterogeneous_over_all_24_tasks(oneforall_root, train_loader):
    import oneforall.moe_training  # noqa: F401
    from allinone.config import load_config

    cfg = load_config(RECIPE)
    tasks = cfg.DataLoader.train.tasks.to_dict()
    batches = {task: spec["batch_size"] for task, spec in tasks.items()}
    assert sum(batches.values()) == 6880 and len(tasks) == 24
    assert sum(cfg.Train.step.ranks_per_task.values()) == 48
    for spec in tasks.values():  # shrink for the miniature tree: 4 images of 16 x 16 per task, no AutoAugment
        spec["batch_size"] = 4
        spec["transform"] = {"size": [16, 16], "autoaug_prob": 0.0}
        if spec.get("sampler", {}).get("name") == "IdentitySampler":
            spec["sampler"] = {"name": "IdentitySampler", "num_instances": 2}
        if "batch_mix" in spec:
            spec["batch_mix"]["group_rows"] = 4
    loader = train_loader(tasks, root=oneforall_root)
    batch = next(loader)
    assert list(batch) == list(tasks)
    for task, task_batch in batch.items():
        assert task_batch["images"].shape == [4, 3, 16, 16], task
    assert batch["task6"]["targets"].shape == [4, 3]  # the ImageNet task's soft (mixed) targets
    assert batch["person"]["dataset_name"] == ["PersonAll"] * 4 and batch["veri"]["dataset_name"] == ["veriall"] * 4


def test_init_from_a_plain_vit_puts_its_ffn_into_every_expert(demo_root, tmp_path, monkeypatch):
    from allinone.config import load_config
    from allinone.modeling import build_model

    monkeypatch.setenv("FASTREID_DATASETS", demo_root)
    plain_cfg = load_config(TINY)
    plain_cfg.Model.backbone["name"] = "VisionTransformer"
    for key in ("tasks", "tau", "gate", "train_common_expert", "choices", "head_dim"):
        del plain_cfg.Model.backbone[key]
    plain_cfg.Model["heads"] = {}
    paddle.seed(5)
    plain = build_model(plain_cfg)
    path = tmp_path / "plain.pdparams"
    paddle.save(plain.state_dict(), str(path))
    trainer = build_tiny_trainer(demo_root, str(tmp_path / "out"), "Train.max_iter=1",
                                 "Optimizer.lr.warmup_fraction=1.0", f"Train.step.init_checkpoint={path}")
    trainer.train()  # iteration 0 has lr 0: the loaded weights stay as loaded
    state = {k: v.numpy() for k, v in trainer.module.state_dict().items()}
    source = {k: v.numpy() for k, v in plain.state_dict().items()}
    for expert in ("common_expert", "specific_experts.face", "specific_experts.task18"):
        np.testing.assert_array_equal(state[f"backbone.blocks.1.mlp.{expert}.fc2.weight"],
                                      source["backbone.blocks.1.mlp.fc2.weight"])
    np.testing.assert_array_equal(state["backbone.patch_embeds.veri.proj.weight"],
                                  source["backbone.patch_embed.proj.weight"])
    np.testing.assert_array_equal(state["backbone.blocks.0.attn.qkv.weight"], source["backbone.blocks.0.attn.qkv.weight"])
