"""Prediction over a split gives the submission's entries (names, image ids, json category ids, full-size masks),
and the fine-tuning script checks its arguments."""
import json
import os
import subprocess

import paddle
import pytest
from traffic_tools import ROOT, tiny_model_config

from oneforall.traffic.mini import SIGN_CATEGORIES, make_traffic_tree
from oneforall.traffic.model import build_traffic_model
from oneforall.traffic.predict import predict_split

EVAL = {"fgvc": {"batch_size": 8, "transform": {"size": [64, 64]}},
        "trafficsign": {"batch_size": 4, "transform": {"size": [64, 64]}}, "segmentation": {"batch_size": 1}}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("traffic_predict")
    make_traffic_tree(str(path), seed=2, num_cls_classes=3, cls_per_class=(2, 2), dec_images=(2, 3),
                      seg_images=(1, 2))
    return str(path)


def test_test_split_predictions_have_the_submission_keys(root):
    paddle.seed(0)
    model = build_traffic_model(tiny_model_config(seg_classes=19, cls_classes=3, det_classes=3))
    predictions, metrics = predict_split(model, root, "test", EVAL)
    assert metrics == {}
    assert sorted(predictions["cls"]) == sorted(os.listdir(os.path.join(root, "track1_test_data", "cls", "test")))
    assert all(0 <= v < 3 for v in predictions["cls"].values())
    ids = [d["image_id"] for d in predictions["dec"]]
    assert sorted(set(ids)) == [1, 2, 3] and all(ids.count(i) == 10 for i in (1, 2, 3))  # num_top_queries each
    assert {d["category_id"] for d in predictions["dec"]} <= {c[0] for c in SIGN_CATEGORIES}
    image = predictions["dec"][0]
    assert image["bbox"][2] >= 0 and image["bbox"][3] >= 0
    assert sorted(predictions["seg"]) == ["val_0000.png", "val_0001.png"]
    assert all(mask.shape == (64, 96) for mask in predictions["seg"].values())  # full resolution


def test_val_split_gives_the_three_metrics_and_the_score(root):
    paddle.seed(0)
    model = build_traffic_model(tiny_model_config(seg_classes=19, cls_classes=3, det_classes=3))
    _, metrics = predict_split(model, root, "val", EVAL)
    assert sorted(metrics) == ["fgvc.Acc@1", "score", "segmentation.mIoU", "trafficsign.AP50"]
    assert all(0 <= value <= 1 for value in metrics.values())
    assert metrics["score"] == round((metrics["fgvc.Acc@1"] + metrics["trafficsign.AP50"]
                                      + metrics["segmentation.mIoU"]) / 3, 4)


def test_finetune_script_names_a_missing_layout(tmp_path):
    result = subprocess.run(["sh", os.path.join(ROOT, "scripts", "finetune.sh"), str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "has no track1_train_data" in result.stderr
    (tmp_path / "track1_train_data").mkdir()
    result = subprocess.run(["sh", os.path.join(ROOT, "scripts", "finetune.sh"), str(tmp_path),
                             str(tmp_path / "missing.pdparams")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "missing.pdparams not found" in result.stderr


def test_test_script_writes_the_submission_of_a_traffic_config(root, tmp_path):
    from allinone.config import load_config
    from traffic_tools import TINY_CONFIG, tool_env

    paddle.seed(0)
    model = build_traffic_model(load_config(TINY_CONFIG).Model)
    paddle.save(model.state_dict(), str(tmp_path / "model.pdparams"))
    output = tmp_path / "sub.json"
    result = subprocess.run(["sh", os.path.join(ROOT, "scripts", "test.sh"), TINY_CONFIG, "--model_path",
                             str(tmp_path / "model.pdparams"), "--root", root, "--output", str(output)],
                            cwd=str(tmp_path), env=tool_env(root), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output, encoding="utf-8") as f:
        submission = json.load(f)
    assert list(submission) == ["seg", "cls", "dec"]
    assert len(submission["cls"]) == 6 and len(submission["seg"]) == 2 and len(submission["dec"]) == 3 * 10
