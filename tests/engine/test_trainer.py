"""The training loop in-process on the miniature tree: batch composition, the fused forward, checkpoints, logging."""
import os

import paddle
import pytest

from allinone.config import load_config
from allinone.engine.build import build_trainer
from allinone.engine.trainer import HookBase
from allinone.modeling import build_model
from allinone.modeling.checkpoint import load_checkpoint


class RecordLosses(HookBase):
    def __init__(self):
        self.steps = []

    def after_step(self):
        self.steps.append(sorted(self.trainer.losses))


@pytest.fixture
def trainer_for(tiny_config, mini_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", mini_root)

    def make(*overrides):
        cfg = load_config(tiny_config, [f"Global.output_dir={tmp_path / 'out'}", *overrides])
        paddle.seed(0)
        return build_trainer(cfg), cfg

    return make


def test_heterogeneous_mode_trains_every_task_each_iteration_through_one_backbone_pass(trainer_for):
    trainer, _ = trainer_for("Train.max_iter=2")
    recorder, backbone_batches = RecordLosses(), []
    trainer.register_hooks([recorder])
    trainer.module.backbone.register_forward_pre_hook(lambda layer, inputs: backbone_batches.append(inputs[0].shape[0]))
    trainer.train()
    every_task = sorted([f"task{k}_loss_cls" for k in (1, 2, 3, 4)] + [f"task{k}_loss_triplet" for k in (2, 3, 4)]
                        + ["total_loss"])
    assert recorder.steps == [every_task, every_task]
    assert backbone_batches == [64, 64]  # 4 tasks x 16 images in a single pass per iteration


def test_homogeneous_mode_trains_one_task_per_iteration_in_turn(trainer_for):
    trainer, _ = trainer_for("Train.max_iter=5", "DataLoader.train.mode=homogeneous")
    recorder = RecordLosses()
    trainer.register_hooks([recorder])
    trainer.train()
    tasks = [sorted({name.split("_loss")[0] for name in step} - {"total"}) for step in recorder.steps]
    assert tasks == [["task1"], ["task2"], ["task3"], ["task4"], ["task1"]]


def test_the_model_part_of_a_training_checkpoint_loads_strictly_into_the_evaluation_model(trainer_for, tmp_path):
    trainer, cfg = trainer_for("Train.max_iter=2")
    trainer.train()
    path = tmp_path / "out" / "model_final.pdparams"
    state = paddle.load(str(path))
    assert {"model", "optimizer", "lr_scheduler", "iteration", "data", "rng"} <= set(state)
    assert int(state["iteration"]) == 2
    eval_cfg = load_config(cfg.source)  # heads without classifiers, as evaluation_script.py builds them
    report = load_checkpoint(build_model(eval_cfg), str(path))
    assert report.ok and len(report.skipped_training_only) == 4


def test_periodic_checkpoints_keep_only_the_newest_and_the_pointer_names_the_last(trainer_for, tmp_path):
    trainer, _ = trainer_for("Train.max_iter=7", "Train.checkpoint_period=2", "Train.checkpoint_keep=2")
    trainer.train()
    out = tmp_path / "out"
    assert sorted(name for name in os.listdir(out) if name.endswith(".pdparams")) == [
        "model_0000003.pdparams", "model_0000005.pdparams", "model_final.pdparams"]
    assert (out / "last_checkpoint").read_text() == "model_final.pdparams"
    assert not [name for name in os.listdir(out) if ".tmp" in name]


def test_log_lines_and_visualdl_scalars_report_losses_lr_speed_eta_and_memory(trainer_for, tmp_path, caplog):
    trainer, _ = trainer_for("Train.max_iter=4", "Train.log_period=2")
    with caplog.at_level("INFO", logger="allinone.engine"):
        trainer.train()
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("iter ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    for field in ("task1_loss_cls:", "task2_loss_triplet:", "total_loss:", "lr:", "images/s:", "eta:", "max_mem:"):
        assert field in lines[-1]
    from visualdl import LogReader

    vdl = tmp_path / "out" / "vdl"
    reader = LogReader(file_path=str(vdl / os.listdir(vdl)[0]))
    tags = reader.get_tags()["scalar"]
    assert {"train/total_loss", "train/lr", "train/images_per_second", "train/max_mem_mb"} <= set(tags)
    assert [record.id for record in reader.get_data("scalar", "train/lr")] == [2, 4]


@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_mixed_precision_steps_update_the_parameters_with_finite_values(tiny_config, amp_dtype):
    """The AMP step (auto_cast, GradScaler scale/step/update) is wired right. On CPU paddle turns both into no-ops
    (configs allow AMP on GPUs only), so this checks the calls, not the numerics of mixed precision."""
    import itertools

    import numpy as np

    from allinone.engine.losses import MultiTaskLoss
    from allinone.engine.solver import build_lr_scheduler, build_optimizer
    from allinone.engine.trainer import Trainer

    cfg = load_config(tiny_config, ["Optimizer.lr.warmup_iters=0"])
    for head in cfg.Model.heads.values():
        head.num_classes = 8
    paddle.seed(0)
    model = build_model(cfg)
    rng = np.random.RandomState(0)
    batch = {task: {"images": paddle.to_tensor(rng.uniform(-1, 1, [8, 3, 32, 32]).astype("float32")),
                    "targets": paddle.to_tensor(np.repeat([1, 5], 4))} for task in ("task1", "task2")}
    scheduler = build_lr_scheduler(cfg.Optimizer.lr, 10)
    trainer = Trainer(model, MultiTaskLoss({"task1": cfg.Loss.task1, "task2": cfg.Loss.task2}, ["task1", "task2"]),
                      build_optimizer(cfg.Optimizer, model, scheduler), scheduler, itertools.repeat(batch), 10,
                      amp_dtype=amp_dtype)
    before = model.backbone.blocks[0].attn.qkv.weight.numpy().copy()
    model.train()
    trainer.run_step()
    after = model.backbone.blocks[0].attn.qkv.weight.numpy()
    assert np.isfinite(after).all() and not np.array_equal(after, before)
    assert np.isfinite(trainer.losses["total_loss"])
