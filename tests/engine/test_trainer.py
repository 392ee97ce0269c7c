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
    every_task = sorted([(f"task{k}", "loss_cls") for k in (1, 2, 3, 4)]
                        + [(f"task{k}", "loss_triplet") for k in (2, 3, 4)])
    assert recorder.steps == [every_task, every_task]
    assert backbone_batches == [64, 64]  # 4 tasks x 16 images in a single pass per iteration


def test_homogeneous_mode_trains_one_task_per_iteration_in_turn(trainer_for):
    trainer, _ = trainer_for("Train.max_iter=5", "DataLoader.train.mode=homogeneous")
    recorder = RecordLosses()
    trainer.register_hooks([recorder])
    trainer.train()
    tasks = [sorted({task for task, _ in step}) for step in recorder.steps]
    assert tasks == [["task1"], ["task2"], ["task3"], ["task4"], ["task1"]]


def test_the_model_part_of_a_training_checkpoint_loads_strictly_into_the_evaluation_model(trainer_for, tmp_path):
    trainer, cfg = trainer_for("Train.max_iter=2")
    trainer.train()
    path = tmp_path / "out" / "model_final.pdparams"
    state = paddle.load(str(path))
    assert {"model", "optimizer", "lr_scheduler", "iteration", "data", "rng", "step", "scaler"} <= set(state)
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
    assert {"train/total_loss", "train/task1_loss_cls", "train/lr", "train/images_per_second",
            "train/max_mem_mb"} <= set(tags)
    assert [record.id for record in reader.get_data("scalar", "train/lr")] == [1, 2, 3, 4]
    assert [record.id for record in reader.get_data("scalar", "train/images_per_second")] == [2, 4]




def test_train_step_from_the_config_runs_a_sandwich_step_through_the_same_loop_and_hooks(trainer_for, tmp_path):
    trainer, _ = trainer_for("Train.max_iter=2", "Train.step.name=SandwichStep")
    recorder, backbone_batches = RecordLosses(), []
    trainer.register_hooks([recorder])
    trainer.module.backbone.register_forward_pre_hook(lambda layer, inputs: backbone_batches.append(inputs[0].shape[0]))
    trainer.train()
    assert type(trainer.step).__name__ == "SandwichStep" and trainer.step.num_passes == 2
    assert backbone_batches == [32, 32, 32, 32]  # two half-batch passes per iteration
    assert len(recorder.steps) == 2
    state = paddle.load(str(tmp_path / "out" / "model_final.pdparams"))
    from allinone.engine.checkpointer import unpack

    assert unpack(state["step"]) == [{"passes_run": 4}]


def test_gitignore_covers_partial_checkpoints_and_exports():
    import subprocess

    from engine_tools import ROOT

    for path in ("my_runs/model_0000003.pdparams.tmp4242", "my_runs/last_checkpoint.tmp77", "export/model.pdmodel"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"
