"""The training configs load, and a mistyped key is an error naming it (never silently ignored)."""
import pytest

from allinone.config import ConfigError, load_config
from allinone.engine.build import check_training_config, size_heads
from engine_tools import ROOT


@pytest.mark.parametrize("name", ["vitlarge_4tasks.yaml", "tiny_demo.yaml"])
def test_shipped_training_configs_pass_the_checks(name):
    check_training_config(load_config(f"{ROOT}/configs/allinone/{name}"))


def test_recipe_config_has_the_published_batches_losses_and_solver():
    cfg = load_config(f"{ROOT}/configs/allinone/vitlarge_4tasks.yaml")
    tasks = cfg.DataLoader.train.tasks
    assert [tasks[t].batch_size for t in ("task1", "task2", "task3", "task4")] == [1024, 512, 512, 512]
    assert cfg.Model.backbone.drop_path_rate == 0.2 and cfg.Model.backbone.img_size == [384, 384]
    assert [loss.name for loss in cfg.Loss.task1] == ["CrossEntropyLoss"]
    assert [loss.name for loss in cfg.Loss.task2] == ["CrossEntropyLoss", "TripletLoss"]
    assert (cfg.Train.max_iter, cfg.Optimizer.lr.base_lr) == (100000, 0.2)


@pytest.mark.parametrize("section, line, message", [
    ("Train", "max_iters: 10", r"unknown key\(s\) \['max_iters'\] in section 'Train'"),
    ("Optimizer", "weight_decay_norm: 0.0001", r"unknown key\(s\) \['weight_decay_norm'\] in section 'Optimizer'"),
    ("DataLoader", "test: {}", r"unknown key\(s\) \['test'\] in section 'DataLoader'"),
    ("Global", "out_dir: x", r"unknown key\(s\) \['out_dir'\] in section 'Global'"),
])
def test_an_unknown_key_in_a_training_section_is_an_error_naming_it(tmp_path, section, line, message):
    path = tmp_path / "typo.yaml"
    path.write_text(f"_base_: {ROOT}/configs/allinone/tiny_demo.yaml\n{section}:\n  {line}\n")
    with pytest.raises(ConfigError, match=message):
        check_training_config(load_config(str(path)))


def test_an_unknown_section_is_an_error(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(f"_base_: {ROOT}/configs/allinone/tiny_demo.yaml\nOptimiser:\n  name: Momentum\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['Optimiser'\]"):
        check_training_config(load_config(str(path)))


def test_heads_get_the_number_of_identities_of_their_task():
    cfg = load_config(f"{ROOT}/configs/allinone/tiny_demo.yaml")
    size_heads(cfg, {"task1": 8, "task2": 16, "task3": 15, "task4": 6})
    assert [cfg.Model.heads[h].num_classes for h in ("task1", "task2", "task3", "task4")] == [8, 16, 15, 6]


def test_two_tasks_training_one_head_is_an_error():
    cfg = load_config(f"{ROOT}/configs/allinone/tiny_demo.yaml")
    cfg.Model.task_to_head = {"task2": "task3"}
    with pytest.raises(ConfigError, match="tasks 'task2' and 'task3' both train head 'task3'"):
        size_heads(cfg, {"task2": 16, "task3": 15})


def test_shortening_the_demo_run_from_the_command_line_keeps_a_valid_warmup():
    from allinone.engine.solver import build_lr_scheduler

    cfg = load_config(f"{ROOT}/configs/allinone/tiny_demo.yaml", ["Train.max_iter=100"])
    check_training_config(cfg)
    assert build_lr_scheduler(cfg.Optimizer.lr, cfg.Train.max_iter).warmup_iters == 10


@pytest.mark.parametrize("override, message", [
    ("Train.max_iter=10.5", r"Train.max_iter in .* must be an integer >= 1, got 10.5"),
    ("Train.max_iter=0", r"Train.max_iter in .* must be an integer >= 1, got 0"),
    ("Train.checkpoint_period=-1", r"Train.checkpoint_period in .* must be an integer >= 0, got -1"),
    ("Train.log_period=2.0", r"Train.log_period in .* must be an integer >= 1, got 2.0"),
    ("Train.step.name=Sandwich",
     r"Train.step.name in .*STEPS registry has no 'Sandwich'; registered: \[.*'SandwichStep', 'SimpleStep'"),
    ("DataLoader.train.num_workers=-1", r"DataLoader.train.num_workers in .* must be an integer >= 0 .*got -1"),
])
def test_a_train_number_or_step_that_is_not_what_the_key_takes_is_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        check_training_config(load_config(f"{ROOT}/configs/allinone/tiny_demo.yaml", [override]))
