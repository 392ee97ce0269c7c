"""The task-MoE model evaluated directly (eval gates) and through extraction to one plain ViT per task (the official
path, `python -m oneforall.extract`): the same numbers, keyed task.dataset.metric."""
import os

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "oneforall", "tiny_taskmoe_train.yaml")
TASKS = ("face", "person", "veri", "task6", "task18")


def test_direct_moe_evaluation_equals_per_task_extraction(oneforall_root, tmp_path, monkeypatch):
    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import load_config
    from allinone.evaluation.suite import EvaluationSuite
    from allinone.modeling import build_model
    from allinone.modeling.checkpoint import load_checkpoint
    from oneforall.extract import main as extract_main

    monkeypatch.setenv("FASTREID_DATASETS", oneforall_root)
    cfg = load_config(TINY)
    for head, classes in (("face", 8), ("person", 5), ("veri", 5), ("task6", 3), ("task18", 3)):
        cfg.Model.heads[head].num_classes = classes
    paddle.seed(1)
    model = build_model(cfg)
    # mixed picks: each task takes the common FFN in some blocks and its own in others
    with paddle.no_grad():
        for b, block in enumerate(model.backbone.blocks):
            for t, task in enumerate(TASKS):
                block.mlp.gates[task].set_value(paddle.to_tensor([[1.0, 0.0]] if (b + t) % 2 else [[0.0, 1.0]]))
    picks = model.backbone.gate_picks()
    assert {pick for block in picks for pick in block.values()} == {"common", "specific"}
    model.eval()
    direct = EvaluationSuite(cfg, print_table=False)(model)
    assert list(direct) == ["face.lfw.Accuracy", "face.lfw.Threshold", "face.lfw.metric",
                            *[f"person.market1501.{m}" for m in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")],
                            *[f"veri.veri.{m}" for m in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")],
                            "task6.imagenet1k.Acc@1", "task6.imagenet1k.metric",
                            "task18.cifar10.Acc@1", "task18.cifar10.metric"]

    moe_path = tmp_path / "moe.pdparams"
    config_path = tmp_path / "moe.yaml"
    paddle.save(model.state_dict(), str(moe_path))
    cfg.dump(str(config_path))
    extracted = {}
    for task in TASKS:
        out = tmp_path / task / "model.pdparams"
        extract_main(["--paddle_model_path", str(moe_path), "--task_name", task, "--config", str(config_path),
                      "--output", str(out)])
        task_cfg = load_config(str(out).replace(".pdparams", ".yaml"))
        assert task_cfg.Model.backbone.name == "VisionTransformer" and list(task_cfg.Model.heads) == [task]
        plain = build_model(task_cfg)
        load_checkpoint(plain, str(out))
        plain.eval()
        extracted.update(EvaluationSuite(task_cfg, print_table=False)(plain))
    assert list(extracted) == list(direct)
    for key, value in direct.items():
        np.testing.assert_allclose(extracted[key], value, rtol=0, atol=1e-9, err_msg=key)


def test_an_eval_entry_runs_the_task_that_task_to_head_sends_to_its_head(oneforall_root, monkeypatch):
    """A task named differently from its head (Model.task_to_head) is evaluated through its own task path (its
    embeddings and experts), found from the entry's head or named by the entry's `task`; a task routed to another
    head is refused."""
    import pytest

    import oneforall.moe_training  # noqa: F401  (registrations)
    from allinone.config import ConfigError, load_config
    from allinone.evaluation.suite import EvaluationSuite
    from allinone.modeling import build_model

    monkeypatch.setenv("FASTREID_DATASETS", oneforall_root)
    cfg = load_config(TINY, ["Model.backbone.tasks=[face, reid, veri, task6, task18]"])
    cfg.Model.task_to_head = {"reid": "person"}
    for head, classes in (("face", 8), ("person", 5), ("veri", 5), ("task6", 3), ("task18", 3)):
        cfg.Model.heads[head].num_classes = classes
    cfg.Eval.datasets = [entry for entry in cfg.Eval.datasets if entry.name == "Market1501"]
    paddle.seed(1)
    model = build_model(cfg)
    model.eval()
    found = EvaluationSuite(cfg, print_table=False)(model)
    cfg.Eval.datasets[0].task = "reid"
    named = EvaluationSuite(cfg, print_table=False)(model)
    assert list(found) == [f"person.market1501.{m}" for m in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")]
    assert found == named
    cfg.Eval.datasets[0].task = "face"
    with pytest.raises(ConfigError, match="task 'face' goes to head 'face'"):
        EvaluationSuite(cfg, print_table=False)(model)
